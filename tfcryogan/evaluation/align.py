"""Align a map to a reference up to a rotation, a reflection (hand) and a shift.

Pose-free reconstructions (CryoGAN) equal the truth only up to an improper rigid motion, so maps
are superposed before their FSC is measured.

Conventions
-----------
Volumes are float32 ``[z, y, x]`` (or batches ``[B, z, y, x]``) with the origin at index
``N // 2`` on every axis. Positions, shifts and matrices act on vectors ``r = (x, y, z)`` in voxels
from that origin (x along the last array axis), as in :mod:`tfcryogan.physics.rotations`.

:func:`rotate_volume` ``(v, M, t)`` is the map ``out(r) = v(M^T (r - t))``: the density at ``p``
moves to ``M p + t`` (rotate about the centre, then shift). With a RELION matrix ``A``
(``rotations.euler_to_matrix``) ``rotate_volume(v, A)`` is ``v(A^T r)``, whose projection along z
is RELION's projection at ``A``.

The mirror is the reflection ``z -> -z`` about the centre, ``F = diag(1, 1, -1)``
(:func:`mirror_volume`; ``volume[::-1]`` with index ``N // 2`` kept in place). Every improper
rotation is ``R @ F`` with ``R`` proper, so :func:`align` reports a proper ``matrix``, a
``flipped`` flag and a ``shift_voxels``, with ``aligned = rotate_volume(volume, matrix @ F if
flipped else matrix, shift_voxels)`` (``= rotate_volume(mirror_volume(volume), matrix,
shift_voxels)`` when flipped).
"""

import math
import time
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from tfcryogan.physics import fourier

__all__ = [
    "AlignResult",
    "MIRROR",
    "align",
    "axis_angle_to_matrix",
    "mirror_volume",
    "rotate_volume",
    "rotation_angle",
    "rotation_grid",
    "soft_sphere_mask",
]

#: The reflection z -> -z, ``diag(1, 1, -1)`` acting on ``(x, y, z)``.
MIRROR = np.diag([1.0, 1.0, -1.0]).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Resampling


