"""Noise models: SNR definition, coloured spectra, patches."""

import numpy as np
import tensorflow as tf

from tfcryogan.physics import fourier, noise


def test_white_noise_reaches_target_snr():
    rng = np.random.default_rng(0)
    clean = rng.normal(0, 3.0, (64, 32, 32)).astype(np.float32)
    sigma = noise.sigma_for_snr(noise.signal_variance(clean), -10.0)
    n = noise.white_noise([64, 32, 32], sigma, tf.constant([1, 2], tf.int64)).numpy()
    snr = np.var(clean, axis=(1, 2)).mean() / n.var()
    assert abs(10 * np.log10(snr) + 10.0) < 0.1


def test_radial_psd_of_white_noise_is_flat_sigma_squared():
    n = noise.white_noise([200, 32, 32], 2.0, tf.constant([3, 4], tf.int64))
    psd = noise.estimate_radial_psd(n).numpy()
    inner = psd[1:16]
    np.testing.assert_allclose(inner, 4.0, rtol=0.1)


def test_colored_noise_has_requested_spectrum_and_sigma():
    box = 32
    bins = noise.radial_bins(box)
    r = np.arange(bins, dtype=np.float32)
    psd = (1.0 / (1.0 + (r / 4.0) ** 2)).astype(np.float32)
    n = noise.colored_noise([300, box, box], psd, tf.constant([5, 6], tf.int64), sigma=1.5)
    assert abs(float(tf.math.reduce_std(n)) - 1.5) < 0.05
    est = noise.estimate_radial_psd(n, radius_fraction=0.0).numpy()
    shape = est[1:14] / est[1]
    np.testing.assert_allclose(shape, psd[1:14] / psd[1], rtol=0.15)


def test_resampled_psd_keeps_frequency_axis():
    psd = np.linspace(10, 1, noise.radial_bins(64)).astype(np.float32)
    # Box 32 at twice the pixel size covers the same frequencies up to half the bins.
    out = noise.resample_radial_psd(psd, 64, 1.0, 32, 2.0).numpy()
    np.testing.assert_allclose(out[:16], psd[:16], rtol=1e-5)


def test_normalize_patches():
    rng = np.random.default_rng(2)
    patches = rng.normal(5.0, 3.0, (4, 16, 16)).astype(np.float32)
    out = noise.normalize_patches(patches, 0.5).numpy()
    np.testing.assert_allclose(out.mean(axis=(1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(1, 2)), 0.5, rtol=1e-3)


def test_resample_images_downsamples_a_gaussian():
    c = np.arange(64) - fourier.image_origin(64)
    y, x = np.meshgrid(c, c, indexing="ij")
    img = np.exp(-(x ** 2 + y ** 2) / (2 * 6.0 ** 2)).astype(np.float32)[None]
    out = fourier.resample_images(img, 1.0, 2.0, 24).numpy()[0]
    c2 = np.arange(24) - fourier.image_origin(24)
    y2, x2 = np.meshgrid(c2, c2, indexing="ij")
    want = np.exp(-(x2 ** 2 + y2 ** 2) / (2 * 3.0 ** 2))
    np.testing.assert_allclose(out, want, atol=0.01)
