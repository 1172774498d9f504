"""A tiny synthetic particle set for the training tests (box 16, made in-process once)."""

import pytest

from tfcryogan import io, phantoms, synthesis


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """``(star_path, truth_path)``: 400 particles of the phantom at box 16, 6 A/px, 5 dB."""
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