def _grid_coordinates(n):
    """``[n^3, 3]`` float32 ``(x, y, z)`` voxel coordinates from the centre ``n // 2``, in the
    flattened ``[z, y, x]`` order."""
    r = tf.range(n, dtype=tf.float32) - float(n // 2)
    z, y, x = tf.meshgrid(r, r, r, indexing="ij")
    return tf.stack([tf.reshape(x, [-1]), tf.reshape(y, [-1]), tf.reshape(z, [-1])], axis=-1)


def _resample_flat(flat, matrices, shifts, n, volume_index=None, coords=None):
    """Core of :func:`rotate_volume` (graph code, no numpy).

    Args:
      flat: ``[V * n^3]`` float32, the volumes flattened.
      matrices: ``[B, 3, 3]``; shifts: ``[B, 3]`` (x, y, z) voxels.
      n: box (Python int).
      volume_index: ``[B]`` int32 (which volume each output reads), or None (volume 0).
      coords: ``[M, 3]`` output positions (x, y, z) from the centre; default all ``n^3`` voxels.
    Returns:
      ``[B, M]`` float32 (``M = n^3`` by default, in flattened ``[z, y, x]`` order).
    """
    if coords is None:
        coords = _grid_coordinates(n)  # [M, 3]
    # source p = M^T (r - t); as row vectors (r - t) @ M.
    src = tf.einsum("bmj,bji->bmi", coords[None] - shifts[:, None, :], matrices)
    src = src + float(n // 2)
    lower = tf.floor(src)
    frac = src - lower
    lower = tf.cast(lower, tf.int32)
    base = tf.zeros_like(lower[..., 0])
    if volume_index is not None:
        base = base + volume_index[:, None] * (n * n * n)
    out = tf.zeros_like(frac[..., 0])
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                ix = lower[..., 0] + dx
                iy = lower[..., 1] + dy
                iz = lower[..., 2] + dz
                w = ((frac[..., 0] if dx else 1.0 - frac[..., 0]) *
                     (frac[..., 1] if dy else 1.0 - frac[..., 1]) *
                     (frac[..., 2] if dz else 1.0 - frac[..., 2]))
                inside = ((ix >= 0) & (ix < n) & (iy >= 0) & (iy < n) & (iz >= 0) & (iz < n))
                index = base + (tf.clip_by_value(iz, 0, n - 1) * n +
                                tf.clip_by_value(iy, 0, n - 1)) * n + tf.clip_by_value(ix, 0, n - 1)
                out = out + tf.where(inside, w, 0.0) * tf.gather(flat, index)
    return out


@tf.function
def _rotate_batch(volumes, matrices, shifts, volume_index, n, coords):
    return _resample_flat(tf.reshape(volumes, [-1]), matrices, shifts, n, volume_index, coords)


_CHUNK = 1 << 21  # output values per call of _rotate_batch: bounds the memory of large boxes


def rotate_volume(volume, matrix, shift=None):
    """Rotate and shift volumes: ``out(r) = v(M^T (r - t))`` (trilinear, zero outside the box).

    The density at position ``p`` (voxels from the centre ``N // 2``) moves to ``M p + t``. ``M``
    may be improper (e.g. ``R @ MIRROR``). Differentiable in ``matrix`` and ``shift``.

    Args:
      volume: ``[N, N, N]`` or ``[B, N, N, N]`` float32, ``[z, y, x]``.
      matrix: ``[3, 3]`` or ``[B, 3, 3]`` acting on ``(x, y, z)`` column vectors.
      shift: ``[3]`` or ``[B, 3]`` ``(x, y, z)`` in voxels, or None (no shift).
    Returns:
      ``[N, N, N]`` float32 tensor when neither input is batched, else ``[B, N, N, N]`` (one volume
      with several matrices, or volume ``b`` with matrix ``b``).
    """
    volume = tf.convert_to_tensor(volume, tf.float32)
    matrix = tf.convert_to_tensor(matrix, tf.float32)
    batched = volume.shape.rank == 4 or matrix.shape.rank == 3 or (
        shift is not None and np.ndim(shift) == 2)
    volumes = volume if volume.shape.rank == 4 else volume[None]
    n = volumes.shape[-1]
    if tuple(volumes.shape[1:]) != (n, n, n):
        raise ValueError(f"rotate_volume needs cubic [N, N, N] volumes, got {volume.shape}")
    matrices = matrix if matrix.shape.rank == 3 else matrix[None]
    shifts = (tf.zeros([1, 3], tf.float32) if shift is None
              else tf.reshape(tf.convert_to_tensor(shift, tf.float32), [-1, 3]))
    b = max(volumes.shape[0], matrices.shape[0], shifts.shape[0])
    matrices = tf.broadcast_to(matrices, [b, 3, 3])
    shifts = tf.broadcast_to(shifts, [b, 3])
    if volumes.shape[0] == 1:
        index = tf.zeros([b], tf.int32)
    elif volumes.shape[0] == b:
        index = tf.range(b, dtype=tf.int32)
    else:
        raise ValueError(f"rotate_volume: {volumes.shape[0]} volumes but {b} matrices/shifts")
    coords = _grid_coordinates(n)
    step = max(_CHUNK // b, 1)
    m = n * n * n
    if m <= step:
        out = _rotate_batch(volumes, matrices, shifts, index, n, coords)
    else:
        out = tf.concat([_rotate_batch(volumes, matrices, shifts, index, n, coords[i:i + step])
                         for i in range(0, m, step)], axis=1)
    out = tf.reshape(out, [b, n, n, n])
    return out if batched else out[0]


def mirror_volume(volume):
    """The mirror image ``v(x, y, -z)`` about the centre ``N // 2`` (exact, no interpolation).

    Args:
      volume: ``[..., N, N, N]`` float32 ``[z, y, x]``.
    Returns:
      same shape; for odd ``N`` it is ``volume[..., ::-1, :, :]``; for even ``N`` the slice
      ``z = 0`` (whose mirror ``z = N`` is outside the box) is zero.
    """
    volume = tf.convert_to_tensor(volume, tf.float32)
    n = volume.shape[-3]
    flipped = tf.reverse(volume, axis=[-3])
    if n % 2 == 0:
        flipped = tf.concat([tf.zeros_like(flipped[..., :1, :, :]), flipped[..., :-1, :, :]],
                            axis=-3)
    return flipped


def soft_sphere_mask(box, radius, edge):
    """Spherical mask with a raised-cosine edge.

    Args:
      box: ``N``; radius: voxels from the centre ``N // 2`` where the mask is still 1; edge: width
        in voxels of the cosine fall-off from 1 to 0 (0 for a hard edge).
    Returns:
      ``[N, N, N]`` float32 in [0, 1].
    """
    r = tf.range(box, dtype=tf.float32) - float(box // 2)
    d = tf.sqrt(r[:, None, None] ** 2 + r[None, :, None] ** 2 + r[None, None, :] ** 2)
    if edge <= 0:
        return tf.cast(d <= radius, tf.float32)
    t = tf.clip_by_value((d - radius) / float(edge), 0.0, 1.0)
    return 0.5 * (1.0 + tf.cos(math.pi * t))


# ---------------------------------------------------------------------------------------------
# Rotations


def _quaternion_to_matrix(q):
    """Unit quaternions ``[..., 4]`` ``(w, x, y, z)`` -> rotation matrices ``[..., 3, 3]``."""
    w, x, y, z = tf.unstack(q, axis=-1)
    rows = [
        tf.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], axis=-1),
        tf.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], axis=-1),
        tf.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], axis=-1),
    ]
    return tf.stack(rows, axis=-2)


