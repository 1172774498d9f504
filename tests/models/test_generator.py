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


def test_random_basis_volumes_break_the_latent_symmetry():
    """Zero basis volumes make every z give the same volume (no gradient reaches the coefficient
    network); the random start must be signed, distinct per volume, masked and of the given scale."""
    from tfcryogan.models.generator import random_basis_volumes, support_mask
    basis = random_basis_volumes(3, 16, 0.45, seed=4, scale=0.2).numpy()
    assert basis.shape == (3, 16, 16, 16)
    np.testing.assert_allclose(np.abs(basis).max(axis=(1, 2, 3)), 0.2, rtol=1e-5)
    assert (basis < 0).any() and (basis > 0).any()
    flat = basis.reshape(3, -1)
    assert abs(np.corrcoef(flat)[0, 1]) < 0.5 and abs(np.corrcoef(flat)[1, 2]) < 0.5
    outside = support_mask(16, 0.8 * 0.45).numpy() == 0
    assert np.all(basis[:, outside] == 0)
    gen = ConformationGenerator(16, 3, "C1", 0.45)
    gen(np.zeros((1, 3), np.float32))
    gen.basis.assign(basis)
    volumes = gen(np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32)).numpy()
    assert np.abs(volumes[0] - volumes[1]).max() > 1e-3


def test_spread_measures_how_much_the_volumes_differ():
    """0 for CryoGAN and for a collapsed generator (zero basis); for a generator whose volumes are
    template +- basis it is rms(basis * c) / rms(template), computed here independently."""
    gen = ConformationGenerator(12, 1, "C1", 0.5)
    z = tf.constant([[-1.0], [1.0], [0.3]])
    gen(z)
    rng = np.random.default_rng(2)
    template = rng.random((12, 12, 12)).astype(np.float32)
    gen.template.assign(template)
    assert float(gen.spread(z)) < 1e-6  # zero basis: every z gives the template
    assert float(ConformationGenerator(12, 0, "C1", 0.45).spread(tf.zeros([3, 0]))) == 0.0
    gen.basis.assign(rng.normal(size=(1, 12, 12, 12)).astype(np.float32))
    vols = gen(z).numpy()
    mean = vols.mean(0)
    expected = np.sqrt(((vols - mean) ** 2).mean() / (mean ** 2).mean())
    assert expected > 0.1
    np.testing.assert_allclose(float(gen.spread(z)), expected, rtol=1e-4)



def test_generator_is_the_linear_subspace_model():
    """One basis volume per latent dimension and v(z) = template + sum_j z_j basis_j exactly
    (affine in z), so the volumes' distribution is Gaussian about the template; the same code
    gives the same volume, and a random basis makes some density negative (the penalty)."""
    gen = ConformationGenerator(12, 2, "C1", 0.4)
    gen(tf.zeros([1, 2]))
    assert gen.basis.shape == (2, 12, 12, 12)
    rng = np.random.default_rng(4)
    gen.template.assign(rng.random((12, 12, 12)).astype(np.float32))
    gen.basis.assign(rng.normal(size=(2, 12, 12, 12)).astype(np.float32))
    a, b = rng.normal(size=(2, 1, 2)).astype(np.float32)
    v = lambda z: gen(tf.constant(z)).numpy()[0]  # noqa: E731
    np.testing.assert_allclose(v(a + b) + v(0 * a), v(a) + v(b), rtol=1e-4, atol=1e-4)
    basis = gen.basis_volumes().numpy()
    np.testing.assert_allclose(v(a), basis[0] + a[0, 0] * basis[1] + a[0, 1] * basis[2],
                               rtol=1e-4, atol=1e-4)
    z = tf.constant(rng.normal(size=(8, 2)), tf.float32)
    assert float(gen.spread(z)) > 0.1
    np.testing.assert_allclose(gen(z[:1]).numpy()[0], gen(z).numpy()[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gen.coefficients(z).numpy(),
                               np.concatenate([np.ones((8, 1)), z.numpy()], 1))
    assert float(gen.negativity(z)) > 0


def test_build_generator_reads_the_run_settings():
    """Training and export build the generator from the same settings (run.json's)."""
    from tfcryogan.models.generator import build_generator
    gen = build_generator({"box": 12, "latent_dim": 2, "symmetry": "C2", "mask_radius": 0.4},
                          "g")
    assert (gen.box, gen.latent_dim, gen.symmetry, gen.mask_radius, gen.name) == \
        (12, 2, "C2", 0.4, "g")
