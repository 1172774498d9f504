"""Sub-pixel image translations as Fourier phase ramps.

RELION's convention: a particle with origin ``(rlnOriginXAngst, rlnOriginYAngst) = (ox, oy)`` is the
projection moved by ``(-ox, -oy)``; its spectrum is multiplied by ``exp(+2 pi i (fx ox + fy oy))``.
"""

import math

import tensorflow as tf

from tfcryogan.physics import fourier


def translation_phase(shift_px, box):
    """Phase ramps that translate images by ``shift_px`` pixels.

    Args:
      shift_px: ``[B, 2]`` float32 translations ``(dx, dy)`` in pixels (x along columns, y rows);
        the content at ``r`` moves to ``r + shift``.
      box: image size ``N``.
    Returns:
      ``[B, N, N // 2 + 1]`` complex64 factors ``exp(-2 pi i (kx dx + ky dy) / N)`` for half-plane
      spectra.
    """
    shift_px = tf.convert_to_tensor(shift_px, tf.float32)
    kx = tf.cast(tf.range(box // 2 + 1), tf.float32)
    ky = fourier.fft_frequencies(box)
    # Separable: exp(-2 pi i (kx dx + ky dy) / N) = exp(-2 pi i kx dx / N) exp(-2 pi i ky dy / N).
    phase_x = (-2.0 * math.pi / box) * kx[None, :] * shift_px[:, 0, None]
    phase_y = (-2.0 * math.pi / box) * ky[None, :] * shift_px[:, 1, None]
    ramp_x = tf.complex(tf.cos(phase_x), tf.sin(phase_x))
    ramp_y = tf.complex(tf.cos(phase_y), tf.sin(phase_y))
    return ramp_y[:, :, None] * ramp_x[:, None, :]


def translation_phase_at(shift_px, kx, ky, box):
    """Phase ramps at given frequencies: ``[B, M]`` complex64 ``exp(-2 pi i (kx dx + ky dy) / N)``
    for ``shift_px`` ``[B, 2]`` pixels and ``kx``, ``ky`` ``[M]`` in cycles per box."""
    shift_px = tf.convert_to_tensor(shift_px, tf.float32)
    phase = (-2.0 * math.pi / box) * (kx[None, :] * shift_px[:, 0, None]
                                      + ky[None, :] * shift_px[:, 1, None])
    return tf.complex(tf.cos(phase), tf.sin(phase))


def origin_to_shift(origin_a, pixel_size, box):
    """RELION origins (Angstrom) to the pixel translation that places a projection spectrum
    (origin at index 0) in a centred image: ``image_origin(box) - origin / pixel_size``.

    Args:
      origin_a: ``[B, 2]`` float32 ``(rlnOriginXAngst, rlnOriginYAngst)``.
      pixel_size: Angstrom per pixel, scalar or ``[B]``.
      box: image size ``N``.
    Returns:
      ``[B, 2]`` float32 pixel translations for :func:`translation_phase`.
    """
    origin_a = tf.convert_to_tensor(origin_a, tf.float32)
    pixel_size = tf.reshape(tf.convert_to_tensor(pixel_size, tf.float32), [-1, 1])
    return float(fourier.image_origin(box)) - origin_a / pixel_size