def rotation_grid(n):
    """``n`` near-uniform rotations (super-Fibonacci spiral in quaternion space, Alexa 2022).

    Mean spacing is about ``(8 pi^2 / n)^(1/3)`` rad: ~15 degrees for ``n = 4000``.

    Returns:
      ``[n, 3, 3]`` float32 proper rotation matrices (deterministic).
    """
    phi = math.sqrt(2.0)
    psi = 1.533751168755204288118041
    s = np.arange(n, dtype=np.float64) + 0.5
    t = s / n
    r, big_r = np.sqrt(t), np.sqrt(1.0 - t)
    alpha, beta = 2.0 * math.pi * s / phi, 2.0 * math.pi * s / psi
    q = np.stack([r * np.sin(alpha), r * np.cos(alpha), big_r * np.sin(beta),
                  big_r * np.cos(beta)], axis=-1).astype(np.float32)
    return _quaternion_to_matrix(tf.constant(q))


def axis_angle_to_matrix(vector):
    """Rodrigues' formula: rotation vectors (axis times angle in radians) -> matrices.

    Args:
      vector: ``[..., 3]`` float32 ``(x, y, z)``; its norm is the angle (radians, right-handed).
    Returns:
      ``[..., 3, 3]`` float32; differentiable, also at 0.
    """
    v = tf.convert_to_tensor(vector, tf.float32)
    theta2 = tf.reduce_sum(v * v, axis=-1)[..., None, None]
    theta = tf.sqrt(theta2 + 1e-12)
    x, y, z = tf.unstack(v, axis=-1)
    zero = tf.zeros_like(x)
    k = tf.stack([tf.stack([zero, -z, y], -1), tf.stack([z, zero, -x], -1),
                  tf.stack([-y, x, zero], -1)], -2)
    # sin(t)/t and (1 - cos t)/t^2 with Taylor series near 0.
    small = theta2 < 1e-6
    a = tf.where(small, 1.0 - theta2 / 6.0, tf.sin(theta) / theta)
    b = tf.where(small, 0.5 - theta2 / 24.0, (1.0 - tf.cos(theta)) / (theta * theta))
    eye = tf.eye(3, batch_shape=tf.shape(v)[:-1], dtype=tf.float32)
    return eye + a * k + b * tf.matmul(k, k)


