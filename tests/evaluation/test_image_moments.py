"""The image moments (Kam's ring correlations): blind to in-plane rotations about the particle's
centre but not to shifts, plane waves on the right rings at the right angles, the mismatch in
units of the variance, and the data set's mean and variance."""

import numpy as np
import pytest
import tensorflow as tf

from tfcryogan.evaluation import image_moments


def two_blobs(box, angle):
    """Two Gaussian blobs, turned by ``angle`` (radians) about the pixel ``box // 2``."""
    yy, xx = np.indices((box, box)) - box // 2
    c, s = np.cos(angle), np.sin(angle)
    x, y = c * xx + s * yy, -s * xx + c * yy
    return (np.exp(-((x - 5) ** 2 + (y - 2) ** 2) / 8.0)
            + 0.6 * np.exp(-((x + 4) ** 2 + (y + 6) ** 2) / 5.0)).astype(np.float32)


def relative(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_moments_ignore_turns_about_the_particle_centre_but_not_shifts():
    moments = image_moments.ImageMoments(32)
    image = two_blobs(32, 0.0)
    s = moments.per_image(np.stack([image, two_blobs(32, np.pi / 2), two_blobs(32, 0.5),
                                    np.roll(image, 3, axis=1)])).numpy()
    assert relative(s[1], s[0]) < 1e-5  # a quarter turn maps the rings onto themselves
    assert relative(s[2], s[0]) < 0.05  # any turn, up to the rings' interpolation
    assert relative(s[3], s[0]) > 0.3  # a 3-pixel shift is not a turn


def test_a_plane_wave_lands_on_its_ring_at_its_angle():
    box = 16
    moments = image_moments.ImageMoments(box)
    x = np.arange(box) - box // 2
    along_x = np.tile(np.cos(2 * np.pi * 5 * x / box), (box, 1)).astype(np.float32)
    g = moments.ring_spectra(np.stack([along_x, along_x.T])).numpy()  # [2, R, M]
    ring = np.abs(g[0]).max(axis=1)
    assert np.argmax(ring) == 4  # radius 5 (rings start at 1)
    assert ring[:3].max() < 1e-3 * ring[4]  # nothing on rings 1-3
    # Peaks at 0 and 180 degrees: the odd angular orders cancel, the even ones add.
    assert np.abs(g[0, 4, 1::2]).max() < 1e-4 * abs(g[0, 4, 0])
    # The same wave along y sits a quarter turn further: order 2 changes sign.
    np.testing.assert_allclose(g[1, 4, 2], -g[0, 4, 2], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(g[1, 4, 0], g[0, 4, 0], rtol=1e-4)


def test_mismatch_is_the_squared_difference_in_units_of_the_variance():
    target = tf.constant([[[1 + 1j, 2 + 0j]]], tf.complex64)
    estimate = tf.constant([[[1 + 3j, 0 + 0j]]], tf.complex64)
    inverse = image_moments.inverse_variance(np.array([[[2.0, 4.0]]]))
    np.testing.assert_allclose(inverse, [[[0.5, 0.25]]])
    # (|2i|^2 / 2 + |-2|^2 / 4) / 2 entries
    assert float(image_moments.mismatch(estimate, target, inverse)) == pytest.approx(1.5)
    assert float(image_moments.mismatch(target, target, inverse)) == 0.0
    # A near-zero variance is floored at 1e-3 of the median, not divided by.
    assert image_moments.inverse_variance(np.array([1.0, 1.0, 0.0])).max() == pytest.approx(1e3)


def test_data_moments_are_the_mean_and_variance_over_the_first_images():
    moments = image_moments.ImageMoments(16)
    images = np.random.default_rng(1).normal(size=(15, 16, 16)).astype(np.float32)
    batches = (images[i:i + 5] for i in range(0, 15, 5))
    mean, variance, count = image_moments.data_moments(moments, batches, 10)
    assert count == 10
    s = moments.per_image(images[:10]).numpy()
    np.testing.assert_allclose(mean, s.mean(0), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(variance, (np.abs(s - s.mean(0)) ** 2).mean(0), rtol=1e-3,
                               atol=1e-8)
