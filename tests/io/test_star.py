"""Tests for tfcryogan.io.star: RELION 3.0 / 3.1 STAR reading and writing."""

import os

import mrcfile
import numpy as np
import pytest

from tfcryogan.errors import InputError
from tfcryogan.io import open_stack, read_star, write_stack, write_star

OPTICS_COLS = ["rlnOpticsGroup", "rlnOpticsGroupName", "rlnVoltage", "rlnSphericalAberration",
               "rlnAmplitudeContrast", "rlnImagePixelSize", "rlnImageSize",
               "rlnImageDimensionality"]
OPTICS_ROWS = [[1, "og1", 300, 2.7, 0.1, 1.5, 8, 2], [2, "og2", 200, 2.0, 0.07, 1.5, 8, 2]]
PART31_COLS = ["rlnImageName", "rlnDefocusU", "rlnDefocusV", "rlnDefocusAngle", "rlnAngleRot",
               "rlnAngleTilt", "rlnAnglePsi", "rlnOriginXAngst", "rlnOriginYAngst",
               "rlnOpticsGroup"]
PART31_ROWS = [["3@imgs/s.mrcs", 10000, 9000, 10, 1, 2, 3, 1.5, -3.0, 2],
               ["1@imgs/s.mrcs", 11000, 9500, 20, 4, 5, 6, 0, 0, 1],
               ["2@imgs/s.mrcs", 12000, 9900, 30, 7, 8, 9, 3.0, 0.75, 1]]
PART30_COLS = ["rlnImageName", "rlnDefocusU", "rlnDefocusV", "rlnDefocusAngle", "rlnVoltage",
               "rlnSphericalAberration", "rlnAmplitudeContrast", "rlnMagnification",
               "rlnDetectorPixelSize", "rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi",
               "rlnOriginX", "rlnOriginY", "rlnClassNumber"]
PART30_ROWS = [["2@imgs/s.mrcs", 10000, 9000, 10, 300, 2.7, 0.1, 50000, 7.5, 1, 2, 3, 2, -1, 1],
               ["3@imgs/s.mrcs", 11000, 9500, 20, 300, 2.7, 0.1, 50000, 7.5, 4, 5, 6, 0, 0, 2]]


def star_text(blocks):
    """Minimal independent STAR writer for the fixtures: {name: (columns, rows)}."""
    lines = []
    for name, (cols, rows) in blocks.items():
        lines += [f"data_{name}", "", "loop_"] + [f"_{c} #{i}" for i, c in enumerate(cols, 1)]
        lines += [" ".join(str(v) for v in row) for row in rows] + [""]
    return "\n".join(lines) + "\n"


@pytest.fixture
def stack(tmp_path):
    images = np.random.default_rng(0).normal(size=(3, 8, 8)).astype(np.float32)
    path = tmp_path / "imgs" / "s.mrcs"
    write_stack(path, images, 1.0)
    return path, images


def write(tmp_path, blocks, name="p.star"):
    path = tmp_path / name
    path.write_text(star_text(blocks))
    return path


def star31(tmp_path, particles=None, optics=None, name="p.star"):
    return write(tmp_path, {"optics": optics or (OPTICS_COLS, OPTICS_ROWS),
                            "particles": particles or (PART31_COLS, PART31_ROWS)}, name)


def drop_column(cols, rows, column):
    i = cols.index(column)
    return [c for c in cols if c != column], [r[:i] + r[i + 1:] for r in rows]


def set_value(cols, rows, row, column, value):
    rows = [list(r) for r in rows]
    rows[row][cols.index(column)] = value
    return cols, rows


# ------------------------------------------------------------------------------ RELION 3.1


def test_read_31_selects_images_one_based(tmp_path, stack, monkeypatch):
    stack_path, images = stack
    monkeypatch.chdir(tmp_path.parent)  # paths resolve against the STAR folder, not the cwd
    t = read_star(star31(tmp_path), check_images=True)
    assert len(t) == 3
    np.testing.assert_array_equal(t.image_index, [2, 0, 1])
    assert all(p == str(stack_path) for p in t.image_path)
    data = open_stack(t.image_path[0])
    for i, expected in enumerate([2, 0, 1]):
        np.testing.assert_array_equal(data[t.image_index[i]], images[expected])
    np.testing.assert_array_equal(t.box, [8, 8, 8])


