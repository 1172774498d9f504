"""Tests for tfcryogan.io.particles.ParticleTable."""

import numpy as np
import pytest

from tfcryogan.errors import InputError
from tfcryogan.io.particles import CTF_COLUMNS, ParticleTable


def _table(n=4, **kw):
    base = dict(image_path=[f"/data/s{i % 2}.mrcs" for i in range(n)],
                image_index=np.arange(n), pixel_size=1.5,
                defocus_u=np.linspace(10000, 13000, n), defocus_v=np.linspace(9000, 12000, n),
                defocus_angle=30.0, voltage=300.0, cs=2.7, amplitude_contrast=0.07,
                phase_shift=5.0, bfactor=20.0, ctf_scale=0.9, source="/data/p.star")
    base.update(kw)
    return ParticleTable(**base)


def test_ctf_columns_order_is_the_documented_one():
    assert CTF_COLUMNS == ("defocus_u", "defocus_v", "defocus_angle", "voltage", "cs",
                           "amplitude_contrast", "phase_shift", "bfactor", "ctf_scale")


def test_ctf_array_follows_ctf_columns():
    t = _table()
    ctf = t.ctf_array()
    assert ctf.dtype == np.float32 and ctf.shape == (4, 9)
    expected = np.array([[10000, 9000, 30, 300, 2.7, 0.07, 5, 20, 0.9],
                         [13000, 12000, 30, 300, 2.7, 0.07, 5, 20, 0.9]], np.float32)
    np.testing.assert_allclose(ctf[[0, -1]], expected, rtol=1e-6)


def test_defaults_and_broadcast():
    t = ParticleTable(image_path=["/a.mrcs"] * 3, image_index=[0, 1, 2], pixel_size=2.0,
                      defocus_u=1e4, defocus_v=1e4, defocus_angle=0.0, voltage=300.0, cs=2.7,
                      amplitude_contrast=0.1)
    assert len(t) == 3
    assert t.image_index.dtype == np.int64 and t.pixel_size.dtype == np.float64
    np.testing.assert_array_equal(t.box, [0, 0, 0])  # unknown box is 0, never None
    np.testing.assert_array_equal(t.optics_group, [1, 1, 1])
    np.testing.assert_array_equal(t.ctf_array()[:, 6:], [[0, 0, 1]] * 3)
    assert not t.has_poses and t.rot is None and t.origin_x is None
    assert t.class_number is None


def test_poses_property_and_default_origins():
    t = _table(rot=10.0, tilt=20.0, psi=30.0)
    assert t.has_poses is True  # a property, not a method
    np.testing.assert_array_equal(t.origin_x, np.zeros(4))
    with pytest.raises(ValueError):
        _table(rot=10.0)


def test_subset_by_index_and_mask():
    t = _table(rot=np.arange(4.0), tilt=0.0, psi=0.0, class_number=[1, 2, 3, 4])
    s = t.subset([3, 1])
    assert len(s) == 2
    np.testing.assert_array_equal(s.image_index, [3, 1])
    np.testing.assert_array_equal(s.rot, [3.0, 1.0])
    np.testing.assert_array_equal(s.class_number, [4, 2])
    assert list(s.image_path) == ["/data/s1.mrcs", "/data/s1.mrcs"]
    m = t.subset(np.array([True, False, True, False]))
    np.testing.assert_array_equal(m.image_index, [0, 2])
    assert m.source == t.source
    s.rot[0] = 99.0  # a copy: the original is untouched
    assert t.rot[3] == 3.0


def test_no_ctf():
    t = ParticleTable(image_path=["/a.mrcs"], image_index=[0], pixel_size=1.0, source="x.star")
    assert not t.has_ctf
    with pytest.raises(InputError, match="x.star: no CTF parameters"):
        t.ctf_array()


@pytest.mark.parametrize("field,value,message", [
    ("defocus_u", np.nan, "particle 3: defocus_u is nan"),
    ("defocus_v", -5.0, "particle 3: defocus_v is -5, must be >= 0"),
    ("voltage", 0.0, "particle 3: voltage is 0, must be > 0"),
    ("pixel_size", -1.0, "particle 3: pixel_size is -1, must be > 0"),
    ("amplitude_contrast", 1.0, "particle 3: amplitude_contrast is 1, must be in"),
    ("rot", np.inf, "particle 3: rot is inf"),
])
def test_check_names_source_row_and_column(field, value, message):
    kw = {} if field != "rot" else dict(tilt=0.0, psi=0.0)
    values = np.asarray(getattr(_table(), field) if field != "rot" else np.zeros(4), float).copy()
    values[2] = value
    t = _table(**{field: values}, **kw)
    with pytest.raises(InputError) as err:
        t.check()
    assert str(err.value).startswith("/data/p.star: ")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_check_uses_file_column_names():
    t = _table(defocus_u=[1.0, np.nan, 1.0, 1.0])
    t.column_names = {"defocus_u": "rlnDefocusU"}
    with pytest.raises(InputError, match=r"particle 2: defocus_u \(rlnDefocusU\) is nan"):
        t.check()


def test_check_empty():
    t = ParticleTable(image_path=[], image_index=[], pixel_size=[], source="e.star")
    with pytest.raises(InputError, match="e.star: no particles"):
        t.check()
