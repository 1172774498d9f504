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


def _blobs(n, centres, sigma=1.6):
    """Sum of Gaussian blobs at ``centres`` (voxels, [z, y, x] about the box centre n // 2)."""
    grid = np.stack(np.meshgrid(*[np.arange(n) - n // 2] * 3, indexing="ij"), -1)
    return sum(np.exp(-((grid - c) ** 2).sum(-1) / (2 * sigma ** 2))
               for c in np.asarray(centres, float)).astype(np.float32)


def test_rigid_free_basis_removes_whole_particle_turns_and_shifts():
    """The template's small turn (2 degrees about x) and shift (0.2 voxel) lie in the span of
    rigid_motion_basis; a local change (one blob moving against the others) mostly does not. A
    rigid_free generator's basis volumes are orthogonal to that span; the plain one's are not."""
    from tfcryogan.models.generator import rigid_motion_basis, support_mask
    n = 20
    centres = np.random.default_rng(1).uniform(-5.0, 5.0, (8, 3))
    template = _blobs(n, centres)
    a = np.radians(2.0)
    turn = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    changes = {"turn": _blobs(n, centres @ turn.T) - template,
               "shift": _blobs(n, centres + [0.0, 0.2, 0.0]) - template,
               "local": _blobs(n, centres + np.eye(8, 3)[:, ::-1] * 0.4 * (np.arange(8) < 1)[:, None])
               - template}
    mask = support_mask(n, 0.45)
    q = rigid_motion_basis(template, mask).numpy()
    np.testing.assert_allclose(q @ q.T, np.eye(6), atol=1e-4)
    share = {k: float(np.sum((q @ d.ravel()) ** 2) / np.sum(d ** 2)) for k, d in changes.items()}
    assert share["turn"] > 0.95 and share["shift"] > 0.95, share
    assert share["local"] < 0.6, share
    for rigid_free, expect_free in ((True, True), (False, False)):
        gen = ConformationGenerator(n, 3, "C1", 0.45, rigid_free=rigid_free)
        gen(tf.zeros([1, 3]))
        gen.template.assign(template)
        gen.basis.assign(np.stack([changes["turn"], changes["shift"], changes["local"]]) * 10)
        volumes = gen.basis_volumes().numpy()
        np.testing.assert_allclose(volumes[0], template * mask.numpy(), atol=1e-6)
        flat = volumes[1:].reshape(3, -1)
        q = rigid_motion_basis(volumes[0], mask).numpy()
        inside = np.sum((flat @ q.T) ** 2, axis=1) / np.sum(flat ** 2, axis=1)
        if expect_free:
            assert inside.max() < 1e-5, inside
            assert np.linalg.norm(flat[2]) > 0.4 * np.linalg.norm(changes["local"] * 10)
        else:
            assert inside[:2].min() > 0.95, inside
