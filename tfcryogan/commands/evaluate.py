"""``bin/evaluate``: compare maps with ground-truth references (alignment, FSC, resolution).

Two modes, chosen by the inputs:

- one map (``--map``) and one reference (``--reference`` or a single ``--references``): align, FSC,
  resolutions at FSC 0.5 and 0.143; writes ``fsc.csv``, ``fsc.png``, ``aligned.mrc`` and
  ``evaluation.json`` in ``--output_dir``;
- several maps and/or references (comma-separated lists or folders): every map against every
  reference (:mod:`tfcryogan.evaluation.precision_recall`); writes ``resolution_matrix.csv``,
  ``precision_recall.csv``, ``precision_recall.png``, ``fsc.csv``, ``fsc.png`` and
  ``evaluation.json``.

Flags and input files are checked (:mod:`tfcryogan.evaluation.map_inputs`, no TensorFlow) before
TensorFlow is imported, so that bad input fails in a fraction of a second.
"""

import os
import sys

from tfcryogan import cli, io
from tfcryogan.errors import InputError
from tfcryogan.evaluation import map_inputs


def _resolution_line(res):
    return ", ".join(f"FSC {t}: {v['angstrom']:.2f} A ({v['fraction_of_nyquist']:.3f} Nyquist)"
                     for t, v in res.items())


def _alignment_line(a):
    e = a["euler_relion_deg"]
    hand = "mirrored (opposite hand)" if a["flipped"] else "same hand"
    shift = ", ".join(f"{s:.2f}" for s in a["shift_A"])
    return (f"rot {e['rot']:.1f}, tilt {e['tilt']:.1f}, psi {e['psi']:.1f} deg (RELION), {hand}, "
            f"shift ({shift}) A, correlation {a['correlation']:.3f}, {a['seconds']:.1f} s")


def _check_flags(f):
    if not f.map:
        raise InputError("give the map to evaluate: --map=MAP.mrc")
    if f.reference and f.references:
        raise InputError("give either --reference or --references, not both")
    if not (f.reference or f.references):
        raise InputError("give the ground truth: --reference=REF.mrc (or --references=LIST_OR_DIR)")
    if os.path.exists(f.output_dir) and not os.path.isdir(f.output_dir):
        raise InputError(f"--output_dir={f.output_dir}: exists and is not a folder")
    if f.n_rotations < 100:
        raise InputError(f"--n_rotations={f.n_rotations}: must be >= 100")
    if f.mask_radius_A is not None and not f.mask_radius_A > 0:
        raise InputError(f"--mask_radius_A={f.mask_radius_A}: must be > 0")
    if f.mask_edge_A is not None and not f.mask_edge_A >= 0:
        raise InputError(f"--mask_edge_A={f.mask_edge_A}: must be >= 0")
    if not 0 < f.fsc_threshold < 1:
        raise InputError(f"--fsc_threshold={f.fsc_threshold}: must be between 0 and 1")
    if f.threshold_A is not None and not f.threshold_A > 0:
        raise InputError(f"--threshold_A={f.threshold_A}: must be > 0")


def run(f):
    """Run ``bin/evaluate`` with the parsed flags ``f``."""
    _check_flags(f)
    map_paths = io.list_maps(f.map, "map")
    ref_paths = [f.reference] if f.reference else io.list_maps(f.references, "references")
    first, grid = map_inputs.load_reference(ref_paths[0], f.pixel_size)
    refs = [first] + [map_inputs.load_for_grid(p, grid, f.pixel_size, ref_paths[0])
                      for p in ref_paths[1:]]
    maps = [map_inputs.load_for_grid(p, grid, f.pixel_size, ref_paths[0]) for p in map_paths]
    cli.import_tensorflow_quietly()
    for item in refs + maps:
        item.on_grid(grid)
    options = {"n_rotations": int(f.n_rotations)}
    if len(maps) == 1 and len(refs) == 1:
        run_single(f, maps[0], refs[0], grid, options)
    else:
        run_multi(f, maps, refs, grid, options)


