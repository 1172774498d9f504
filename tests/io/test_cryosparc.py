"""Tests for tfcryogan.io.cryosparc.read_cs."""

import numpy as np
import pytest

from tfcryogan.errors import InputError
from tfcryogan.io import open_stack, read_cs, read_star, write_stack, write_star

CS_DTYPE = [("uid", "<u8"), ("blob/path", "S64"), ("blob/idx", "<u4"), ("blob/shape", "<u4", (2,)),
            ("blob/psize_A", "<f4"), ("ctf/accel_kv", "<f4"), ("ctf/cs_mm", "<f4"),
            ("ctf/amp_contrast", "<f4"), ("ctf/df1_A", "<f4"), ("ctf/df2_A", "<f4"),
            ("ctf/df_angle_rad", "<f4"), ("ctf/phase_shift_rad", "<f4")]


def make_cs(path, blob_path, n=3, drop=None, **values):
    dtype = [d for d in CS_DTYPE if d[0] != drop]
    a = np.zeros(n, dtype=dtype)
    a["blob/path"] = blob_path
    a["blob/idx"] = np.arange(n)[::-1]
    a["blob/shape"] = 8
    a["blob/psize_A"] = 1.25
    for name, value in {"ctf/accel_kv": 300, "ctf/cs_mm": 2.7, "ctf/amp_contrast": 0.1,
                        "ctf/df1_A": 15000, "ctf/df2_A": 14000, "ctf/df_angle_rad": np.pi / 6,
                        "ctf/phase_shift_rad": np.pi / 2}.items():
        if name != drop:
            a[name] = values.get(name, value)
    with open(path, "wb") as fh:  # cryoSPARC saves with np.save to a file object: no '.npy' added
        np.save(fh, a)
    return path


@pytest.fixture
def project(tmp_path):
    images = np.random.default_rng(1).normal(size=(3, 8, 8)).astype(np.float32)
    write_stack(tmp_path / "J1" / "imported" / "stack.mrcs", images, 1.25)
    (tmp_path / "J2").mkdir()
    return tmp_path, images


def test_read_cs_units_and_indices(project):
    root, images = project
    cs = make_cs(root / "J1" / "particles.cs", b"J1/imported/stack.mrcs")
    t = read_cs(cs, stack_root=root, check_images=True)
    assert len(t) == 3
    np.testing.assert_array_equal(t.image_index, [2, 1, 0])  # blob/idx is 0-based: kept
    assert t.image_path[0] == str(root / "J1" / "imported" / "stack.mrcs")
    np.testing.assert_array_equal(open_stack(t.image_path[0])[t.image_index[0]], images[2])
    np.testing.assert_allclose(t.defocus_angle, 30.0, rtol=1e-6)  # radians -> degrees
    np.testing.assert_allclose(t.phase_shift, 90.0, rtol=1e-6)
    np.testing.assert_allclose(t.pixel_size, 1.25)
    np.testing.assert_array_equal(t.box, 8)
    np.testing.assert_allclose(t.ctf_array()[0], [15000, 14000, 30, 300, 2.7, 0.1, 90, 0, 1],
                               rtol=1e-6)
    assert not t.has_poses


def test_path_resolution(project, tmp_path):
    root, _ = project
    # Relative to the project folder, '>' prefix, .cs file in another job folder: found through
    # stack_root; without it, the basename in the .cs folder is tried.
    cs = make_cs(root / "J2" / "p.cs", b">J1/imported/stack.mrcs")
    assert read_cs(cs, stack_root=root).image_path[0] == str(root / "J1/imported/stack.mrcs")
    write_stack(root / "J2" / "stack.mrcs", np.zeros((3, 8, 8), np.float32), 1.0)
    assert read_cs(cs).image_path[0] == str(root / "J2" / "stack.mrcs")
    # Nothing found: kept as the first candidate; check_images reports it with the .cs name.
    cs = make_cs(root / "J2" / "q.cs", b"J9/missing.mrcs")
    t = read_cs(cs)
    assert t.image_path[0] == str(root / "J2" / "J9" / "missing.mrcs")
    with pytest.raises(InputError, match=r"q.cs: particle 1: .*missing.mrcs: file not found"):
        read_cs(cs, check_images=True)


def test_missing_field(project):
    root, _ = project
    cs = make_cs(root / "p.cs", b"J1/imported/stack.mrcs", drop="ctf/df1_A")
    with pytest.raises(InputError, match=r"p.cs: field ctf/df1_A is missing"):
        read_cs(cs)
    assert not read_cs(cs, require_ctf=False).has_ctf


def test_bad_values_and_files(project):
    root, _ = project
    cs = make_cs(root / "p.cs", b"J1/imported/stack.mrcs",
                 **{"ctf/df2_A": np.array([1.0, np.nan, 1.0])})
    with pytest.raises(InputError, match="p.cs: particle 2: field ctf/df2_A is NaN"):
        read_cs(cs)
    text = root / "t.cs"
    text.write_text("not numpy")
    with pytest.raises(InputError, match="t.cs: not a cryoSPARC .cs file"):
        read_cs(text)
    plain = root / "plain.cs"
    with open(plain, "wb") as fh:
        np.save(fh, np.zeros(3))
    with pytest.raises(InputError, match="plain.cs: not a cryoSPARC .cs file"):
        read_cs(plain)


def test_cs_to_star(project):
    root, _ = project
    t = read_cs(make_cs(root / "J1" / "p.cs", b"J1/imported/stack.mrcs"), stack_root=root)
    write_star(root / "J1" / "p.star", t)
    back = read_star(root / "J1" / "p.star", check_images=True)
    np.testing.assert_allclose(back.ctf_array(), t.ctf_array(), rtol=1e-6)
    np.testing.assert_array_equal(back.image_index, t.image_index)


def test_real_cs_matches_star(data_file):
    t_cs = read_cs(data_file("particles/empiar_10076_7.cs"), check_images=True)
    t_star = read_star(data_file("particles/empiar_10076_7.star"), check_images=True)
    assert len(t_cs) == len(t_star) == 7
    assert list(t_cs.image_path) == list(t_star.image_path)
    np.testing.assert_array_equal(t_cs.image_index, t_star.image_index)
    np.testing.assert_array_equal(t_cs.box, t_star.box)
    np.testing.assert_allclose(t_cs.pixel_size, t_star.pixel_size, rtol=1e-6)
    np.testing.assert_allclose(t_cs.ctf_array(), t_star.ctf_array(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(t_cs.defocus_angle, 5.28, atol=1e-4)
