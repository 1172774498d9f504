"""Fourier-slice projector: volumes -> projection spectra, as RELION's ``Projector``.

A volume is zero-padded by ``pad`` (default 2), optionally gridding-corrected (divided by the
Fourier transform of the trilinear kernel, ``sinc^2``, as RELION does), and Fourier transformed once
(``fourier.rfft3d``; half of the spectrum is stored and Friedel symmetry gives the rest). Each projection is
then a central slice ``F(A^T k)`` read with trilinear interpolation from eight taps gathered on
flattened indices: O(N^2) per image after one O(N^3 log N) transform per volume.

Projections are line integrals along z in voxel units (the sum over z of voxel values), like
``relion_project``'s. Frequencies beyond ``N / 2`` (Nyquist) are set to zero, as RELION does.
"""

import functools
import math

import numpy as np
import tensorflow as tf

from tfcryogan.physics import fourier


def volume_spectrum(volumes, pad=2, gridding=True):
    """Fourier transform of zero-padded volumes, ready for slicing.

    Args:
      volumes: ``[N, N, N]`` or ``[V, N, N, N]`` float32, indexed ``[z, y, x]``, origin at ``N // 2``.
      pad: integer padding factor (RELION's ``--pad``, default 2).
      gridding: divide by ``sinc^2(r / (pad N))`` first (RELION's gridding correction for trilinear
        interpolation).
    Returns:
      ``[V, P, P, P // 2 + 1]`` complex64 with ``P = pad * N``: the spectrum with the origin at the
      volume centre, axes ``(kz, ky, kx)`` in FFT order, zero beyond radius ``P / 2`` (Nyquist).
    """
    volumes = tf.convert_to_tensor(volumes, tf.float32)
    if volumes.shape.rank == 3:
        volumes = volumes[None]
    n = volumes.shape[-1]
    p = pad * n
    if gridding:
        r = fourier.centred_radius_3d(n) / float(p)
        x = math.pi * tf.maximum(r, 1e-6)
        sinc = tf.where(r > 0, tf.sin(x) / x, 1.0)
        volumes = volumes / (sinc * sinc)
    padded = tf.roll(fourier.crop_or_pad(volumes, p, 3), shift=[-(p // 2)] * 3, axis=[1, 2, 3])
    spectrum = fourier.rfft3d(padded)
    return spectrum * tf.cast(_sphere_mask(p), tf.complex64)


def _sphere_mask(p):
    """``[P, P, P // 2 + 1]`` float32: 1 where the padded frequency radius is <= P / 2."""
    k = fourier.fft_frequencies(p)
    kx = tf.cast(tf.range(p // 2 + 1), tf.float32)
    r2 = k[:, None, None] ** 2 + k[None, :, None] ** 2 + kx[None, None, :] ** 2
    return tf.cast(r2 <= (p / 2.0) ** 2, tf.float32)


def circle_frequencies(box):
    """The half-plane frequencies inside the Nyquist circle (radius <= N / 2), in the order used by
    :func:`slice_values`: ``(kx, ky)``, each float32 ``[M]`` constants, cycles per box."""
    _, kx, ky, _ = _circle_tables(box)
    return tf.constant(kx), tf.constant(ky)


def _trilinear_taps(p, rotations, box):
    """Where the central slices at ``rotations`` read a ``[P, P, P // 2 + 1]`` spectrum.

    Returns ``(index, weight, flip)``: flat indices ``[B, M, 8]`` int32 into one volume's
    spectrum, trilinear weights ``[B, M, 8]`` float32, and ``flip`` ``[B, M]`` bool where the value
    is read at ``-k`` and must be conjugated (Friedel symmetry of the stored half spectrum).
    """
    pad = p // box
    half = p // 2 + 1
    rotations = tf.convert_to_tensor(rotations, tf.float32)
    kx, ky = circle_frequencies(box)
    kx = kx[None, :, None] * float(pad)
    ky = ky[None, :, None] * float(pad)
    # k3 = A^T (kx, ky, 0): coordinates (x, y, z) in padded frequency units, [B, M, 3].
    coords = kx * rotations[:, None, 0, :] + ky * rotations[:, None, 1, :]
    # Friedel symmetry: only kx >= 0 is stored; read -k and conjugate.
    flip = coords[..., 0] < 0
    coords = tf.where(flip[..., None], -coords, coords)
    floor = tf.floor(coords)
    frac = coords - floor
    i0 = tf.cast(floor, tf.int32)
    x0 = tf.minimum(i0[..., 0], half - 1)
    x1 = tf.minimum(i0[..., 0] + 1, half - 1)
    y0 = tf.math.floormod(i0[..., 1], p)
    y1 = tf.math.floormod(i0[..., 1] + 1, p)
    z0 = tf.math.floormod(i0[..., 2], p)
    z1 = tf.math.floormod(i0[..., 2] + 1, p)
    fx, fy, fz = frac[..., 0], frac[..., 1], frac[..., 2]
    gx, gy, gz = 1.0 - fx, 1.0 - fy, 1.0 - fz
    zy = [(z0 * p + y0) * half, (z0 * p + y1) * half, (z1 * p + y0) * half, (z1 * p + y1) * half]
    wzy = [gz * gy, gz * fy, fz * gy, fz * fy]
    index = tf.stack([t + x for t in zy for x in (x0, x1)], axis=-1)
    weight = tf.stack([w * wx for w in wzy for wx in (gx, fx)], axis=-1)
    return index, weight, flip


def slice_values(spectrum, rotations, box, volume_index=None):
    """Central-slice values at the in-circle frequencies (:func:`circle_frequencies`).

    Args:
      spectrum: ``[V, P, P, P // 2 + 1]`` complex64 from :func:`volume_spectrum`.
      rotations: ``[B, 3, 3]`` RELION rotation matrices ``A`` (see ``rotations.euler_to_matrix``).
      box: output image size ``N`` (``P = pad * N``).
      volume_index: optional ``[B]`` int32, which of the ``V`` volumes each image projects
        (default, and ignored when ``V == 1``: volume 0 for all).
    Returns:
      ``[B, M]`` complex64 ``F(A^T k)`` for the ``M`` in-circle frequencies ``k``, origin at the
      volume centre. :func:`to_half_plane` places them in an ``rfft2d`` layout.
    """
    p = spectrum.shape[1]
    index, weight, flip = _trilinear_taps(p, rotations, box)
    if volume_index is not None and spectrum.shape[0] != 1:
        stride = p * p * (p // 2 + 1)
        index = index + tf.cast(volume_index, tf.int32)[:, None, None] * stride
    # Eight trilinear taps gathered at once from the flattened spectrum.
    taps = tf.gather(tf.reshape(spectrum, [-1]), index)
    values = tf.reduce_sum(taps * tf.cast(weight, tf.complex64), axis=-1)
    return tf.where(flip, tf.math.conj(values), values)


def slice_values_mixed(spectrum, rotations, box, coefficients):
    """Central slices of per-image linear combinations of volumes: for image ``b``, the slice of
    ``sum_v coefficients[b, v] * volume_v`` (by linearity, the same combination of the slices).

    A generator whose volumes are ``sum_v c_v(z) volume_v`` thus needs one 3D transform per basis
    volume per batch, and ``O(V N^2)`` work per image.

    Args:
      spectrum: ``[V, P, P, P // 2 + 1]`` complex64 spectra of the ``V`` basis volumes.
      rotations: ``[B, 3, 3]``; box: ``N``.
      coefficients: ``[B, V]`` float32 real coefficients.
    Returns:
      ``[B, M]`` complex64, as :func:`slice_values`.
    """
    p = spectrum.shape[1]
    v = spectrum.shape[0]
    index, weight, flip = _trilinear_taps(p, rotations, box)
    stride = p * p * (p // 2 + 1)
    index = index[..., None] + tf.range(v, dtype=tf.int32) * stride  # [B, M, 8, V]
    taps = tf.gather(tf.reshape(spectrum, [-1]), index)
    mixed = tf.cast(weight[..., None] * tf.cast(coefficients, tf.float32)[:, None, None, :],
                    tf.complex64)
    values = tf.reduce_sum(taps * mixed, axis=[-2, -1])
    return tf.where(flip, tf.math.conj(values), values)


def to_half_plane(values, box):
    """``[B, M]`` in-circle values -> ``[B, N, N // 2 + 1]`` half-plane spectra, zero outside the
    Nyquist circle (a gather from ``[values, 0]``, which XLA and GPUs handle well)."""
    _, _, _, position = _circle_tables(box)
    padded = tf.concat([values, tf.zeros_like(values[:, :1])], axis=1)
    return tf.reshape(tf.gather(padded, tf.constant(position), axis=1),
                      [-1, box, box // 2 + 1])


@functools.lru_cache(maxsize=None)
def _circle_tables(box):
    """Static geometry of a ``box`` half plane (computed once per box, as constants):
    ``inside`` flat indices of the frequencies with radius <= N / 2, their ``kx`` and ``ky``
    (float32), and ``position`` ``[N * (N // 2 + 1)]``: for each half-plane frequency its index in
    ``inside``, or ``len(inside)`` when it lies outside the circle."""
    ky = np.where(np.arange(box) < (box + 1) // 2, np.arange(box), np.arange(box) - box)
    kx = np.arange(box // 2 + 1)
    kx, ky = np.meshgrid(kx, ky)
    kx, ky = kx.ravel().astype(np.float32), ky.ravel().astype(np.float32)
    inside = np.flatnonzero(kx * kx + ky * ky <= (box / 2.0) ** 2)
    position = np.full(kx.size, inside.size, np.int32)
    position[inside] = np.arange(inside.size, dtype=np.int32)
    return inside, kx[inside], ky[inside], position