def rotation_angle(a, b):
    """Angle (degrees) of the rotation ``a^T b`` between rotations (numpy ``[..., 3, 3]``)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    trace = np.einsum("...ji,...ji->...", a, b)
    return np.degrees(np.arccos(np.clip((trace - 1.0) / 2.0, -1.0, 1.0)))


# ---------------------------------------------------------------------------------------------
# Global search


def _prepare(volume, mask=None):
    """Mean-subtract (under the mask), apply the mask and scale to unit norm: ``[N, N, N]``."""
    if mask is None:
        v = volume - tf.reduce_mean(volume)
    else:
        v = (volume - tf.reduce_sum(volume * mask) / tf.reduce_sum(mask)) * mask
    return v / tf.maximum(tf.norm(v), 1e-20)


def _lag_mask(p, max_shift):
    """``[P, P, P]`` bool: circular lags (FFT order) with length <= max_shift voxels."""
    k = tf.range(p, dtype=tf.float32)
    k = tf.where(k < (p + 1) // 2, k, k - p)
    d2 = k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2
    return d2 <= float(max_shift) ** 2 + 1e-3


@tf.function(jit_compile=True)
def _rotate_flat(flat, matrices, n):
    """``[n^3]`` volume, ``[B, 3, 3]`` matrices -> ``[B, n^3]`` rotated (XLA-compiled: ~7x faster
    than the plain graph on CPU)."""
    return _resample_flat(flat, matrices, tf.zeros([tf.shape(matrices)[0], 3]), n)


@tf.function
def _search_batch(flat, ref_spectrum, lag_ok, matrices, n, p):
    """Best correlation over lags for each matrix (graph code).

    Args:
      flat: ``[n^3]`` the prepared moving volume, flattened; ref_spectrum: ``[P, P, P // 2 + 1]``
        rfft of the zero-padded prepared reference; lag_ok: ``[P, P, P]`` bool;
        matrices: ``[B, 3, 3]``; n, p: boxes (Python ints).
    Returns:
      ``(score [B], lag [B, 3] int32 (z, y, x) in FFT order)``.
    """
    rotated = _rotate_flat(flat, matrices, n)
    norm = tf.norm(rotated, axis=-1)
    rotated = tf.reshape(rotated, [-1, n, n, n])
    padded = tf.pad(rotated, [[0, 0], [0, p - n], [0, p - n], [0, p - n]])
    spectrum = tf.signal.rfft3d(padded)
    cc = tf.signal.irfft3d(tf.math.conj(spectrum) * ref_spectrum[None], fft_length=[p, p, p])
    cc = tf.where(lag_ok[None], cc, -1e30)
    cc = tf.reshape(cc, [-1, p * p * p])
    best = tf.argmax(cc, axis=-1, output_type=tf.int32)
    score = tf.gather(cc, best, batch_dims=1) / tf.maximum(norm, 1e-20)
    lag = tf.stack([best // (p * p), (best // p) % p, best % p], axis=-1)
    return score, lag


def _fft_size(m):
    """Smallest ``2^a 3^b 5^c >= m`` (fast FFT sizes)."""
    size = m
    while True:
        rest = size
        for f in (2, 3, 5):
            while rest % f == 0:
                rest //= f
        if rest == 1:
            return size
        size += 1


def _global_search(moving, reference, matrices, max_shift, batch_size):
    """Exhaustive search over ``matrices`` with FFT translations at the (small) box of the inputs.

    Returns numpy ``(scores [K], shifts [K, 3] (x, y, z) voxels)``."""
    n = moving.shape[-1]
    s_max = max(int(math.floor(max_shift)), 0)
    p = _fft_size(n + s_max)  # zero padding: no wrap-around for lags up to s_max
    ref_padded = tf.pad(reference, [[0, p - n]] * 3)
    ref_spectrum = tf.signal.rfft3d(ref_padded)
    lag_ok = _lag_mask(p, max_shift)
    flat = tf.reshape(moving, [-1])
    total = matrices.shape[0]
    batch_size = min(batch_size, total)
    scores, lags = [], []
    for start in range(0, total, batch_size):
        batch = matrices[start:start + batch_size]
        if batch.shape[0] < batch_size:  # pad the last batch: one compiled shape
            batch = tf.concat([batch, tf.repeat(batch[-1:], batch_size - batch.shape[0], 0)], 0)
        s, lag = _search_batch(flat, ref_spectrum, lag_ok, batch, n, p)
        scores.append(s.numpy())
        lags.append(lag.numpy())
    scores = np.concatenate(scores)[:total]
    lags = np.concatenate(lags)[:total]
    lags = np.where(lags < (p + 1) // 2, lags, lags - p)[:, ::-1]  # (x, y, z)
    return scores, lags.astype(np.float32)


def _pick_candidates(scores, matrices, per_hand, n_rot, min_angle):
    """Indices of the best ``per_hand`` grid rotations of each hand, at least ``min_angle`` degrees
    apart (non-maximum suppression)."""
    picked = []
    for hand in range(len(scores) // n_rot):
        order = np.argsort(-scores[hand * n_rot:(hand + 1) * n_rot]) + hand * n_rot
        chosen = []
        for i in order:
            if all(rotation_angle(matrices[i], matrices[j]) > min_angle for j in chosen):
                chosen.append(i)
                if len(chosen) == per_hand:
                    break
        picked.extend(chosen)
    return picked


# ---------------------------------------------------------------------------------------------
# Local refinement


def _refine_correlation(moving, ref_weighted, weight, base, params, n):
    """Masked correlation of ``rotate(moving, expm(w) @ base, t)`` with the reference (graph code).

    Weighted Pearson correlation with the soft-mask weights ``weight`` in the reference frame
    (so that the mask does not move with the map and cannot bias the shift).

    Args:
      moving: ``[n^3]`` flattened moving map; ref_weighted: ``[n^3]`` ``w (b - mean_w b)``, scaled
        to ``sum w (b - mean_w b)^2 = 1``; weight: ``[n^3]`` mask ``w``; base: ``[K, 3, 3]``;
      params: ``[K, 6]`` rotation vector in degrees and shift ``(x, y, z)`` in voxels of this box;
      n: box (Python int).
    Returns:
      ``[K]`` correlations.
    """
    rot = axis_angle_to_matrix(params[:, :3] * (math.pi / 180.0))
    matrices = tf.matmul(rot, base)
    out = _resample_flat(moving, matrices, params[:, 3:], n)
    num = tf.reduce_sum(out * ref_weighted[None], axis=-1)
    s1 = tf.reduce_sum(out * weight[None], axis=-1)
    s2 = tf.reduce_sum(out * out * weight[None], axis=-1)
    var = s2 - s1 * s1 / tf.reduce_sum(weight)
    return num / tf.sqrt(tf.maximum(var, 1e-30))


@tf.function(jit_compile=True)
def _refine_step(moving, ref_weighted, weight, base, params, m1, m2, count, lr, n):
    """One Adam ascent step on the summed correlations; returns ``(params, m1, m2, corr)``."""
    with tf.GradientTape() as tape:
        tape.watch(params)
        corr = _refine_correlation(moving, ref_weighted, weight, base, params, n)
        loss = -tf.reduce_sum(corr)
    grad = tape.gradient(loss, params)
    m1 = 0.9 * m1 + 0.1 * grad
    m2 = 0.999 * m2 + 0.001 * grad * grad
    m1_hat = m1 / (1.0 - 0.9 ** count)
    m2_hat = m2 / (1.0 - 0.999 ** count)
    params = params - lr * m1_hat / (tf.sqrt(m2_hat) + 1e-12)
    return params, m1, m2, corr


_final_correlation = tf.function(_refine_correlation)  # one call: not worth an XLA compile


@dataclass
class _Level:
    """One level of the pyramid: flattened ``moving``, weighted reference and mask at box ``n``."""

    n: int
    moving: tf.Tensor
    ref_weighted: tf.Tensor
    weight: tf.Tensor

    @classmethod
    def make(cls, moving, reference, mask):
        n = moving.shape[-1]
        w = tf.reshape(mask, [-1])
        b = tf.reshape(reference, [-1])
        b = b - tf.reduce_sum(w * b) / tf.reduce_sum(w)
        ref_w = w * b / tf.sqrt(tf.maximum(tf.reduce_sum(w * b * b), 1e-30))
        a = tf.reshape(moving, [-1])
        a = a - tf.reduce_mean(a)
        a = a / tf.maximum(tf.norm(a), 1e-20)
        return cls(n, a, ref_w, w)

    def correlation(self, matrices, shifts):
        """``[K]`` numpy correlations for ``[K, 3, 3]`` matrices, ``[K, 3]`` shifts (this box)."""
        k = len(matrices)
        params = tf.concat([tf.zeros([k, 3]), tf.constant(shifts, tf.float32)], axis=-1)
        zeros = tf.zeros_like(params)
        # A step with zero learning rate: the same compiled function as the refinement.
        _, _, _, corr = _refine_step(self.moving, self.ref_weighted, self.weight,
                                     tf.constant(matrices, tf.float32), params, zeros, zeros,
                                     tf.constant(1.0), tf.zeros([6]), self.n)
        return corr.numpy()

    def refine(self, base, shifts, steps, lr_angle, lr_shift):
        """Adam on (rotation vector, shift) for each candidate, cosine-decayed learning rates.

        Args:
          base: ``[K, 3, 3]`` starting matrices (improper allowed); shifts: ``[K, 3]`` starting
            shifts in voxels of this box; lr_angle (degrees), lr_shift (voxels): first step sizes.
        Returns:
          numpy ``(matrices [K, 3, 3], shifts [K, 3], correlations [K])``.
        """
        base = tf.constant(base, tf.float32)
        k = base.shape[0]
        params = tf.concat([tf.zeros([k, 3]), tf.constant(shifts, tf.float32)], axis=-1)
        m1 = tf.zeros_like(params)
        m2 = tf.zeros_like(params)
        lr0 = tf.constant([lr_angle] * 3 + [lr_shift] * 3, tf.float32)
        for i in range(steps):
            decay = 0.03 + 0.97 * 0.5 * (1.0 + math.cos(math.pi * i / max(steps - 1, 1)))
            params, m1, m2, _ = _refine_step(self.moving, self.ref_weighted, self.weight, base,
                                             params, m1, m2, tf.constant(i + 1.0), lr0 * decay,
                                             self.n)
        params = params.numpy()
        matrices = axis_angle_to_matrix(params[:, :3] * (math.pi / 180.0)).numpy() @ base.numpy()
        return matrices, params[:, 3:], self.correlation(matrices, params[:, 3:])


# ---------------------------------------------------------------------------------------------
# Public entry point


@dataclass
class AlignResult:
    """What :func:`align` found.

    ``aligned_volume = rotate_volume(volume, matrix @ MIRROR if flipped else matrix, shift_voxels)``
    (computed with less interpolation blur, see :func:`align`).

    Attributes:
      aligned_volume: ``[N, N, N]`` float32 numpy, the input volume moved onto the reference.
      matrix: ``[3, 3]`` float32 proper rotation (acting on ``(x, y, z)``).
      flipped: True when the volume was mirrored (``z -> -z``) before the rotation: the other hand.
      shift_voxels: ``[3]`` float32 ``(x, y, z)`` shift in voxels applied after the rotation.
      correlation: Pearson correlation of the aligned map and the reference at full size (at most
        ``max_refine_box``, Fourier-cropped), weighted by the alignment's soft spherical mask
        (centred in the reference's box).
      seconds: wall time of the alignment.
    """

    aligned_volume: np.ndarray
    matrix: np.ndarray
    flipped: bool
    shift_voxels: np.ndarray
    correlation: float
    seconds: float = 0.0


def _pyramid(n, coarse_box):
    """Boxes of the levels: the global-search box, then up to 32, then ``n``."""
    n_coarse = n if n < coarse_box + 4 else coarse_box
    levels = [n_coarse]
    if n > 40 and n_coarse < 28:
        levels.append(32)
    if levels[-1] != n:
        levels.append(n)
    return levels


def align(volume, reference, *, allow_flip=True, n_rotations=4000, coarse_box=20,
          max_shift=None, mask_radius=None, candidates_per_hand=3, refine_steps=60,
          batch_size=128, oversample=None, max_refine_box=128):
    """Find the rotation, hand and shift that best superpose ``volume`` on ``reference``.

    Method (all maps Gaussian low-passed to ``sigma = box / 4`` cycles per box of their level, and
    compared inside a soft spherical mask centred in the reference's box):

    1. global search: both maps are Fourier-cropped to ``coarse_box`` voxels and masked; the
       ``n_rotations`` near-uniform rotations of :func:`rotation_grid` (and the same ones after
       the mirror, with ``allow_flip``) are tried in batches of ``batch_size``, each with its best
       translation (up to ``max_shift``) from a zero-padded FFT cross-correlation;
    2. local refinement: the best ``candidates_per_hand`` rotations of each hand (> 20 degrees
       apart) are refined together by gradient ascent (Adam, ``refine_steps`` steps per level) on
       a rotation vector and a shift through :func:`rotate_volume`, maximising the masked Pearson
       correlation; first at the coarse box, then at 32 voxels (maps above 40), then at full size
       (at most ``max_refine_box``, Fourier-cropped) for the best candidate of each hand (the other
       hand is dropped there when its correlation is lower by more than 0.05);
    3. the candidate with the highest final correlation wins, which decides the hand;
    4. the returned ``aligned_volume`` is resampled from a 2x Fourier-upsampled copy of ``volume``
       (``oversample``), which all but removes the blur of trilinear interpolation (without it the
       FSC of a perfectly aligned map drops to ~0.5 near Nyquist).

    Args:
      volume, reference: ``[N, N, N]`` float32 maps on the same grid (numpy or tensors).
      allow_flip: also search the mirror image (the other hand).
      n_rotations: size of the global rotation grid per hand (4000: ~15 degree spacing).
      coarse_box: box of the global search (maps smaller than ``coarse_box + 4`` are not cropped).
      max_shift: largest shift searched, voxels of the full box (default ``N / 4``).
      mask_radius: radius in voxels where the soft mask is 1 (default ``N / 2 - 1 - edge``, with a
        cosine edge of ``max(N / 16, 1.5)`` voxels).
      candidates_per_hand, refine_steps, batch_size: search effort.
      oversample: upsampling factor (1 or 2) for the final resampling; default 2 up to N = 96 and 1
        above (memory).
      max_refine_box: largest box of the refinement (bigger maps are refined Fourier-cropped to
        it, which is ample for the angles and shift, and their correlation is measured there).
    Returns:
      :class:`AlignResult`. Measured on 2 shared CPU cores: ~3.3 s at N = 32 and ~6-7 s at N = 64;
      the first call in a process adds ~5 s (N = 32) to ~6 s (N = 64) of XLA compilation.
    """
    start = time.perf_counter()
    v = tf.convert_to_tensor(volume, tf.float32)
    ref = tf.convert_to_tensor(reference, tf.float32)
    n = v.shape[-1]
    if v.shape.rank != 3 or tuple(v.shape) != (n, n, n) or tuple(ref.shape) != (n, n, n):
        raise ValueError(f"align needs two cubic maps of one box, got {v.shape} and {ref.shape}")
    if max_shift is None:
        max_shift = n / 4.0
    edge = max(n / 16.0, 1.5)
    if mask_radius is None:
        mask_radius = n / 2.0 - 1.0 - edge

    def level(size, lowpass=True):
        s = size / n
        sigma = size / 4.0 if lowpass else None
        mask = soft_sphere_mask(size, mask_radius * s, edge * s)
        if sigma is not None:
            return (fourier.fourier_crop(fourier.gaussian_lowpass(v, sigma, 3), size, 3),
                    fourier.fourier_crop(fourier.gaussian_lowpass(ref, sigma, 3), size, 3), mask)
        return fourier.fourier_crop(v, size, 3), fourier.fourier_crop(ref, size, 3), mask

    n_top = min(n, int(max_refine_box))
    levels = _pyramid(n_top, coarse_box)
    hands = [np.eye(3, dtype=np.float32)] + ([MIRROR] if allow_flip else [])

    # 1. Global search at the coarse box.
    n_c = levels[0]
    moving_c, ref_c, mask_c = level(n_c)
    grid = rotation_grid(n_rotations).numpy()
    matrices = np.concatenate([grid @ h for h in hands]).astype(np.float32)
    scale = n_c / n
    scores, shifts = _global_search(_prepare(moving_c, mask_c), _prepare(ref_c, mask_c),
                                    tf.constant(matrices), max_shift * scale, batch_size)
    picked = _pick_candidates(scores, matrices, candidates_per_hand, n_rotations, 20.0)
    cand_m = matrices[picked]
    cand_t = shifts[picked] / scale  # in full-box voxels
    hand_of = np.array([i // n_rotations for i in picked])
    corr = scores[picked]

    # 2. Local refinement, coarse to fine.
    for li, size in enumerate(levels):
        last = li == len(levels) - 1
        if li > 0:
            # Drop candidates that converged onto a better one (same hand, < 3 degrees apart);
            # at full size (the expensive step) keep only the best of each hand, and drop the
            # other hand when it is clearly worse.
            keep = []
            for i in np.argsort(-corr):
                if all(hand_of[i] != hand_of[j] or rotation_angle(cand_m[i], cand_m[j]) > 3.0
                       for j in keep):
                    if last and any(hand_of[i] == hand_of[j] for j in keep):
                        continue
                    if last and keep and corr[i] < corr[keep[0]] - 0.05:
                        continue
                    keep.append(int(i))
            cand_m, cand_t, hand_of, corr = cand_m[keep], cand_t[keep], hand_of[keep], corr[keep]
        data = _Level.make(*level(size)) if size != n_c else _Level.make(moving_c, ref_c, mask_c)
        s = size / n
        lr_angle = (8.0, 3.0, 1.5)[min(li, 2)]
        cand_m, t_l, corr = data.refine(cand_m, cand_t * s, refine_steps, lr_angle, 0.5)
        cand_t = t_l / s

    # 3. The best candidate; the reported correlation is at the top level without the low-pass.
    best = int(np.argmax(corr))
    flipped = bool(hand_of[best] == 1)
    proper = cand_m[best] @ MIRROR if flipped else cand_m[best]
    u, _, vt = np.linalg.svd(proper.astype(np.float64))  # re-orthonormalise float32 drift
    proper = (u @ vt).astype(np.float32)
    final_m = proper @ MIRROR if flipped else proper
    shift = cand_t[best].astype(np.float32)
    top = _Level.make(*level(n_top, lowpass=False))
    top_shift = shift * (n_top / n)
    correlation = float(_final_correlation(top.moving, top.ref_weighted, top.weight,
                                           final_m[None],
                                           tf.constant([[0.0] * 3 + list(top_shift)]), n_top)[0])
    if oversample is None:
        oversample = 2 if n <= 96 else 1
    if oversample > 1:
        big = fourier.fourier_crop(v, oversample * n, 3)
        aligned = fourier.fourier_crop(rotate_volume(big, final_m, oversample * shift), n,
                                       3).numpy()
    else:
        aligned = rotate_volume(v, final_m, shift).numpy()
    return AlignResult(aligned_volume=aligned, matrix=proper, flipped=flipped, shift_voxels=shift,
                       correlation=correlation, seconds=time.perf_counter() - start)
