"""Noise models: SNR definition, coloured spectra, patches."""

import numpy as np
import pytest
import tensorflow as tf

from tfcryogan.physics import noise


def test_white_noise_reaches_target_snr():
    rng = np.random.default_rng(0)
    clean = rng.normal(0, 3.0, (64, 32, 32)).astype(np.float32)
    sigma = noise.sigma_for_snr(noise.signal_variance(clean), -10.0)
    n = (sigma * noise.WhiteNoise().sample([64, 32, 32], tf.constant([1, 2], tf.int64))).numpy()
    snr = np.var(clean, axis=(1, 2)).mean() / n.var()
    assert abs(10 * np.log10(snr) + 10.0) < 0.1


def test_radial_psd_of_white_noise_is_flat_sigma_squared():
    n = 2.0 * noise.WhiteNoise().sample([200, 32, 32], tf.constant([3, 4], tf.int64))
    psd = noise.estimate_radial_psd(n).numpy()
    inner = psd[1:16]
    np.testing.assert_allclose(inner, 4.0, rtol=0.1)


def test_radial_psd_of_fourier_cropped_white_noise_is_flat_to_the_nyquist_ring():
    """Particles resampled to a smaller box have nothing on its Nyquist row and column; their
    noise is still white, and the estimate must say so up to the ring at N / 2 (the critic's
    outermost ring), or coloured noise is too weak there."""
    from tfcryogan.physics import fourier
    white = noise.WhiteNoise().sample([400, 64, 64], tf.constant([7, 8], tf.int64))
    cropped = fourier.resample_images(white, 2.0, 4.0, 32)
    psd = noise.estimate_radial_psd(cropped).numpy()
    np.testing.assert_allclose(psd[2:17], np.mean(psd[2:16]), rtol=0.06)


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


def test_noise_models_draw_unit_variance_noise():
    """Every model's draw has unit variance (the caller scales it); colored keeps its spectrum's
    shape, patches keep the patches' own pattern, none is zero."""
    seed = tf.constant([7, 8], tf.int64)
    shape = [200, 32, 32]
    r = np.arange(noise.radial_bins(32), dtype=np.float32)
    models = {"white": noise.make_noise_model("white"),
              "colored": noise.make_noise_model("colored", 5.0 / (1.0 + (r / 4.0) ** 2))}
    for name, model in models.items():
        assert model.kind == name and not model.needs_patches
        assert abs(float(tf.math.reduce_std(model.sample(shape, seed))) - 1.0) < 0.03, name
    rng = np.random.default_rng(2)
    patches = rng.normal(5.0, 3.0, (4, 16, 16)).astype(np.float32)
    patches[:, :, ::2] += 4.0  # a pattern the normalisation must keep
    model = noise.make_noise_model("patches")
    assert model.needs_patches
    out = model.sample([4, 16, 16], seed, patches).numpy()
    np.testing.assert_allclose(out.mean(axis=(1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(1, 2)), 1.0, rtol=1e-3)
    corr = np.corrcoef(out[0].ravel(), patches[0].ravel())[0, 1]
    assert corr > 0.999
    assert float(tf.reduce_max(tf.abs(noise.make_noise_model("none").sample(shape, seed)))) == 0
    with pytest.raises(ValueError):
        noise.make_noise_model("pink")
