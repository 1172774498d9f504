"""Symmetrisation against explicit rotations."""

import numpy as np
import pytest

from tfcryogan.errors import InputError
from tfcryogan.physics import symmetry


def blob(box, p, s=1.5):
    c = np.arange(box) - box // 2
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    return np.exp(-((x - p[0]) ** 2 + (y - p[1]) ** 2 + (z - p[2]) ** 2) / (2 * s * s)).astype(
        np.float32)


def test_c4_places_copies_at_quarter_turns():
    box = 24
    out = symmetry.symmetrize(blob(box, (6, 0, 2)), "C4").numpy()
    want = sum(blob(box, p) for p in [(6, 0, 2), (0, 6, 2), (-6, 0, 2), (0, -6, 2)]) / 4
    np.testing.assert_allclose(out, want, atol=2e-4)  # blob tails wrap at the box edge


def test_d2_has_twofolds_along_z_x_y():
    box = 24
    p = (5, 3, 2)
    out = symmetry.symmetrize(blob(box, p), "D2").numpy()
    copies = [(5, 3, 2), (-5, -3, 2), (5, -3, -2), (-5, 3, -2)]
    want = sum(blob(box, q) for q in copies) / 4
    np.testing.assert_allclose(out, want, atol=2e-4)  # blob tails wrap at the box edge


def test_c3_interpolated_copies():
    box = 32
    out = symmetry.symmetrize(blob(box, (7, 0, 0), s=2.0), "C3").numpy()
    angles = np.radians([0, 120, 240])
    want = sum(blob(box, (7 * np.cos(a), 7 * np.sin(a), 0), s=2.0) for a in angles) / 3
    assert np.abs(out - want).max() < 0.03


def test_symmetrize_is_a_projection():
    rng = np.random.default_rng(0)
    v = rng.random((16, 16, 16)).astype(np.float32)
    once = symmetry.symmetrize(v, "D4").numpy()
    twice = symmetry.symmetrize(once, "D4").numpy()
    inner = slice(1, None)  # the wrapped plane of even boxes aside
    np.testing.assert_allclose(twice[inner, inner, inner], once[inner, inner, inner], atol=1e-5)


@pytest.mark.parametrize("bad", ["O", "C0", "D", "T2", ""])
def test_bad_symmetry(bad):
    with pytest.raises(InputError):
        symmetry.parse_symmetry(bad)
