"""The volume generator: constraints, symmetry, support."""

import keras
import numpy as np
import tensorflow as tf

from tfcryogan.models.generator import ConformationGenerator


def test_zero_start_positive_symmetric_and_masked_after_updates():
    gen = ConformationGenerator(16, latent_dim=0, symmetry="D2", mask_radius=0.3)
    z = tf.zeros([1, 0])
    assert float(tf.reduce_max(tf.abs(gen(z)))) == 0.0
    opt = keras.optimizers.Adam(0.1)
    rng = np.random.default_rng(0)
    target = tf.constant(rng.normal(size=(16, 16, 16)).astype(np.float32))
    for _ in range(5):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_sum(gen(z)[0] * target)
        grads = tape.gradient(loss, gen.trainable_variables)
        opt.apply_gradients(zip(grads, gen.trainable_variables))
    vol = gen(z)[0].numpy()
    assert vol.max() > 0
    assert gen.template.numpy().min() >= 0.0  # the constraint ran after each update
    r = np.sqrt(((np.indices(vol.shape) - 8) ** 2).sum(0))
    assert np.abs(vol[r > 0.3 * 16]).max() == 0.0
    # D2: invariant under the 2-fold about z (x, y) -> (-x, -y), checked away from the wrap plane.
    inner = vol[1:, 1:, 1:]
    np.testing.assert_allclose(inner, inner[:, ::-1, ::-1], atol=1e-5)


def test_latent_generator_mixes_basis_volumes():
    gen = ConformationGenerator(12, latent_dim=2, symmetry="C1", mask_radius=0.4, n_basis=3)
    rng = np.random.default_rng(1)
    gen.template.assign(rng.random((12, 12, 12)).astype(np.float32))
    gen.basis.assign(rng.normal(size=(3, 12, 12, 12)).astype(np.float32))
    z = tf.constant(rng.normal(size=(5, 2)).astype(np.float32))
    vols = gen(z).numpy()
    coeff = gen.coefficients(z).numpy()
    basis = gen.basis_volumes().numpy()
    assert vols.shape == (5, 12, 12, 12) and coeff.shape == (5, 4)
    np.testing.assert_allclose(coeff[:, 0], 1.0)
    np.testing.assert_allclose(vols, np.tensordot(coeff, basis, axes=1), rtol=1e-5, atol=1e-5)
    # Different codes, different volumes; the same code, the same volume.
    assert np.abs(vols[0] - vols[1]).max() > 1e-3
    np.testing.assert_array_equal(gen(z[:1]).numpy()[0], vols[0])
    assert float(gen.negativity(z)) > 0  # random basis makes some density negative
