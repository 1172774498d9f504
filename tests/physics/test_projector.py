"""Fourier-slice projections against closed-form projections of Gaussian blobs, and gradients
against finite differences."""

import numpy as np
import tensorflow as tf

from tfcryogan import simulator
from tfcryogan.physics import fourier, projector, rotations

BLOBS = [((3.0, -2.0, 4.0), 2.0, 1.0), ((-4.0, 3.0, -1.0), 1.6, 0.7), ((0.0, 5.0, 2.0), 1.8, 0.5)]


def blob_volume(box):
    c = np.arange(box) - box // 2
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    vol = np.zeros((box, box, box), np.float64)
    for (px, py, pz), s, w in BLOBS:
        vol += w * np.exp(-((x - px) ** 2 + (y - py) ** 2 + (z - pz) ** 2) / (2 * s * s))
    return vol.astype(np.float32)


def analytic_projection(matrix, box):
    """Projection along z of v(A^T r): each blob at p moves to A p; a 3D Gaussian integrates to
    a 2D Gaussian with amplitude w * sqrt(2 pi) * s."""
    c = np.arange(box) - fourier.image_origin(box)
    y, x = np.meshgrid(c, c, indexing="ij")
    img = np.zeros((box, box))
    for p, s, w in BLOBS:
        q = matrix @ np.array(p)
        img += w * np.sqrt(2 * np.pi) * s * np.exp(-((x - q[0]) ** 2 + (y - q[1]) ** 2) / (2 * s * s))
    return img


def test_projection_matches_closed_form_at_random_poses():
    box = 32
    rng = np.random.default_rng(0)
    angles = rng.uniform(-180, 180, (6, 3)).astype(np.float32)
    mats = rotations.euler_to_matrix(angles[:, 0], angles[:, 1], angles[:, 2])
    images = simulator.project(projector.volume_spectrum(blob_volume(box)), mats,
                               np.zeros((6, 2), np.float32), None, box, 1.0).numpy()
    for m, img in zip(mats.numpy(), images):
        want = analytic_projection(m, box)
        assert np.abs(img - want).max() < 0.01 * want.max()


def test_handedness_is_not_mirrored():
    # A mirrored (wrong-hand) projector would match the projection at the transposed matrix.
    box = 32
    m = rotations.euler_to_matrix([40.0], [70.0], [-20.0])
    img = simulator.project(projector.volume_spectrum(blob_volume(box)), m,
                            np.zeros((1, 2), np.float32), None, box, 1.0).numpy()[0]
    right = np.corrcoef(img.ravel(), analytic_projection(m.numpy()[0], box).ravel())[0, 1]
    wrong = np.corrcoef(img.ravel(), analytic_projection(m.numpy()[0].T, box).ravel())[0, 1]
    assert right > 0.999 and wrong < 0.95


def test_volume_index_selects_volume():
    box = 16
    vols = np.stack([blob_volume(box), np.zeros((box,) * 3, np.float32)])
    spectrum = projector.volume_spectrum(vols)
    mats = rotations.euler_to_matrix([0.0, 0.0], [0.0, 0.0], [0.0, 0.0])
    images = simulator.project(spectrum, mats, np.zeros((2, 2), np.float32), None, box, 1.0,
                               volume_index=tf.constant([1, 0])).numpy()
    alone = simulator.project(projector.volume_spectrum(vols[0]), mats[:1],
                              np.zeros((1, 2), np.float32), None, box, 1.0).numpy()[0]
    assert np.abs(images[0]).max() < 1e-5
    assert np.abs(alone).max() > 1.0
    np.testing.assert_allclose(images[1], alone, atol=1e-5)


def test_gradient_matches_finite_differences():
    box = 12
    rng = np.random.default_rng(2)
    vol = tf.constant(rng.uniform(0, 1, (box, box, box)).astype(np.float32))
    angles = rng.uniform(-180, 180, (3, 3)).astype(np.float32)
    mats = rotations.euler_to_matrix(angles[:, 0], angles[:, 1], angles[:, 2])
    origins = rng.normal(0, 2, (3, 2)).astype(np.float32)
    ctf = np.tile(np.array([[8000, 7000, 20, 300, 2.7, 0.1, 0, 20, 1]], np.float32), (3, 1))
    weights = tf.constant(rng.normal(size=(3, box, box)).astype(np.float32))

    def loss(v):
        images = simulator.project(projector.volume_spectrum(v), mats, origins, ctf, box, 3.0)
        return tf.reduce_sum(images * weights)

    with tf.GradientTape() as tape:
        tape.watch(vol)
        value = loss(vol)
    grad = tape.gradient(value, vol).numpy()
    eps = 0.05
    for idx in [(6, 6, 6), (4, 7, 5), (8, 3, 6), (6, 5, 9)]:
        bump = np.zeros((box,) * 3, np.float32)
        bump[idx] = eps
        fd = (float(loss(vol + bump)) - float(loss(vol - bump))) / (2 * eps)
        assert abs(fd - grad[idx]) < 1e-2 * max(1.0, abs(fd)), (idx, fd, grad[idx])


def test_mixed_slices_are_slices_of_the_mixture():
    box = 16
    rng = np.random.default_rng(3)
    vols = rng.random((3, box, box, box)).astype(np.float32)
    coeff = rng.normal(size=(4, 3)).astype(np.float32)
    angles = rng.uniform(-180, 180, (4, 3)).astype(np.float32)
    mats = rotations.euler_to_matrix(angles[:, 0], angles[:, 1], angles[:, 2])
    mixed = projector.slice_values_mixed(projector.volume_spectrum(vols), mats, box, coeff)
    for b in range(4):
        combo = np.tensordot(coeff[b], vols, axes=1)
        want = projector.slice_values(projector.volume_spectrum(combo), mats[b:b + 1], box)
        np.testing.assert_allclose(mixed[b].numpy(), want[0].numpy(), rtol=1e-3,
                                   atol=1e-3 * np.abs(want).max())
