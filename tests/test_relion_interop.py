"""Interoperability with RELION 3.1: bin/simulate reproduces relion_project image for image, and
relion_reconstruct recovers the map from a bin/simulate data set."""

import os
import shutil
import subprocess
import sys

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile

from tfcryogan.evaluation import fsc as fsc_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.skipif(shutil.which("relion_project") is None,
                                reason="RELION 3.1 not installed (apt-get install relion)")


def run_simulate(*args):
    cmd = [sys.executable, os.path.join(ROOT, "bin", "simulate"), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done


def random_map(box, seed):
    """An asymmetric map of Gaussian blobs plus a sharp bar (content up to Nyquist)."""
    rng = np.random.default_rng(seed)
    c = np.arange(box) - box // 2
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    vol = np.zeros((box,) * 3, np.float32)
    for _ in range(10):
        p = rng.uniform(-box / 5, box / 5, 3)
        s = rng.uniform(1.0, 3.0)
        vol += np.exp(-((z - p[0]) ** 2 + (y - p[1]) ** 2 + (x - p[2]) ** 2) / (2 * s * s))
    vol[box // 2 + 2:box // 2 + 5, box // 2 - 1:box // 2 + 1, box // 2 + 3:box // 2 + 6] += 1.5
    return vol


def write_map(path, vol, apix):
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(vol)
        m.voxel_size = apix


def random_pose_star(path, n, box, apix, seed):
    rng = np.random.default_rng(seed)
    optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnOpticsGroupName": ["opticsGroup1"],
                           "rlnVoltage": [300.0], "rlnSphericalAberration": [2.7],
                           "rlnAmplitudeContrast": [0.1], "rlnImagePixelSize": [apix],
                           "rlnImageSize": [box], "rlnImageDimensionality": [2]})
    parts = pd.DataFrame({
        "rlnImageName": [f"{i + 1:06d}@unused.mrcs" for i in range(n)],
        "rlnAngleRot": rng.uniform(-180, 180, n),
        "rlnAngleTilt": np.degrees(np.arccos(rng.uniform(-1, 1, n))),
        "rlnAnglePsi": rng.uniform(-180, 180, n),
        "rlnOriginXAngst": rng.normal(0, 2 * apix, n),
        "rlnOriginYAngst": rng.normal(0, 2 * apix, n),
        "rlnDefocusU": rng.uniform(8000, 25000, n),
        "rlnDefocusV": rng.uniform(8000, 25000, n),
        "rlnDefocusAngle": rng.uniform(-180, 180, n),
        "rlnPhaseShift": rng.uniform(0, 20, n),
        "rlnCtfBfactor": rng.uniform(0, 150, n),
        "rlnOpticsGroup": np.ones(n, int)})
    starfile.write({"optics": optics, "particles": parts}, path, overwrite=True)


@pytest.mark.parametrize("box", [64, 45])
def test_simulate_reproduces_relion_project(tmp_path, box):
    apix = 2.3
    write_map(tmp_path / "map.mrc", random_map(box, 1), apix)
    random_pose_star(tmp_path / "poses.star", 40, box, apix, seed=box)
    subprocess.run(["relion_project", "--i", "map.mrc", "--o", "relion", "--ang", "poses.star",
                    "--ctf", "--angpix", str(apix)], cwd=tmp_path, check=True,
                   capture_output=True)
    run_simulate(f"--volume={tmp_path / 'map.mrc'}", f"--poses_from={tmp_path / 'poses.star'}",
                 "--noise=none", f"--output={tmp_path / 'ours' / 'p.star'}")
    ours = mrcfile.read(tmp_path / "ours" / "p.mrcs")
    theirs = mrcfile.read(tmp_path / "relion.mrcs")
    assert ours.shape == theirs.shape == (40, box, box)
    r = np.array([np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in zip(ours, theirs)])
    assert np.median(r) >= 0.99 and r.min() >= 0.95, r
    # Same intensity scale (line integrals in voxel units), not only the same pattern.
    scale = np.sum(ours * theirs) / np.sum(ours * ours)
    assert abs(scale - 1.0) < 0.02
    with mrcfile.open(tmp_path / "ours" / "p.mrcs", header_only=True) as m:
        assert abs(float(m.voxel_size.x) - apix) < 1e-4


def test_relion_reconstruct_recovers_simulated_map(tmp_path):
    box, apix = 32, 3.0
    truth = random_map(box, 2)
    write_map(tmp_path / "map.mrc", truth, apix)
    run_simulate(f"--volume={tmp_path / 'map.mrc'}", "--n_particles=4000", "--snr_db=20",
                 "--shift_std_A=3", "--defocus_min_A=8000", "--defocus_max_A=20000",
                 "--astigmatism_A=500", "--bfactor=20", "--seed=3",
                 f"--output={tmp_path / 'sim' / 'particles.star'}")
    subprocess.run(["relion_reconstruct", "--i", "sim/particles.star", "--o", "rec.mrc", "--ctf"],
                   cwd=tmp_path, check=True, capture_output=True)
    rec = mrcfile.read(tmp_path / "rec.mrc")
    curve = fsc_lib.fsc(rec, truth).numpy()
    _, fraction = fsc_lib.resolution(curve, box, apix, 0.5)
    assert fraction >= 0.9, curve
