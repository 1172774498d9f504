"""The volume generator: constraints, symmetry, support."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcryogan.models.generator import ConformationGenerator, basis_count


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
    gen = ConformationGenerator(12, latent_dim=2, symmetry="C1", mask_radius=0.4, n_basis=3,
                                coefficient_map="mlp")
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
    gen = ConformationGenerator(16, latent_dim=2, n_basis=3, coefficient_map="mlp")
    gen(np.zeros((1, 2), np.float32))
    gen.basis.assign(basis)
    volumes = gen(np.random.default_rng(0).normal(size=(2, 2)).astype(np.float32)).numpy()
    assert np.abs(volumes[0] - volumes[1]).max() > 1e-3


def test_spread_measures_how_much_the_volumes_differ():
    """0 for CryoGAN and for a collapsed generator (zero basis); for a generator whose volumes are
    template +- basis it is rms(basis * c) / rms(template), computed here independently."""
    gen = ConformationGenerator(12, latent_dim=1, mask_radius=0.5, n_basis=1,
                                coefficient_map="mlp")
    z = tf.constant([[-1.0], [1.0], [0.3]])
    gen(z)
    rng = np.random.default_rng(2)
    template = rng.random((12, 12, 12)).astype(np.float32)
    gen.template.assign(template)
    assert float(gen.spread(z)) < 1e-6  # zero basis: every z gives the template
    assert float(ConformationGenerator(12).spread(tf.zeros([3, 0]))) == 0.0
    gen.basis.assign(rng.normal(size=(1, 12, 12, 12)).astype(np.float32))
    vols = gen(z).numpy()
    mean = vols.mean(0)
    expected = np.sqrt(((vols - mean) ** 2).mean() / (mean ** 2).mean())
    assert expected > 0.1
    np.testing.assert_allclose(float(gen.spread(z)), expected, rtol=1e-4)



def test_coefficients_are_standardised_and_scale_free():
    """The basis coefficients have zero mean and unit variance over codes z ~ N(0, I), whatever the
    scale and offset of the MLP's outputs: shrinking the MLP's last layer (the collapse seen in
    training) leaves the volumes unchanged, so the spread lives in the basis volumes alone."""
    keras.utils.set_random_seed(0)
    gen = ConformationGenerator(12, latent_dim=2, mask_radius=0.4, n_basis=3,
                                coefficient_map="mlp")
    z = tf.random.stateless_normal([4096, 2], [5, 6])
    gen(z[:1])
    c = gen.coefficients(z).numpy()[:, 1:]
    np.testing.assert_allclose(c.mean(0), 0.0, atol=0.08)
    np.testing.assert_allclose(c.std(0), 1.0, atol=0.08)
    rng = np.random.default_rng(3)
    gen.basis.assign(rng.normal(size=(3, 12, 12, 12)).astype(np.float32))
    before = gen(z[:8]).numpy()
    last = gen.coefficient_net.layers[-1]
    kernel, bias = last.get_weights()
    last.set_weights([0.1 * kernel, bias + 3.0])
    np.testing.assert_allclose(gen(z[:8]).numpy(), before, rtol=1e-2, atol=1e-2)


def test_linear_map_is_the_linear_subspace_model():
    """coefficient_map="linear": one basis volume per latent dimension and v(z) = template +
    sum_j z_j basis_j exactly (affine in z), so the volumes' distribution is Gaussian about the
    template; a different basis count is refused."""
    gen = ConformationGenerator(12, latent_dim=2, mask_radius=0.4, coefficient_map="linear")
    gen(tf.zeros([1, 2]))
    assert gen.n_basis == 2 and basis_count(2, -1, "linear") == 2
    rng = np.random.default_rng(4)
    gen.template.assign(rng.random((12, 12, 12)).astype(np.float32))
    gen.basis.assign(rng.normal(size=(2, 12, 12, 12)).astype(np.float32))
    a, b = rng.normal(size=(2, 1, 2)).astype(np.float32)
    v = lambda z: gen(tf.constant(z)).numpy()[0]  # noqa: E731
    np.testing.assert_allclose(v(a + b) + v(0 * a), v(a) + v(b), rtol=1e-4, atol=1e-4)
    basis = gen.basis_volumes().numpy()
    np.testing.assert_allclose(v(a), basis[0] + a[0, 0] * basis[1] + a[0, 1] * basis[2],
                               rtol=1e-4, atol=1e-4)
    assert float(gen.spread(tf.constant(rng.normal(size=(8, 2)), tf.float32))) > 0.1
    with pytest.raises(ValueError, match="one basis volume per latent dimension"):
        ConformationGenerator(12, latent_dim=2, n_basis=3, coefficient_map="linear")
    with pytest.raises(ValueError, match="coefficient_map"):
        basis_count(2, -1, "cubic")


def test_translation_free_basis_has_no_whole_particle_shift():
    """translation_free: a basis volume that only moves the template (its x gradient) is removed,
    every basis volume is orthogonal to the template's three translations, other variation is
    kept, and the volumes stay inside the support."""
    from tfcryogan.models.generator import random_initial_volume, support_mask
    n = 16
    template = random_initial_volume(n, 0.45, seed=3).numpy()
    shift_x = 0.5 * (np.roll(template, -1, 0) - np.roll(template, 1, 0))
    other = np.random.default_rng(5).normal(size=(n, n, n)).astype(np.float32)
    gen = ConformationGenerator(n, latent_dim=2, mask_radius=0.45, coefficient_map="linear",
                                translation_free=True)
    gen(tf.zeros([1, 2]))
    gen.template.assign(template)
    gen.basis.assign(np.stack([shift_x, other]).astype(np.float32))
    volumes = gen.basis_volumes().numpy()
    np.testing.assert_allclose(volumes[0], template * support_mask(n, 0.45).numpy(), atol=1e-6)
    assert np.abs(volumes[1]).max() < 1e-4 * np.abs(shift_x).max()
    kept = np.sum(volumes[2] ** 2) / np.sum((other * support_mask(n, 0.45).numpy()) ** 2)
    assert kept > 0.9
    for axis in range(3):
        g = 0.5 * (np.roll(volumes[0], -1, axis) - np.roll(volumes[0], 1, axis))
        assert abs(np.sum(g * volumes[2])) < 1e-3 * np.linalg.norm(g) * np.linalg.norm(volumes[2])
    outside = support_mask(n, 0.45).numpy() == 0
    assert np.all(volumes[:, outside] == 0)
    plain = ConformationGenerator(n, latent_dim=2, coefficient_map="linear")
    plain(tf.zeros([1, 2]))
    plain.template.assign(template)
    plain.basis.assign(np.stack([shift_x, other]).astype(np.float32))
    assert np.abs(plain.basis_volumes().numpy()[1]).max() > 0.5 * np.abs(shift_x).max()



def test_generator_from_settings_reads_run_records_old_and_new():
    """The training loop and the export build the generator from the same settings: today's
    record gives the linear, translation-free generator it names; a record written before
    --coefficient_map and --translation_free_basis existed gives the MLP generator those runs
    trained (n_basis as recorded)."""
    from tfcryogan.models.generator import generator_from_settings
    now = generator_from_settings({"box": 12, "latent_dim": 2, "symmetry": "C2",
                                   "mask_radius": 0.4, "n_basis": 2, "hidden": 32,
                                   "coefficient_map": "linear", "translation_free_basis": True},
                                  "g")
    assert (now.box, now.latent_dim, now.symmetry, now.mask_radius, now.n_basis) == \
        (12, 2, "C2", 0.4, 2)
    assert now.coefficient_map == "linear" and now.translation_free and now.name == "g"
    old = generator_from_settings({"box": 12, "latent_dim": 2, "n_basis": 3}, "old")
    assert old.coefficient_map == "mlp" and not old.translation_free and old.n_basis == 3
    assert generator_from_settings({"box": 12, "latent_dim": 0, "n_basis": 0}, "c").n_basis == 0
