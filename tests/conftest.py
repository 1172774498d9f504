"""Shared test set-up: quiet TensorFlow, the reference data folder, small helpers."""

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
