"""Our files against RELION 3.1 itself (relion_project, relion_reconstruct); skipped without it.

relion_project reads our STAR (write_star) and volume (write_volume) and writes a stack and a STAR
that we read back: the projection along z with zero angles must be ``volume.sum(axis=0)`` of our
``[z, y, x]`` array, and an origin (A) must move the image by minus origin / pixel size.
"""

import shutil
import subprocess

import numpy as np
import pytest

from tfcryogan.io import (ParticleTable, open_stack, read_star, read_volume, stack_voxel_size,
                          write_stack, write_star, write_volume)

PIXEL = 2.0
BOX = 32


def _run(args, cwd):
    exe = shutil.which(args[0])
    if exe is None:
        pytest.skip(f"{args[0]} (RELION) is not installed")
    proc = subprocess.run([exe] + args[1:], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def _blobs():
    grid = np.meshgrid(*[np.arange(BOX)] * 3, indexing="ij")
    vol = np.zeros((BOX,) * 3, np.float32)
    for centre, amp in (((16, 16, 16), 1.0), ((12, 20, 10), 0.7), ((20, 10, 22), 0.5)):
        vol += amp * np.exp(-sum((g - c) ** 2 for g, c in zip(grid, centre)) / (2 * 1.5 ** 2))
    return vol


def _corr(a, b):
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


@pytest.fixture
def projected(tmp_path):
    vol = _blobs()
    write_volume(tmp_path / "vol.mrc", vol, PIXEL)
    write_stack(tmp_path / "in" / "dummy.mrcs", np.zeros((3, BOX, BOX), np.float32), PIXEL)
    table = ParticleTable(
        image_path=[str(tmp_path / "in" / "dummy.mrcs")] * 3, image_index=[0, 1, 2],
        pixel_size=PIXEL, defocus_u=10000.0, defocus_v=10000.0, defocus_angle=0.0, voltage=300.0,
        cs=2.7, amplitude_contrast=0.1, rot=0.0, tilt=0.0, psi=0.0,
        origin_x=[0.0, 2 * PIXEL, 0.0], origin_y=[0.0, 0.0, -3 * PIXEL], source="test")
    write_star(tmp_path / "in.star", table)
    _run(["relion_project", "--i", "vol.mrc", "--o", "proj", "--ang", "in.star"], tmp_path)
    return tmp_path, vol


def test_relion_project_reads_our_star_and_volume(projected):
    folder, vol = projected
    t = read_star(folder / "proj.star", check_images=True)
    assert len(t) == 3 and t.has_poses
    np.testing.assert_allclose(t.pixel_size, PIXEL)
    np.testing.assert_allclose(t.origin_x, [0.0, 2 * PIXEL, 0.0])  # RELION kept our Angstroms
    np.testing.assert_allclose(t.origin_y, [0.0, 0.0, -3 * PIXEL])
    np.testing.assert_array_equal(t.box, BOX)
    assert stack_voxel_size(folder / "proj.mrcs") == pytest.approx(PIXEL)
    images = open_stack(t.image_path[0])
    proj = vol.sum(axis=0)  # along z of our [z, y, x] array; rows y, columns x
    assert _corr(images[t.image_index[0]], proj) > 0.995
    assert _corr(images[t.image_index[0]], proj.T) < 0.95
    # origin_x = +2 px: the image is the projection moved by -2 px along x (the last axis).
    shifted = images[t.image_index[1]]
    assert _corr(shifted, np.roll(proj, -2, axis=1)) > 0.995
    assert _corr(shifted, np.roll(proj, 2, axis=1)) < 0.9
    # origin_y = -3 px: moved by +3 px along y (rows).
    assert _corr(images[t.image_index[2]], np.roll(proj, 3, axis=0)) > 0.995


def test_relion_reconstruct_reads_our_rewritten_star(projected):
    folder, _ = projected
    table = read_star(folder / "proj.star", check_images=True)
    write_star(folder / "again.star", table)  # images below the STAR folder: relative names
    _run(["relion_reconstruct", "--i", "again.star", "--o", "rec.mrc", "--ctf"], folder)
    rec, voxel = read_volume(folder / "rec.mrc")
    assert rec.shape == (BOX,) * 3 and voxel == pytest.approx(PIXEL)
    assert np.isfinite(rec).all() and rec.std() > 0