def test_read_31_optics_groups_and_angstrom_origins(tmp_path, stack):
    t = read_star(star31(tmp_path))
    np.testing.assert_array_equal(t.optics_group, [2, 1, 1])
    np.testing.assert_allclose(t.voltage, [200, 300, 300])
    np.testing.assert_allclose(t.cs, [2.0, 2.7, 2.7])
    np.testing.assert_allclose(t.amplitude_contrast, [0.07, 0.1, 0.1])
    np.testing.assert_allclose(t.pixel_size, 1.5)
    np.testing.assert_allclose(t.origin_x, [1.5, 0.0, 3.0])  # Angstrom, kept as is
    np.testing.assert_allclose(t.origin_y, [-3.0, 0.0, 0.75])
    np.testing.assert_allclose(t.rot, [1, 4, 7])
    np.testing.assert_allclose(t.tilt, [2, 5, 8])
    np.testing.assert_allclose(t.psi, [3, 6, 9])
    np.testing.assert_allclose(t.ctf_array()[0], [10000, 9000, 10, 200, 2.0, 0.07, 0, 0, 1])
    assert t.has_poses and t.source == str(tmp_path / "p.star")


def test_particle_column_overrides_optics(tmp_path, stack):
    cols = PART31_COLS + ["rlnVoltage"]
    rows = [r + [120] for r in PART31_ROWS]
    t = read_star(star31(tmp_path, particles=(cols, rows)))
    np.testing.assert_allclose(t.voltage, 120)


def test_absolute_paths_and_single_image_names(tmp_path, stack):
    stack_path, _ = stack
    single = tmp_path / "one.mrc"
    write_stack(single, np.zeros((1, 8, 8), np.float32), 1.0)
    rows = [list(r) for r in PART31_ROWS]
    rows[0][0] = f"000003@{stack_path}"
    rows[1][0] = "one.mrc"
    t = read_star(star31(tmp_path, particles=(PART31_COLS, rows)), check_images=True)
    assert t.image_path[0] == str(stack_path) and t.image_index[0] == 2
    assert t.image_path[1] == str(single) and t.image_index[1] == 0


# ------------------------------------------------------------------------------ RELION 3.0


def test_read_30_pixel_size_from_magnification_and_pixel_origins(tmp_path, stack):
    path = write(tmp_path, {"images": (PART30_COLS, PART30_ROWS)})
    t = read_star(path)
    np.testing.assert_allclose(t.pixel_size, 7.5e4 / 50000)  # 1.5 A
    np.testing.assert_allclose(t.origin_x, [3.0, 0.0])  # 2 px * 1.5 A
    np.testing.assert_allclose(t.origin_y, [-1.5, 0.0])
    np.testing.assert_array_equal(t.image_index, [1, 2])
    np.testing.assert_array_equal(t.class_number, [1, 2])
    np.testing.assert_allclose(t.voltage, 300)
    np.testing.assert_array_equal(t.box, [0, 0])  # unknown until the stack is opened
    assert t.optics is None


def test_read_30_image_pixel_size_wins(tmp_path, stack):
    cols = PART30_COLS + ["rlnImagePixelSize"]
    rows = [r + [2.0] for r in PART30_ROWS]
    t = read_star(write(tmp_path, {"": (cols, rows)}))
    np.testing.assert_allclose(t.pixel_size, 2.0)
    np.testing.assert_allclose(t.origin_x, [4.0, 0.0])


def test_pixel_size_argument(tmp_path, stack):
    cols, rows = drop_column(PART30_COLS, PART30_ROWS, "rlnMagnification")
    path = write(tmp_path, {"": (cols, rows)})
    with pytest.raises(InputError, match="p.star: no pixel size"):
        read_star(path)
    np.testing.assert_allclose(read_star(path, pixel_size=1.2).pixel_size, 1.2)
    with pytest.raises(InputError, match="differs from the given"):
        read_star(write(tmp_path, {"": (PART30_COLS, PART30_ROWS)}, "q.star"), pixel_size=1.2)


# ------------------------------------------------------------------------------ bad input


def test_missing_defocus_column(tmp_path, stack):
    path = star31(tmp_path, particles=drop_column(PART31_COLS, PART31_ROWS, "rlnDefocusU"))
    with pytest.raises(InputError) as err:
        read_star(path)
    assert str(err.value) == (f"{path}: column rlnDefocusU is missing in block data_particles "
                              "or data_optics")
    t = read_star(path, require_ctf=False)
    assert not t.has_ctf and t.defocus_v is None


def test_missing_voltage_in_30(tmp_path, stack):
    path = write(tmp_path, {"": drop_column(PART30_COLS, PART30_ROWS, "rlnVoltage")})
    with pytest.raises(InputError, match="p.star: column rlnVoltage is missing in block data_$"):
        read_star(path)


