"""Evaluation: FSC, alignment of maps up to rotation/reflection/shift, resolution, plots.

- :mod:`tfcryogan.evaluation.fsc`: Fourier shell correlation per shell and resolution crossings.
- :mod:`tfcryogan.evaluation.align`: ``rotate_volume``, ``mirror_volume`` and ``align`` (global FFT
  search + local refinement of rotation, hand, shift).
- :mod:`tfcryogan.evaluation.report`: ``compare_maps`` (alignment + FSC + resolutions),
  ``write_fsc_csv`` and ``plot_fsc``.
- :mod:`tfcryogan.evaluation.precision_recall`: several maps against several references
  (``compare_sets``), its CSVs and plot.
- :mod:`tfcryogan.evaluation.map_inputs`: maps read and put on one grid (no TensorFlow to check).
- :mod:`tfcryogan.evaluation.image_moments`: Kam's in-plane-rotation-invariant second moments of
  particle images, a pose-free comparison of simulated and real image sets.

``bin/evaluate`` (``tfcryogan.commands.evaluate``) runs them on map files.
"""
