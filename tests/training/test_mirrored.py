"""The mirrored step (2 logical CPU devices) equals the single-device step for the same global
batch: the per-replica slices of every random draw and the global-batch loss scaling add up to
the same update (one step: after it, Adam amplifies rounding differences of numerically-zero
gradients, as any two summation orders would)."""

import os
import subprocess
import sys

import numpy as np
import pytest

import mirrored_run  # tests/training/mirrored_run.py (on sys.path: this folder)

# End-to-end runs of bin/ commands in subprocesses: deselect with -m "not slow".
pytestmark = pytest.mark.slow

HERE = os.path.dirname(os.path.abspath(__file__))


def run(star, out, replicas, latent_dim=0):
    done = subprocess.run([sys.executable, os.path.join(HERE, "mirrored_run.py"), str(star),
                           str(out), str(replicas), "auto", str(latent_dim)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("latent_dim", [0, 2])
def test_mirrored_equals_single_device(tiny_dataset, tmp_path, latent_dim):
    """CryoGAN, and Multi-CryoGAN with the critic's minibatch statistics (groups of 4: each
    replica's 4 images are one group, as on one device)."""
    star, _ = tiny_dataset
    assert "one CPU" in run(star, tmp_path / "one", 1, latent_dim)
    assert "2 logical CPU devices" in run(star, tmp_path / "two", 2, latent_dim)
    mirrored_run.assert_same_step(tmp_path / "two", tmp_path / "one")
    # Losses, Wasserstein estimate and penalty summed over replicas equal the one-device values.
    # (The learned noise scale has a numerically-zero gradient at the first step, which Adam
    # turns into updates of 1e-5 that differ by rounding: compared with an absolute tolerance.)
    np.testing.assert_allclose(np.load(tmp_path / "two" / "metrics.npy"),
                               np.load(tmp_path / "one" / "metrics.npy"), rtol=1e-4, atol=2e-4)
