"""Shared test set-up: quiet TensorFlow, the reference data folder, a tiny synthetic data set."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]

#: The project's reference data: ../shared/data from the repository root (absent in a user's
#: checkout, where the tests that need it are skipped).
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def shared_data():
    """Path to ../shared/data, or skip the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA} "
                    "(../shared/data from the repository root)")
    return SHARED_DATA


@pytest.fixture
def data_file(shared_data):
    """Function returning a file of ../shared/data by relative path; skips when it is missing."""

    def get(relative):
        path = shared_data / relative
        if not path.exists():
            pytest.skip(f"reference file {path} not found")
        return path

    return get


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """``(star_path, truth_path)``: 400 particles of the phantom at box 16, 6 A/px, 5 dB."""
    from tfcryogan import io, phantoms, synthesis  # pylint: disable=import-outside-toplevel
    folder = tmp_path_factory.mktemp("tiny")
    volume = phantoms.phantom(16)
    truth = folder / "truth.mrc"
    io.write_volume(truth, volume, 6.0)
    ctf = synthesis.CtfSpec(defocus_min_a=8000, defocus_max_a=20000)
    particles = synthesis.random_particles(400, 1, 1, ctf, shift_std_a=3.0)
    star = folder / "particles.star"
    synthesis.simulate(volume[None], 6.0, particles, synthesis.NoiseSpec(kind="white", snr_db=5.0),
                       str(star), seed=1, quiet=True)
    return star, truth