@pytest.mark.parametrize("name,message", [
    ("0@imgs/s.mrcs", "image number 0"),
    ("-1@imgs/s.mrcs", "bad rlnImageName"),
    ("1.5@imgs/s.mrcs", "bad rlnImageName"),
    ("x@imgs/s.mrcs", "bad rlnImageName"),
])
def test_bad_image_numbers(tmp_path, stack, name, message):
    path = star31(tmp_path, particles=set_value(PART31_COLS, PART31_ROWS, 1, "rlnImageName", name))
    with pytest.raises(InputError, match=f"p.star: row 2 of block data_particles: {message}"):
        read_star(path)


def test_index_beyond_stack(tmp_path, stack):
    path = star31(tmp_path, particles=set_value(PART31_COLS, PART31_ROWS, 2, "rlnImageName",
                                                "4@imgs/s.mrcs"))
    read_star(path)  # headers are not opened unless asked
    with pytest.raises(InputError, match=r"p.star: particle 3: image 4 of .*s.mrcs does not exist "
                                         r"\(the stack has 3 images\)"):
        read_star(path, check_images=True)


def test_missing_stack(tmp_path, stack):
    path = star31(tmp_path, particles=set_value(PART31_COLS, PART31_ROWS, 0, "rlnImageName",
                                                "1@imgs/gone.mrcs"))
    with pytest.raises(InputError, match=r"p.star: particle 1: .*gone.mrcs: file not found"):
        read_star(path, check_images=True)


def test_box_mismatch(tmp_path, stack):
    rows = [r[:6] + [16, 2] for r in OPTICS_ROWS]
    path = star31(tmp_path, optics=(OPTICS_COLS, rows))
    with pytest.raises(InputError, match="image size 16 in the metadata but 8 in"):
        read_star(path, check_images=True)


@pytest.mark.parametrize("value,message", [
    ("nan", "row 2 of block data_particles: column rlnDefocusV is nan"),
    ("abc", "row 2 of block data_particles: column rlnDefocusV is not a number: 'abc'"),
    ("-100", "particle 2: defocus_v (rlnDefocusV) is -100, must be >= 0"),
])
def test_bad_values(tmp_path, stack, value, message):
    path = star31(tmp_path, particles=set_value(PART31_COLS, PART31_ROWS, 1, "rlnDefocusV", value))
    with pytest.raises(InputError) as err:
        read_star(path)
    assert str(err.value).startswith(str(path))
    assert message in str(err.value)


def test_nan_in_optics(tmp_path, stack):
    rows = [list(r) for r in OPTICS_ROWS]
    rows[1][2] = "nan"
    with pytest.raises(InputError, match="row 2 of block data_optics: column rlnVoltage is nan"):
        read_star(star31(tmp_path, optics=(OPTICS_COLS, rows)))


def test_undefined_optics_group(tmp_path, stack):
    path = star31(tmp_path, particles=set_value(PART31_COLS, PART31_ROWS, 2, "rlnOpticsGroup", 7))
    with pytest.raises(InputError, match="row 3 of block data_particles: optics group 7 is not "
                                         "defined in data_optics"):
        read_star(path)


def test_empty_and_odd_files(tmp_path):
    empty = tmp_path / "e.star"
    empty.write_text("data_particles\n\nloop_\n_rlnImageName #1\n_rlnDefocusU #2\n")
    with pytest.raises(InputError, match="e.star: block data_particles has no particles"):
        read_star(empty)
    other = tmp_path / "o.star"
    other.write_text(star_text({"model": (["rlnClassDistribution"], [[0.5]])}))
    with pytest.raises(InputError, match="o.star: no block with column rlnImageName"):
        read_star(other)
    garbage = tmp_path / "g.star"
    garbage.write_bytes(b"\x00\xff\x10 not a star file")
    with pytest.raises(InputError, match="g.star: "):
        read_star(garbage)
    with pytest.raises(InputError, match="none.star: file not found"):
        read_star(tmp_path / "none.star")


# ------------------------------------------------------------------------------ writing


