"""Fourier shell correlation and resolution estimates.

Shells are integer radii ``r = 0 .. N // 2`` of the 3D frequency grid (cycles per box); shell ``r`` is
the spatial frequency ``r / (N * pixel_size)`` 1/A, and ``r = N / 2`` is Nyquist.
"""

import numpy as np
import tensorflow as tf


def fsc(volume_a, volume_b):
    """FSC between two maps of the same box.

    Args:
      volume_a, volume_b: ``[N, N, N]`` float32 maps (same grid, same origin).
    Returns:
      ``[N // 2 + 1]`` float32 correlation per shell (shell 0 is the mean; 1 by convention when
      both are non-zero).
    """
    a = tf.signal.rfft3d(tf.convert_to_tensor(volume_a, tf.float32))
    b = tf.signal.rfft3d(tf.convert_to_tensor(volume_b, tf.float32))
    n = volume_a.shape[-1]
    k = tf.cast(tf.range(n), tf.float32)
    k = tf.where(k < (n + 1) // 2, k, k - n)
    kx = tf.cast(tf.range(n // 2 + 1), tf.float32)
    radius = tf.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + kx[None, None, :] ** 2)
    shell = tf.reshape(tf.cast(tf.round(radius), tf.int32), [-1])
    # Half-spectrum columns 1 .. ceil(N/2)-1 stand for two Fourier coefficients; weights cancel
    # in the ratio except for their relative counts, so weight them properly.
    weight = np.full(n // 2 + 1, 2.0, np.float32)
    weight[0] = 1.0
    if n % 2 == 0:
        weight[-1] = 1.0
    w = tf.reshape(tf.broadcast_to(tf.constant(weight), a.shape), [-1])
    a, b = tf.reshape(a, [-1]), tf.reshape(b, [-1])
    shells = n // 2 + 1
    keep = shell < shells
    shell, w, a, b = (tf.boolean_mask(t, keep) for t in (shell, w, a, b))
    cross = tf.math.unsorted_segment_sum(w * tf.math.real(a * tf.math.conj(b)), shell, shells)
    pa = tf.math.unsorted_segment_sum(w * tf.abs(a) ** 2, shell, shells)
    pb = tf.math.unsorted_segment_sum(w * tf.abs(b) ** 2, shell, shells)
    return cross / tf.sqrt(tf.maximum(pa * pb, 1e-30))


def resolution(curve, box, pixel_size, threshold):
    """Resolution (A) where an FSC curve first falls below ``threshold``.

    The crossing is linearly interpolated between shells. If the curve never falls below, the
    Nyquist resolution ``2 * pixel_size`` is returned.

    Args:
      curve: ``[N // 2 + 1]`` FSC values (numpy or tensor).
      box: ``N``; pixel_size: A/voxel; threshold: e.g. 0.5 or 0.143.
    Returns:
      ``(resolution_A, fraction_of_nyquist)``.
    """
    c = np.asarray(curve, np.float64)
    shell = crossing_shell(c, threshold)
    freq = shell / (box * pixel_size)
    return (1.0 / freq if freq > 0 else float("inf")), shell / (box / 2.0)


def crossing_shell(curve, threshold):
    """Fractional shell index where ``curve`` first drops below ``threshold`` (shell 1 onward);
    the last shell if it never does."""
    c = np.asarray(curve, np.float64)
    for i in range(1, len(c)):
        if c[i] < threshold:
            prev = c[i - 1]
            return float(i - 1 + (prev - threshold) / (prev - c[i])) if prev != c[i] else float(i)
    return float(len(c) - 1)
