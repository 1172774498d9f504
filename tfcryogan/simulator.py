"""The image formation model: volumes + imaging parameters -> particle images.

``y = CTF * shift(P_A(x)) + noise``: the Fourier-slice projection at RELION rotation ``A``, moved by
minus the RELION origin, multiplied by the CTF in Fourier space, and noise added in real space
(``physics.noise``). Everything is batched, differentiable with respect to the volume, and pure
TensorFlow; :class:`Simulator` wraps it as a Keras layer for the models.
"""

import keras
import tensorflow as tf

from tfcryogan.physics import ctf as ctf_lib
from tfcryogan.physics import projector, rotations, shifts


def project(spectrum, rotations, origins_a, ctf_params, box, pixel_size, volume_index=None,
            coefficients=None):
    """Noise-free particle images from volume spectra.

    Args:
      spectrum: ``[V, P, P, P // 2 + 1]`` complex64 from ``projector.volume_spectrum``.
      rotations: ``[B, 3, 3]`` RELION rotation matrices.
      origins_a: ``[B, 2]`` float32 RELION origins ``(rlnOriginXAngst, rlnOriginYAngst)`` in A;
        the image is the projection moved by minus the origin.
      ctf_params: ``[B, 9]`` float32 CTF rows (``physics.ctf.CTF_COLUMNS``), or None for no CTF.
      box: image size ``N`` in pixels.
      pixel_size: Angstrom per pixel.
      volume_index: optional ``[B]`` int32 volume of each image (heterogeneous data).
      coefficients: optional ``[B, V]`` float32: image ``b`` shows ``sum_v coefficients[b, v]
        volume_v`` (the conformation generator's basis volumes); overrides ``volume_index``.
    Returns:
      ``[B, N, N]`` float32 images (line integrals in voxel units times the CTF), centred at
      ``physics.fourier.image_origin(N)`` as RELION's.
    """
    # Everything is applied to the in-circle frequencies only, then laid out for irfft2d.
    if coefficients is not None and spectrum.shape[0] > 1:
        values = projector.slice_values_mixed(spectrum, rotations, box, coefficients)
    else:
        values = projector.slice_values(spectrum, rotations, box, volume_index)
    kx, ky = projector.circle_frequencies(box)
    move = shifts.origin_to_shift(origins_a, pixel_size, box)
    values = values * shifts.translation_phase_at(move, kx, ky, box)
    if ctf_params is not None:
        values = values * tf.cast(ctf_lib.ctf_values(ctf_params, kx, ky, box, pixel_size),
                                  tf.complex64)
    return tf.signal.irfft2d(projector.to_half_plane(values, box), fft_length=[box, box])


def sample_parameters(seed, batch_size, ctf_rows, shift_std_a):
    """Random imaging parameters for ``batch_size`` images.

    Rotations are uniform on SO(3); origins are Gaussian with standard deviation ``shift_std_a``
    (A) per axis; CTF rows are drawn uniformly, with replacement, from a dataset's own rows.

    Args:
      seed: ``[2]`` int32/int64 tensor (stateless randomness: the same seed gives the same draw).
      batch_size: ``B``.
      ctf_rows: ``[M, 9]`` float32 CTF rows (``CTF_COLUMNS``) to draw from.
      shift_std_a: standard deviation of the origins in A (0 for centred particles).
    Returns:
      dict with ``rotations`` ``[B, 3, 3]``, ``origins`` ``[B, 2]`` (A), ``ctf`` ``[B, 9]`` and
      ``ctf_index`` ``[B]`` int32 (the rows drawn).
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
    ctf_rows = tf.convert_to_tensor(ctf_rows, tf.float32)
    index = tf.random.stateless_uniform([batch_size], seeds[0], 0, tf.shape(ctf_rows)[0],
                                        dtype=tf.int32)
    return {
        "rotations": rotations.random_rotations(batch_size, seeds[1]),
        "origins": shift_std_a * tf.random.stateless_normal([batch_size, 2], seeds[2]),
        "ctf": tf.gather(ctf_rows, index),
        "ctf_index": index,
    }


class Simulator(keras.layers.Layer):
    """Keras layer: volumes and imaging parameters -> noise-free images.

    Args:
      box: image and volume size ``N`` (pixels).
      pixel_size: Angstrom per pixel.
      pad: Fourier padding factor (2 as RELION).
      gridding: apply RELION's gridding correction before the transform.

    Call with ``(volumes, rotations, origins_a, ctf_params, volume_index=None)``: ``volumes``
    ``[V, N, N, N]``; the others as :func:`project`. Returns ``[B, N, N]`` float32.
    """

    def __init__(self, box, pixel_size, pad=2, gridding=True, **kwargs):
        super().__init__(**kwargs)
        self.box = int(box)
        self.pixel_size = float(pixel_size)
        self.pad = int(pad)
        self.gridding = bool(gridding)

    def call(self, volumes, rotations, origins_a, ctf_params, volume_index=None):
        spectrum = projector.volume_spectrum(volumes, self.pad, self.gridding)
        return project(spectrum, rotations, origins_a, ctf_params, self.box, self.pixel_size,
                       volume_index)

    def get_config(self):
        config = super().get_config()
        config.update(box=self.box, pixel_size=self.pixel_size, pad=self.pad,
                      gridding=self.gridding)
        return config
