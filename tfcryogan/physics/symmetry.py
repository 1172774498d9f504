"""Point-group symmetry of volumes, RELION's axis conventions.

``C1``; ``Cn``: n-fold axis along z; ``Dn``: n-fold along z and a 2-fold along x (so ``D2`` has
2-folds along z, x and y, as RELION's D2 for beta-galactosidase). :func:`symmetrize` averages a
volume over its group, the projection onto symmetric volumes (linear, so gradients are symmetrised
too). Rotations by multiples of 90 degrees are exact index permutations; other in-plane angles are
trilinear (bilinear per z-slice) resampling.
"""

import math
import re

import tensorflow as tf

from tfcryogan.errors import InputError


def parse_symmetry(text):
    """``"C1"``, ``"C7"``, ``"D2"``... -> ``(kind, n)``; InputError for anything else."""
    m = re.fullmatch(r"\s*([CcDd])\s*(\d+)\s*", str(text))
    if not m or int(m.group(2)) < 1:
        raise InputError(f"--symmetry={text}: expected C1, Cn or Dn (n >= 1), RELION's convention")
    return m.group(1).upper(), int(m.group(2))


def _flip_about_centre(volume, axis):
    """Reflect one axis about index N // 2 (index i -> 2 (N // 2) - i; wraps the one plane that
    falls outside for even N, which the support mask keeps empty)."""
    n = volume.shape[axis]
    flipped = tf.reverse(volume, [axis])
    # reverse maps i -> N - 1 - i; we need i -> 2 c - i with c = N // 2.
    return tf.roll(flipped, shift=2 * (n // 2) - (n - 1), axis=axis)


def _rotate_z_quarter(volume, quarters):
    """Rotation about z by ``quarters * 90`` degrees about the centre (exact)."""
    quarters %= 4
    if quarters == 0:
        return volume
    if quarters == 2:
        return _flip_about_centre(_flip_about_centre(volume, -1), -2)
    # 90 degrees: (x, y) -> (-y, x), i.e. transpose y/x then flip one axis.
    rank = volume.shape.rank
    perm = list(range(rank - 2)) + [rank - 1, rank - 2]
    swapped = tf.transpose(volume, perm)
    return _flip_about_centre(swapped, -1 if quarters == 1 else -2)


def _rotate_z(volume, angle_deg):
    """Rotation about z by an arbitrary angle, bilinear per z-slice, zero outside."""
    n = volume.shape[-1]
    c = float(n // 2)
    t = math.radians(angle_deg)
    idx = tf.cast(tf.range(n), tf.float32) - c
    y, x = tf.meshgrid(idx, idx, indexing="ij")
    # Output voxel (x, y) reads the input at R^T (x, y).
    xs = math.cos(t) * x + math.sin(t) * y + c
    ys = -math.sin(t) * x + math.cos(t) * y + c
    x0, y0 = tf.floor(xs), tf.floor(ys)
    fx, fy = xs - x0, ys - y0
    x0, y0 = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
    flat = tf.reshape(volume, [-1, n * n])  # [..., z] rows of y*x planes
    out = 0.0
    for dy, wy in ((0, 1.0 - fy), (1, fy)):
        for dx, wx in ((0, 1.0 - fx), (1, fx)):
            xi, yi = x0 + dx, y0 + dy
            valid = (xi >= 0) & (xi < n) & (yi >= 0) & (yi < n)
            index = tf.where(valid, yi * n + xi, 0)
            taps = tf.gather(flat, tf.reshape(index, [-1]), axis=1)
            w = tf.reshape(tf.where(valid, wx * wy, 0.0), [-1])
            out = out + taps * w
    return tf.reshape(out, tf.shape(volume))


def symmetrize(volume, symmetry):
    """Average ``volume`` over the symmetry group.

    Args:
      volume: ``[..., N, N, N]`` float32 (``[z, y, x]``), centre ``N // 2``.
      symmetry: ``"C1"``, ``"Cn"`` or ``"Dn"``.
    Returns:
      The symmetrised volume, same shape.
    """
    kind, n = parse_symmetry(symmetry)
    volume = tf.convert_to_tensor(volume, tf.float32)
    if kind == "C" and n == 1:
        return volume
    parts = []
    for k in range(n):
        if (4 * k) % n == 0:
            parts.append(_rotate_z_quarter(volume, 4 * k // n))
        else:
            parts.append(_rotate_z(volume, 360.0 * k / n))
    out = tf.add_n(parts) / float(n)
    if kind == "D":
        # 2-fold about x: (x, y, z) -> (x, -y, -z).
        out = 0.5 * (out + _flip_about_centre(_flip_about_centre(out, -2), -3))
    return out
