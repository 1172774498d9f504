"""Rotation/resampling against closed forms, and recovery of known rotations, hands and shifts."""

import numpy as np
import pytest
import tensorflow as tf

from tfcryogan import io
from tfcryogan.evaluation import align as al
from tfcryogan.evaluation import fsc
from tfcryogan.phantoms import phantom
from tfcryogan.physics import fourier, rotations


def blobs(box, centres, sigma=2.0):
    """Sum of Gaussian blobs at ``centres`` ((x, y, z) voxels from box // 2), ``[z, y, x]``."""
    c = np.arange(box) - box // 2
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    vol = np.zeros((box,) * 3)
    for k, (px, py, pz) in enumerate(centres):
        vol += (1.0 + 0.3 * k) * np.exp(-((x - px) ** 2 + (y - py) ** 2 + (z - pz) ** 2)
                                        / (2 * sigma * sigma))
    return vol.astype(np.float32)


CENTRES = np.array([(4.0, -2.0, 3.0), (-3.0, 4.0, -1.0), (0.5, 1.0, -5.0)])


@pytest.mark.parametrize("improper", [False, True])
def test_blobs_move_where_the_matrix_says(improper):
    box = 24
    m = rotations.euler_to_matrix(35.0, 70.0, -110.0).numpy()
    if improper:
        m = m @ al.MIRROR
    t = np.array([1.5, -0.75, 2.25], np.float32)
    got = al.rotate_volume(blobs(box, CENTRES, 3.0), m, t).numpy()
    want = blobs(box, CENTRES @ m.T + t, 3.0)  # density at p moves to M p + t
    assert np.abs(got - want).max() < 0.04 * want.max()  # trilinear blur of a sigma-3 blob
    # The centre of mass of one blob moves exactly there.
    one = al.rotate_volume(blobs(box, CENTRES[:1], 1.5), m, t).numpy()
    c = np.arange(box) - box // 2
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    centroid = np.array([(one * q).sum() for q in (x, y, z)]) / one.sum()
    np.testing.assert_allclose(centroid, m @ CENTRES[0] + t, atol=0.05)


