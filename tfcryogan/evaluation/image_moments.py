"""In-plane-rotation-invariant second moments of particle images (Kam's autocorrelation): a
pose-free measure of how well simulated images match real ones, as a whole set.

Each image's 2D Fourier transform (origin at the particle's centre) is sampled on rings of radius
``r = 1 .. N/2 - 1`` (cycles per box, bilinear on the centred FFT grid) at ``T`` angles, and
Fourier-transformed along the ring: ``G[r, m]`` (angular order ``m = 0 .. MAX_ORDER``). An in-plane
rotation of the image about its centre multiplies ``G[r, m]`` by ``exp(-i m phi)`` for every
``r``, so the products ``S[r1, r2, m] = G[r1, m] conj(G[r2, m])`` do not change: their mean over a
data set is the ring-to-ring correlation at every relative angle (Kam 1980), a statistic of the
particle and its conformations that the views' in-plane angles do not blur. A particle shift only
damps it (the same in simulation and data when the shifts' spread is).

It is a measure of a whole set, not a training term: with tens of thousands of images its
per-entry sampling noise is as large as the difference between a good and a poor conformational
model, so a gradient from it fits noise. ``bench/critic_separation.py --statistic=moments`` uses
it to compare candidate generators.
"""

import math

import numpy as np
import tensorflow as tf

from tfcryogan.physics import fourier

# The highest angular order kept: the conformational signal of a small box lives at low orders,
# and each order adds R^2 entries.
MAX_ORDER = 24


def ring_sampling(box):
    """Bilinear sampling of the rings on the centred ``box x box`` FFT grid.

    Returns ``(indices, weights, n_radii, n_angles)``: ``indices`` int32 ``[R * T, 4]`` into the
    flattened grid (row-major ``[ky, kx]``, zero frequency at ``box // 2``), ``weights`` float32
    ``[R * T, 4]``; ring ``r`` (1-based radius in cycles per box) occupies rows
    ``(r - 1) * T .. r * T - 1``, angle ``t`` at ``2 pi t / T`` from the ``+kx`` axis.
    """
    n_radii = box // 2 - 1
    n_angles = 8 * math.ceil(2.0 * math.pi * n_radii / 8.0)
    r = np.arange(1, n_radii + 1, dtype=np.float64)[:, None]
    theta = 2.0 * np.pi * np.arange(n_angles)[None, :] / n_angles
    x = (box // 2 + r * np.cos(theta)).ravel()
    y = (box // 2 + r * np.sin(theta)).ravel()
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0
    corners = [(0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy),
               (1, 1, fx * fy)]
    indices = np.stack([((y0 + dy) % box) * box + (x0 + dx) % box for dx, dy, _ in corners], 1)
    weights = np.stack([w for _, _, w in corners], 1)
    return (indices.astype(np.int32), weights.astype(np.float32), n_radii, n_angles)


class ImageMoments:
    """The per-image ring spectra and their second moments for images of one box size."""

    def __init__(self, box, max_order=MAX_ORDER):
        indices, weights, self.n_radii, self.n_angles = ring_sampling(box)
        self.box = int(box)
        self.max_order = min(int(max_order), self.n_angles // 2)
        self.indices = tf.constant(indices)
        self.weights = tf.constant(weights, tf.complex64)

    @property
    def shape(self):
        """Shape of the moments: ``[R, R, max_order + 1]``."""
        return [self.n_radii, self.n_radii, self.max_order + 1]

    def ring_spectra(self, images):
        """``G``: complex64 ``[B, R, max_order + 1]`` of float32 images ``[B, N, N]`` (origin at
        ``fourier.image_origin(N)``, the particle's centre: rotations about it leave ``|G|``
        unchanged)."""
        c = fourier.image_origin(self.box)
        images = tf.convert_to_tensor(images, tf.float32)
        centred = tf.roll(tf.complex(images, tf.zeros_like(images)), shift=[-c, -c], axis=[1, 2])
        f = tf.signal.fftshift(tf.signal.fft2d(centred), axes=[1, 2])
        flat = tf.reshape(f, [-1, self.box * self.box])
        rings = tf.reduce_sum(tf.gather(flat, self.indices, axis=1) * self.weights, axis=-1)
        rings = tf.reshape(rings, [-1, self.n_radii, self.n_angles])
        return tf.signal.fft(rings)[:, :, :self.max_order + 1] / float(self.n_angles)

    def per_image(self, images):
        """``S``: complex64 ``[B, R, R, max_order + 1]``, each image's ``G[r1, m] conj(G[r2, m])``."""
        g = self.ring_spectra(images)
        return g[:, :, None, :] * tf.math.conj(g[:, None, :, :])

    def mean(self, images):
        """The batch mean of :meth:`per_image`, complex64 ``[R, R, max_order + 1]``."""
        g = self.ring_spectra(images)
        return tf.einsum("brm,bsm->rsm", g, tf.math.conj(g)) / tf.cast(tf.shape(g)[0],
                                                                       tf.complex64)


def data_moments(moments, batches, max_images):
    """Mean and per-image variance of the moments over real images.

    Args:
      moments: :class:`ImageMoments`.
      batches: iterable of float32 ``[b, N, N]`` images (normalised as they will be compared).
      max_images: stop after this many images.
    Returns:
      ``(mean, variance, count)``: complex128 and float64 arrays of ``moments.shape`` (the
      variance of ``|S - mean|``, per image) and the number of images used.
    """
    total, total_sq, count = 0.0, 0.0, 0
    for images in batches:
        s = moments.per_image(images).numpy().astype(np.complex128)
        total = total + s.sum(0)
        total_sq = total_sq + (np.abs(s) ** 2).sum(0)
        count += len(s)
        if count >= max_images:
            break
    mean = total / count
    return mean, np.maximum(total_sq / count - np.abs(mean) ** 2, 0.0), count


def inverse_variance(variance):
    """float32 ``1 / variance`` of :func:`data_moments`, the variance floored at 1e-3 of its
    median (entries that hardly vary must not dominate)."""
    floor = 1e-3 * float(np.median(variance))
    return (1.0 / np.maximum(variance, floor)).astype(np.float32)


def mismatch(estimate, target, inverse_variance):
    """``mean(|estimate - target|^2 * inverse_variance)``: the per-entry squared difference of two
    mean moments (complex ``[R, R, M]``) in units of one image's variance (about
    ``1 / n1 + 1 / n2`` between independent sets of ``n1`` and ``n2`` images of one source)."""
    d = estimate - target
    return tf.reduce_mean(tf.math.real(d * tf.math.conj(d)) * inverse_variance)