def run_single(f, loaded, reference, grid, options):
    """One map against one reference: ``fsc.csv``, ``fsc.png``, ``aligned.mrc``,
    ``evaluation.json``."""
    from tfcryogan.evaluation import report  # pylint: disable=import-outside-toplevel
    out = sys.stdout
    out.write(f"map:       {loaded.path}\nreference: {reference.path} ({grid.box}^3 voxels, "
              f"{grid.pixel_size:g} A)\n")
    for note in loaded.notes:
        out.write(f"note: {note}\n")
    if f.align:
        out.write(f"aligning (rotation, hand, shift; {options['n_rotations']} rotations per "
                  "hand)...\n")
        out.flush()
    result = report.compare_maps(loaded.volume, reference.volume, grid.pixel_size,
                                 align=f.align, mask_radius_A=f.mask_radius_A,
                                 mask_edge_A=f.mask_edge_A, align_options=options)
    aligned = result.pop("aligned_volume")
    paths = {k: os.path.join(f.output_dir, v) for k, v in
             (("fsc_csv", "fsc.csv"), ("fsc_png", "fsc.png"), ("aligned", "aligned.mrc"),
              ("json", "evaluation.json"))}
    curves = {"fsc": result["fsc"]["fsc"]}
    labels = {"aligned" if f.align else "as given": result["fsc"]["fsc"]}
    if f.align:
        curves["fsc_unaligned"] = result["fsc_unaligned"]["fsc"]
        labels["before alignment"] = result["fsc_unaligned"]["fsc"]
    report.write_fsc_csv(paths["fsc_csv"], curves, grid.box, grid.pixel_size)
    report.plot_fsc(paths["fsc_png"], labels, grid.box, grid.pixel_size,
                    title=f"{loaded.name} vs {reference.name}")
    io.write_volume(paths["aligned"], aligned, grid.pixel_size)
    io.write_json(paths["json"], dict(mode="single", map=loaded.path, reference=reference.path,
                                      notes=loaded.notes, align=f.align, **result,
                                      outputs=paths))
    if f.align:
        out.write(f"alignment: {_alignment_line(result['alignment'])}\n")
    for t, v in result["resolution"].items():
        out.write(f"resolution at FSC {t}: {v['angstrom']:.2f} A "
                  f"({v['fraction_of_nyquist']:.3f} of Nyquist, {2 * grid.pixel_size:g} A)\n")
    if f.align:
        out.write(f"before alignment: {_resolution_line(result['resolution_unaligned'])}\n")
    out.write("wrote:\n" + "".join(f"  {p}\n" for p in paths.values()))


def run_multi(f, maps, refs, grid, options):
    """Every map against every reference; precision (per map) and recall (per reference)."""
    # pylint: disable=import-outside-toplevel
    from tfcryogan.evaluation import precision_recall as pr
    from tfcryogan.evaluation import report
    out = sys.stdout
    out.write(f"{len(maps)} maps x {len(refs)} references ({grid.box}^3 voxels, "
              f"{grid.pixel_size:g} A); resolution at FSC {f.fsc_threshold:g}\n")
    for item in refs + maps:
        for note in item.notes:
            out.write(f"note: {note}\n")
    map_names = [m.name for m in maps]
    ref_names = [r.name for r in refs]

    def progress(i, j, resolution, result):
        corr = result["alignment"]["correlation"] if f.align else None
        out.write(f"  {map_names[i]} vs {ref_names[j]}: {resolution:.2f} A"
                  + (f" (correlation {corr:.3f})" if corr is not None else "") + "\n")
        out.flush()

    c = pr.compare_sets([m.volume for m in maps], [r.volume for r in refs], grid.pixel_size,
                        map_names, ref_names, f.fsc_threshold, f.threshold_A, f.align,
                        f.mask_radius_A, f.mask_edge_A, options, progress)
    d = f.output_dir
    paths = {k: os.path.join(d, v) for k, v in
             (("matrix_csv", "resolution_matrix.csv"), ("pr_csv", "precision_recall.csv"),
              ("pr_png", "precision_recall.png"), ("fsc_csv", "fsc.csv"), ("fsc_png", "fsc.png"),
              ("json", "evaluation.json"))}
    pr.write_matrix_csv(paths["matrix_csv"], c)
    pr.write_precision_recall_csv(paths["pr_csv"], c)
    pr.plot_precision_recall(paths["pr_png"], c)
    report.write_fsc_csv(paths["fsc_csv"], c.best_curves(), grid.box, grid.pixel_size)
    report.plot_fsc(paths["fsc_png"], c.best_curves(), grid.box, grid.pixel_size,
                    title="each reference with its best map")
    io.write_json(paths["json"], dict(
        mode="multi", maps=[m.path for m in maps], references=[r.path for r in refs],
        notes=[n for it in refs + maps for n in it.notes], align=f.align,
        mask_radius_A=f.mask_radius_A, **c.record(), outputs=paths))
    matched = c.precision is not None
    out.write("recall (each reference's best map):\n")
    for row in c.per_reference:
        out.write(f"  {row['name']}: {row['best_map']} at {row['resolution_A']:.2f} A"
                  + (f" ({'match' if row['matched'] else 'no match'})" if matched else "") + "\n")
    out.write("precision (each map's best reference):\n")
    for row in c.per_map:
        out.write(f"  {row['name']}: {row['best_reference']} at {row['resolution_A']:.2f} A"
                  + (f" ({'match' if row['matched'] else 'no match'})" if matched else "") + "\n")
    if matched:
        out.write(f"precision {c.precision:.3f}, recall {c.recall:.3f} (match: resolution <= "
                  f"{f.threshold_A:g} A at FSC {f.fsc_threshold:g})\n")
    out.write("wrote:\n" + "".join(f"  {p}\n" for p in paths.values()))