def test_relion_convention_projection():
    # rotate_volume(v, A) = v(A^T r): its z-projection is RELION's projection at A, for which a
    # point p lands at the first two coordinates of A p.
    box = 24
    a = rotations.euler_to_matrix(-40.0, 25.0, 160.0).numpy()
    image = al.rotate_volume(blobs(box, CENTRES[:1], 1.5), a).numpy().sum(axis=0)
    y, x = np.unravel_index(np.argmax(image), image.shape)
    want = a @ CENTRES[0]
    assert abs(x - box // 2 - want[0]) <= 0.5 and abs(y - box // 2 - want[1]) <= 0.5


@pytest.mark.parametrize("box", [17, 16])
def test_quarter_turns_equal_rot90(box):
    rng = np.random.default_rng(0)
    vol = rng.normal(size=(box,) * 3).astype(np.float32)
    # np.rot90(v, 1, axes=(a, b)) reads out[i_a, i_b] = v[i_b, n - 1 - i_a]: about the centre
    # (n - 1) / 2, which is index n // 2 for odd n only; even boxes differ by a one-voxel roll.
    # As a matrix on (x, y, z): axes (1, 2) = (y, x), (0, 2) = (z, x), (0, 1) = (z, y).
    mats = {(1, 2): [[0, 1, 0], [-1, 0, 0], [0, 0, 1]],
            (0, 2): [[0, 0, 1], [0, 1, 0], [-1, 0, 0]],
            (0, 1): [[1, 0, 0], [0, 0, 1], [0, -1, 0]]}
    for axes, m in mats.items():
        m = np.array(m, np.float32)
        for k in (1, 2, 3):
            got = al.rotate_volume(vol, np.linalg.matrix_power(m, k)).numpy()
            want = np.rot90(vol, k, axes=axes)
            if box % 2 == 0:  # move the rotation centre from (n - 1) / 2 to n // 2
                a, b = axes
                shift = {1: (1, 0), 2: (1, 1), 3: (0, 1)}[k]
                want = np.roll(want, shift, axis=(a, b))
                inside = np.ones_like(vol, bool)
                for axis, s in zip((a, b), shift):
                    if s:
                        idx = [slice(None)] * 3
                        idx[axis] = 0
                        inside[tuple(idx)] = False  # rolled-in voxels come from outside the box
                got, want = got[inside], want[inside]
            np.testing.assert_allclose(got, want, atol=1e-5)


def test_composition_of_rotations_and_shifts():
    box = 32
    vol = blobs(box, CENTRES, sigma=3.0)
    a = rotations.euler_to_matrix(10.0, 50.0, 80.0).numpy()
    b = rotations.euler_to_matrix(-70.0, 120.0, 15.0).numpy()
    s = np.array([1.0, 0.5, -1.5], np.float32)
    t = np.array([-0.7, 2.0, 0.3], np.float32)
    twice = al.rotate_volume(al.rotate_volume(vol, a, s), b, t).numpy()
    once = al.rotate_volume(vol, b @ a, b @ s + t).numpy()
    assert np.abs(twice - once).max() < 0.05 * vol.max()  # two interpolations vs one
    # Batched: one volume, several matrices and shifts; and volume b with matrix b.
    batch = al.rotate_volume(vol, np.stack([a, b]), np.stack([s, t])).numpy()
    np.testing.assert_allclose(batch[1], al.rotate_volume(vol, b, t).numpy(), atol=1e-6)
    pairs = al.rotate_volume(np.stack([vol, 2 * vol]), np.stack([a, b])).numpy()
    np.testing.assert_allclose(pairs[1], 2 * al.rotate_volume(vol, b).numpy(), atol=1e-5)


@pytest.mark.parametrize("box", [15, 16])
def test_mirror_is_the_z_reflection_about_the_centre(box):
    vol = np.random.default_rng(1).normal(size=(box,) * 3).astype(np.float32)
    mirrored = al.mirror_volume(vol).numpy()
    np.testing.assert_array_equal(mirrored, al.rotate_volume(vol, al.MIRROR).numpy())
    c = box // 2
    np.testing.assert_array_equal(mirrored[c], vol[c])  # the centre plane stays
    np.testing.assert_array_equal(mirrored[c + 3], vol[c - 3])
    if box % 2:
        np.testing.assert_array_equal(mirrored, vol[::-1])


def test_rotation_grid_is_near_uniform():
    grid = al.rotation_grid(4000).numpy()
    np.testing.assert_allclose(np.einsum("nij,nkj->nik", grid, grid),
                               np.broadcast_to(np.eye(3), grid.shape), atol=1e-5)
    assert np.allclose(np.linalg.det(grid), 1.0, atol=1e-5)
    probe = rotations.random_rotations(400, [5, 6]).numpy()
    trace = np.einsum("pji,gji->pg", probe, grid)
    nearest = np.degrees(np.arccos(np.clip((trace.max(axis=1) - 1) / 2, -1, 1)))
    assert nearest.max() < 13.0 and np.median(nearest) < 9.0  # ~15 degree spacing


def test_axis_angle_to_matrix():
    m = al.axis_angle_to_matrix([0.0, 0.0, np.pi / 2]).numpy()
    np.testing.assert_allclose(m, [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-6)
    v = tf.zeros([3])
    with tf.GradientTape() as tape:
        tape.watch(v)
        y = tf.reduce_sum(al.axis_angle_to_matrix(v) * tf.constant(np.arange(9.0).reshape(3, 3),
                                                                    tf.float32))
    assert np.isfinite(tape.gradient(y, v).numpy()).all()


def _truth_and_moved(big, n, matrix, shift, lowpass=None):
    """Reference at box n and the moved map made at 2x (little interpolation error)."""
    truth = fourier.fourier_crop(big, n, 3).numpy()
    moved = al.rotate_volume(big, matrix, 2 * shift)
    if lowpass is not None:  # cycles per box of the 2x map
        moved = fourier.gaussian_lowpass(moved, lowpass, 3)
    moved = fourier.fourier_crop(moved, n, 3).numpy()
    return truth, moved


def _check_recovery(result, rotation, mirrored, shift, max_angle, max_shift):
    """The alignment undoing ``v = rotate(truth, R @ F, t)`` is ``M = F R^T F``, ``-F R^T t``."""
    f = al.MIRROR if mirrored else np.eye(3)
    want_m = f @ rotation.T @ f
    want_t = -(rotation @ f).T @ shift
    assert result.flipped == mirrored
    assert al.rotation_angle(result.matrix, want_m) < max_angle
    assert np.abs(result.shift_voxels - want_t).max() < max_shift


def test_align_recovers_mirror_rotation_and_shift_of_noisy_phantom():
    n = 32
    rotation = rotations.random_rotations(1, [3, 4]).numpy()[0]
    shift = np.array([2.0, -1.5, 2.5], np.float32)
    truth, vol = _truth_and_moved(phantom(2 * n), n, rotation @ al.MIRROR, shift,
                                  lowpass=n / 5)
    rng = np.random.default_rng(0)
    vol = vol + rng.normal(0.0, vol.std(), vol.shape).astype(np.float32)  # SNR ~ 1 in the box
    result = al.align(vol, truth)
    _check_recovery(result, rotation, True, shift, max_angle=3.0, max_shift=0.5)
    before = fsc.resolution(fsc.fsc(vol, truth).numpy(), n, 1.0, 0.5)[1]
    after = fsc.resolution(fsc.fsc(result.aligned_volume, truth).numpy(), n, 1.0, 0.5)[1]
    assert before < 0.15 and after > 0.4
    assert result.correlation > 0.8
    assert result.seconds < 60


def test_align_recovers_a_real_map(data_file):
    volume, _ = io.read_volume(data_file("maps/emd_5625.map"))  # 56^3, 4.23 A
    n = 32
    big = fourier.fourier_crop(volume, 2 * n, 3).numpy()
    rotation = rotations.random_rotations(1, [11, 2]).numpy()[0]
    shift = np.array([-1.5, 2.0, 1.0], np.float32)
    truth, vol = _truth_and_moved(big, n, rotation, shift, lowpass=n / 6)
    result = al.align(vol, truth)
    _check_recovery(result, rotation, False, shift, max_angle=2.0, max_shift=0.3)
    assert result.correlation > 0.9


def test_unrelated_map_correlates_much_less():
    n = 32
    truth = fourier.fourier_crop(phantom(2 * n), n, 3).numpy()
    noise = np.random.default_rng(3).normal(size=(n,) * 3).astype(np.float32)
    blobby = fourier.gaussian_lowpass(noise, 3.0, 3).numpy()  # smooth random density
    result = al.align(blobby, truth, n_rotations=1000)
    assert result.correlation < 0.5