def assert_same_table(a, b):
    assert len(a) == len(b)
    assert list(a.image_path) == list(b.image_path)
    np.testing.assert_array_equal(a.image_index, b.image_index)
    for f in ("pixel_size", "defocus_u", "defocus_v", "defocus_angle", "voltage", "cs",
              "amplitude_contrast", "phase_shift", "bfactor", "ctf_scale", "rot", "tilt", "psi",
              "origin_x", "origin_y"):
        va, vb = getattr(a, f), getattr(b, f)
        assert (va is None) == (vb is None), f
        if va is not None:
            np.testing.assert_allclose(va, vb, atol=1e-6, err_msg=f)
    for f in ("box", "class_number"):
        va, vb = getattr(a, f), getattr(b, f)
        assert (va is None) == (vb is None), f
        if va is not None:
            np.testing.assert_array_equal(va, vb, err_msg=f)
    assert a.has_poses == b.has_poses and a.has_ctf == b.has_ctf


def test_round_trip_synthetic_31(tmp_path, stack):
    t = read_star(star31(tmp_path))
    out = tmp_path / "out.star"  # absolute names: RELION (cwd-relative) reads them anywhere
    write_star(out, t)
    text = out.read_text()
    assert f"000003@{tmp_path / 'imgs' / 's.mrcs'}" in text
    assert "data_optics" in text and "rlnImageDimensionality" in text
    back = read_star(out)
    assert_same_table(t, back)
    np.testing.assert_array_equal(back.optics_group, t.optics_group)
    assert list(back.optics["rlnOpticsGroupName"]) == ["og1", "og2"]


def test_random_subset_is_read_and_written(tmp_path, stack):
    """RELION's gold-standard halves (rlnRandomSubset) survive a round trip."""
    cols = PART31_COLS + ["rlnRandomSubset"]
    rows = [row + [half] for row, half in zip(PART31_ROWS, (2, 1, 2))]
    path = write(tmp_path, {"optics": (OPTICS_COLS, OPTICS_ROWS), "particles": (cols, rows)})
    t = read_star(path)
    np.testing.assert_array_equal(t.random_subset, [2, 1, 2])
    out = tmp_path / "halves.star"
    write_star(out, t)
    assert "rlnRandomSubset" in out.read_text()
    np.testing.assert_array_equal(read_star(out).random_subset, [2, 1, 2])
    assert read_star(star31(tmp_path)).random_subset is None


def test_round_trip_30_becomes_31(tmp_path, stack):
    t = read_star(write(tmp_path, {"": (PART30_COLS, PART30_ROWS)}), check_images=True)
    out = tmp_path / "elsewhere" / "new.star"
    write_star(out, t)
    assert f"000002@{tmp_path / 'imgs' / 's.mrcs'}" in out.read_text()
    back = read_star(out)
    assert_same_table(t, back)
    assert "rlnOriginXAngst" in out.read_text() and "rlnOriginX " not in out.read_text()


def test_write_fills_unknown_box_from_stacks(tmp_path, stack):
    t = read_star(write(tmp_path, {"": (PART30_COLS, PART30_ROWS)}))
    assert (t.box == 0).all()
    out = tmp_path / "w.star"
    write_star(out, t)
    np.testing.assert_array_equal(read_star(out).box, [8, 8])


def test_write_splits_inconsistent_optics_groups(tmp_path, stack):
    t = read_star(star31(tmp_path))
    t.optics_group[:] = 1
    t.voltage[:] = [300, 300, 200]
    t.cs[:], t.amplitude_contrast[:] = 2.7, 0.1
    out = tmp_path / "w.star"
    write_star(out, t)
    back = read_star(out)
    np.testing.assert_allclose(back.voltage, [300, 300, 200])
    np.testing.assert_array_equal(back.optics_group, [1, 1, 2])
    assert len(back.optics) == 2


def test_write_is_atomic(tmp_path, stack):
    t = read_star(star31(tmp_path, particles=set_value(PART31_COLS, PART31_ROWS, 1, "rlnImageName",
                                                       "1@imgs/gone.mrcs")))
    t.box[1:] = 0  # forces opening the stacks, which fails for particle 2
    out = tmp_path / "w.star"
    out.write_text("old")
    with pytest.raises(InputError, match=r"p.star: particle 2: .*gone.mrcs: file not found"):
        write_star(out, t)
    np.testing.assert_array_equal(t.box, [8, 0, 0])  # the caller's table is not modified
    assert out.read_text() == "old"
    assert [f for f in os.listdir(tmp_path) if ".tmp" in f] == []


# ------------------------------------------------------------------------------ real files


