"""Rotations against closed forms and RELION's conventions."""

import numpy as np
import pytest
import tensorflow as tf

from tfcryogan.physics import rotations


def passive_rz(a):
    c, s = np.cos(np.radians(a)), np.sin(np.radians(a))
    return np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]])


def passive_ry(a):
    c, s = np.cos(np.radians(a)), np.sin(np.radians(a))
    return np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]])


def test_euler_matches_zyz_composition():
    rng = np.random.default_rng(0)
    angles = rng.uniform(-180, 180, (50, 3))
    got = rotations.euler_to_matrix(angles[:, 0], angles[:, 1], angles[:, 2]).numpy()
    for (rot, tilt, psi), m in zip(angles, got):
        expected = passive_rz(psi) @ passive_ry(tilt) @ passive_rz(rot)
        np.testing.assert_allclose(m, expected, atol=1e-5)


def test_relion_reference_values():
    # RELION Euler_angles2matrix(rot=90, tilt=0, psi=0) = [[0, 1, 0], [-1, 0, 0], [0, 0, 1]].
    m = rotations.euler_to_matrix([90.0], [0.0], [0.0]).numpy()[0]
    np.testing.assert_allclose(m, [[0, 1, 0], [-1, 0, 0], [0, 0, 1]], atol=1e-6)
    # tilt=90 looks down x: the third row (the projection direction) is (1, 0, 0).
    m = rotations.euler_to_matrix([0.0], [90.0], [0.0]).numpy()[0]
    np.testing.assert_allclose(m[2], [1, 0, 0], atol=1e-6)


def test_matrix_to_euler_round_trip():
    rng = np.random.default_rng(1)
    rot = rng.uniform(-179, 179, 200)
    tilt = rng.uniform(1, 179, 200)
    psi = rng.uniform(-179, 179, 200)
    m = rotations.euler_to_matrix(rot, tilt, psi)
    r2, t2, p2 = (x.numpy() for x in rotations.matrix_to_euler(m))
    np.testing.assert_allclose(r2, rot, atol=1e-3)
    np.testing.assert_allclose(t2, tilt, atol=1e-3)
    np.testing.assert_allclose(p2, psi, atol=1e-3)
    # Gimbal lock keeps the matrix even though the angles are not unique.
    m0 = rotations.euler_to_matrix([30.0, 30.0], [0.0, 180.0], [40.0, 40.0])
    back = rotations.euler_to_matrix(*rotations.matrix_to_euler(m0))
    np.testing.assert_allclose(back.numpy(), m0.numpy(), atol=1e-5)


def test_random_rotations_are_uniform():
    m = rotations.random_rotations(20000, tf.constant([3, 4], tf.int64)).numpy()
    np.testing.assert_allclose(np.einsum("nij,nkj->nik", m, m), np.broadcast_to(np.eye(3), m.shape),
                               atol=1e-5)
    np.testing.assert_allclose(np.linalg.det(m), 1.0, atol=1e-5)
    # Haar measure: every matrix entry has mean 0, and the viewing direction (third row) is
    # uniform on the sphere, so its z component is uniform on [-1, 1].
    assert np.abs(m.mean(axis=0)).max() < 0.02
    z = np.sort(m[:, 2, 2])
    uniform = np.linspace(-1, 1, z.size)
    assert np.abs(z - uniform).max() < 0.03
    # Psi-like in-plane angle is uniform too.
    psi = np.degrees(np.arctan2(m[:, 1, 2], -m[:, 0, 2]))
    hist, _ = np.histogram(psi, bins=12, range=(-180, 180))
    assert hist.min() > 0.85 * hist.mean()


@pytest.mark.parametrize("seed", [(1, 2), (5, 6)])
def test_random_rotations_are_deterministic(seed):
    a = rotations.random_rotations(10, tf.constant(seed, tf.int64)).numpy()
    b = rotations.random_rotations(10, tf.constant(seed, tf.int64)).numpy()
    np.testing.assert_array_equal(a, b)
