"""Contrast transfer function, as RELION's ``CTF::getCTF`` (checked against ``relion_project --ctf``).

``CTF(s) = scale * sin(chi) * exp(-B s^2 / 4)`` with
``chi = pi lambda dz s^2 - (pi / 2) Cs lambda^3 s^4 + atan(Q / sqrt(1 - Q^2)) + phase_shift``,
``lambda = 12.2643247 / sqrt(V (1 + 0.978466e-6 V))`` Angstrom (V in volts),
``dz = (dU + dV) / 2 + (dU - dV) / 2 cos(2 (alpha - angle))``, ``alpha = atan2(ky, kx)`` with x along
image columns and y along rows. Underfocus is positive; the value at zero frequency is ``+Q`` (protein
bright, RELION's convention for extracted particles).

CTF parameter rows are float32 ``[..., 9]`` in the order of ``CTF_COLUMNS``.
"""

import math

import tensorflow as tf

from tfcryogan.io.particles import CTF_COLUMNS  # noqa: F401  (the row layout, defined once)
from tfcryogan.physics import fourier


def electron_wavelength(voltage_kv):
    """Relativistic electron wavelength in Angstrom for an acceleration voltage in kV."""
    v = tf.convert_to_tensor(voltage_kv, tf.float32) * 1e3
    return 12.2643247 / tf.sqrt(v * (1.0 + 0.978466e-6 * v))


def ctf_half_plane(params, box, pixel_size):
    """CTFs on the ``rfft2d`` half-plane grid: ``[B, N, N // 2 + 1]`` float32 (see
    :func:`ctf_values` for the arguments)."""
    kx, ky = fourier.half_plane_frequencies(box)
    shape = [-1, box, box // 2 + 1]
    values = ctf_values(params, tf.reshape(kx, [-1]), tf.reshape(ky, [-1]), box, pixel_size)
    return tf.reshape(values, shape)


def ctf_values(params, kx, ky, box, pixel_size):
    """CTFs at given frequencies.

    Args:
      params: ``[B, 9]`` float32 CTF rows (``CTF_COLUMNS``: defocus U, V in A; astigmatism angle
        in degrees; voltage in kV; Cs in mm; amplitude contrast (fraction); phase shift in degrees;
        B-factor in A^2; scale).
      kx, ky: ``[M]`` float32 frequencies in cycles per box (x along image columns, y along rows).
      box: image size ``N`` in pixels.
      pixel_size: Angstrom per pixel (scalar, or ``[B]``).
    Returns:
      ``[B, M]`` float32 CTF values.
    """
    params = tf.convert_to_tensor(params, tf.float32)
    du, dv, angle, voltage, cs_mm, q, phase, bfac, scale = [params[:, i, None] for i in range(9)]
    pixel_size = tf.reshape(tf.convert_to_tensor(pixel_size, tf.float32), [-1, 1])
    k2 = kx * kx + ky * ky
    # cos(2 alpha), sin(2 alpha) of the frequency direction alpha = atan2(ky, kx), from k alone.
    cos2a = tf.where(k2 > 0, (kx * kx - ky * ky) / tf.maximum(k2, 1.0), 1.0)[None]
    sin2a = tf.where(k2 > 0, 2.0 * kx * ky / tf.maximum(k2, 1.0), 0.0)[None]
    s2 = k2[None] / (box * pixel_size) ** 2
    deg = math.pi / 180.0
    cos2t = tf.cos(2.0 * angle * deg)
    sin2t = tf.sin(2.0 * angle * deg)
    # cos(2 (alpha - angle)) = cos 2a cos 2t + sin 2a sin 2t
    dz = 0.5 * (du + dv) + 0.5 * (du - dv) * (cos2a * cos2t + sin2a * sin2t)
    lam = electron_wavelength(voltage)
    cs = cs_mm * 1e7
    amp = tf.atan(q / tf.sqrt(1.0 - q * q))
    chi = (math.pi * lam * dz * s2 - 0.5 * math.pi * cs * lam ** 3 * s2 * s2
           + amp + phase * deg)
    return scale * tf.sin(chi) * tf.exp(-0.25 * bfac * s2)