def test_real_relion31(data_file):
    path = data_file("particles/relion31.star")
    t = read_star(path, check_images=True)
    assert len(t) == 5
    np.testing.assert_allclose(t.pixel_size, 2.806)
    np.testing.assert_array_equal(t.box, 256)
    np.testing.assert_array_equal(t.image_index, [0, 1, 2, 3, 4])
    np.testing.assert_allclose(t.defocus_u[0], 13108.082418)
    np.testing.assert_allclose(t.defocus_angle[0], -160.39)
    np.testing.assert_allclose(t.voltage, 300.0)
    np.testing.assert_allclose(t.cs, 0.01)
    np.testing.assert_allclose(t.amplitude_contrast, 0.1)
    np.testing.assert_allclose(t.rot[:2], [-102.30296, -100.20986])
    np.testing.assert_allclose(t.origin_x[:3], [0.019324, -0.25248, -0.65323])  # already A
    np.testing.assert_allclose(t.origin_y[:3], [-0.64686, 0.403454, -0.09226])
    assert t.image_path[3] == str(path.parent / "relion31.mrcs")
    with pytest.warns(RuntimeWarning):  # no MAP ID in this file
        with mrcfile.open(t.image_path[3], permissive=True) as m:
            np.testing.assert_array_equal(open_stack(t.image_path[3])[t.image_index[3]],
                                          m.data[3])


def test_real_empiar_10076_relion30(data_file):
    path = data_file("particles/empiar_10076_7.star")
    t = read_star(path, check_images=True)
    assert len(t) == 7
    np.testing.assert_allclose(t.pixel_size, 1.31, atol=1e-5)  # 5 um * 1e4 / 38168
    np.testing.assert_array_equal(t.box, 320)
    np.testing.assert_allclose(t.defocus_u[6], 15177.4)
    np.testing.assert_allclose(t.defocus_v[6], 14792.7)
    assert not t.has_poses
    with mrcfile.open(path.parent / "empiar_10076_7.mrc") as m:
        np.testing.assert_array_equal(open_stack(t.image_path[5])[t.image_index[5]], m.data[5])


def test_real_sample_relion30_model_class_block(data_file):
    t = read_star(data_file("particles/sample_relion_data.star"), check_images=True)
    assert len(t) == 17
    px = 5.0 * 1e4 / 37369.207031
    np.testing.assert_allclose(t.pixel_size, px)
    np.testing.assert_allclose(t.origin_x[:3], np.array([0.1996, -0.0504, 0.1996]) * px)
    np.testing.assert_allclose(t.origin_y[3], -0.3004 * px)
    np.testing.assert_array_equal(t.box, 200)


def test_real_sample_two_optics_groups(data_file):
    t = read_star(data_file("particles/sample_particles_relion31.star"), check_images=True)
    assert len(t) == 17
    np.testing.assert_array_equal(t.optics_group, [1] * 8 + [2] * 9)
    np.testing.assert_allclose(t.voltage, [300.0] * 8 + [200.0] * 9)
    np.testing.assert_allclose(t.pixel_size, 1.4)
    np.testing.assert_allclose(t.origin_x[:3], [0.1996, -0.0504, 0.1996])  # Angstrom
    np.testing.assert_array_equal(t.image_index, np.arange(17))


def test_real_betagal_one_image_per_file(data_file):
    path = data_file("betagal/empiar10061_particles/particles.star")
    t = read_star(path, check_images=True)
    assert len(t) == 36
    np.testing.assert_array_equal(t.image_index, 0)
    assert len(set(t.image_path)) == 36
    assert t.image_path[7] == str(path.parent / "000007.mrc")
    np.testing.assert_allclose(t.pixel_size, 0.637)
    np.testing.assert_array_equal(t.box, 384)
    np.testing.assert_allclose(t.ctf_array()[0, :6], [7923.343, 7857.347, 65.938, 300, 2.7, 0.1],
                               rtol=1e-6)


@pytest.mark.parametrize("name", ["relion31.star", "empiar_10076_7.star",
                                  "sample_particles_relion31.star"])
def test_real_round_trip(data_file, tmp_path, name):
    t = read_star(data_file(f"particles/{name}"), check_images=True)
    out = tmp_path / "rt.star"
    write_star(out, t)
    assert_same_table(t, read_star(out))


def test_relative_names_fall_back_to_current_directory(tmp_path, stack, monkeypatch):
    # RELION's rule: names relative to the project folder (where RELION runs).
    t = read_star(star31(tmp_path))
    sub = tmp_path / "Refine3D"
    sub.mkdir()
    text = (tmp_path / "out.star")
    write_star(text, t)
    moved = sub / "run_data.star"
    moved.write_text(text.read_text().replace(str(tmp_path) + "/", ""))
    monkeypatch.chdir(tmp_path)
    back = read_star(moved, check_images=True)
    assert back.image_path[0] == str(tmp_path / "imgs" / "s.mrcs")
