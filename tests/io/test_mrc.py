"""Tests for tfcryogan.io.mrc: volumes, stacks, atomic writes, bad input."""

import os
import warnings

import mrcfile
import numpy as np
import pytest

from tfcryogan.errors import InputError
from tfcryogan.io import mrc
from tfcryogan.io.mrc import (StackWriter, open_stack, read_volume, stack_shape, stack_voxel_size,
                              write_stack, write_volume)


def _asym_volume(n=8, seed=0):
    return np.random.default_rng(seed).normal(size=(n, n, n)).astype(np.float32)


def _write_raw(path, data, voxel_size=None, **header):
    with warnings.catch_warnings(), mrcfile.new(path, overwrite=True) as m:
        warnings.simplefilter("ignore")  # mrcfile warns about the NaN we write on purpose
        m.set_data(data)
        if voxel_size is not None:
            m.voxel_size = voxel_size
        for key, value in header.items():
            setattr(m.header, key, value)
    return path


def _leftovers(folder):
    return [f for f in os.listdir(folder) if ".tmp" in f]


# ----------------------------------------------------------------------------------- volumes


def test_volume_round_trip_keeps_values_axes_and_voxel_size(tmp_path):
    vol = _asym_volume()
    path = tmp_path / "sub" / "dir" / "v.mrc"  # parent folders are created
    write_volume(path, vol, 1.7)
    back, voxel = read_volume(path)
    assert back.dtype == np.float32 and back.shape == vol.shape
    np.testing.assert_array_equal(back, vol)
    assert voxel == pytest.approx(1.7)
    with mrcfile.open(path) as m:  # strict mode: a valid file
        assert int(m.header.mode) == 2
        assert int(m.header.ispg) == 1
        assert tuple(m.header.origin.tolist()) == (0.0, 0.0, 0.0)
        np.testing.assert_array_equal(m.data, vol)  # mrcfile's [z, y, x] is ours
    assert _leftovers(path.parent) == []


def test_read_volume_matches_mrcfile_layout(tmp_path):
    vol = np.zeros((6, 6, 6), np.float32)
    vol[1, 2, 3] = 5.0  # z=1, y=2, x=3
    path = _write_raw(tmp_path / "v.mrc", vol, voxel_size=2.0)
    back, _ = read_volume(path)
    assert tuple(np.argwhere(back == 5.0)[0]) == (1, 2, 3)


def test_read_volume_undoes_permuted_axis_order(tmp_path):
    vol = _asym_volume(6)
    # Store with columns = z, rows = y, sections = x (mapc=3, mapr=2, maps=1): the on-disk array
    # is indexed [x, y, z].
    path = _write_raw(tmp_path / "perm.mrc", np.ascontiguousarray(vol.transpose(2, 1, 0)),
                      voxel_size=1.0, mapc=3, mapr=2, maps=1)
    back, _ = read_volume(path)
    np.testing.assert_array_equal(back, vol)


def test_voxel_size_zero_is_none_and_one_is_kept(tmp_path):
    vol = _asym_volume(4)
    assert read_volume(_write_raw(tmp_path / "a.mrc", vol))[1] is None
    assert read_volume(_write_raw(tmp_path / "b.mrc", vol, voxel_size=1.0))[1] == 1.0


def test_read_volume_converts_int16(tmp_path):
    vol = np.arange(27, dtype=np.int16).reshape(3, 3, 3)
    back, _ = read_volume(_write_raw(tmp_path / "i.mrc", vol, voxel_size=1.0))
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, vol.astype(np.float32))


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), None, "x"])
def test_write_volume_needs_positive_voxel_size(tmp_path, bad):
    with pytest.raises(InputError, match="voxel size"):
        write_volume(tmp_path / "v.mrc", _asym_volume(4), bad)
    assert not (tmp_path / "v.mrc").exists()


def test_write_volume_is_atomic_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "v.mrc"
    write_volume(path, _asym_volume(4, seed=1), 1.0)
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(mrc.mrcfile, "new", broken)
    with pytest.raises(OSError):
        write_volume(path, _asym_volume(4, seed=2), 1.0)
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_write_volume_rejects_nan(tmp_path):
    vol = _asym_volume(4)
    vol[0, 0, 0] = np.nan
    with pytest.raises(ValueError):
        write_volume(tmp_path / "v.mrc", vol, 1.0)
    assert os.listdir(tmp_path) == []


def test_read_volume_missing_file(tmp_path):
    path = tmp_path / "nothere.mrc"
    with pytest.raises(InputError, match="nothere.mrc: file not found"):
        read_volume(path)


def test_read_volume_truncated(tmp_path):
    path = tmp_path / "trunc.mrc"
    write_volume(path, _asym_volume(8), 1.0)
    with open(path, "r+b") as fh:
        fh.truncate(os.path.getsize(path) - 100)
    with pytest.raises(InputError, match="trunc.mrc: truncated"):
        read_volume(path)
    with pytest.raises(InputError, match="trunc.mrc: truncated"):
        open_stack(path)


def test_read_volume_not_mrc(tmp_path):
    path = tmp_path / "text.mrc"
    path.write_text("hello\n" * 400)
    with pytest.raises(InputError, match="text.mrc: not a"):
        read_volume(path)
    small = tmp_path / "small.mrc"
    small.write_bytes(b"\0" * 100)
    with pytest.raises(InputError, match="small.mrc: not an MRC file"):
        read_volume(small)


def test_file_without_map_id_needs_exact_size(tmp_path):
    """Files lacking the 'MAP ' ID are accepted only when the size matches the header exactly."""
    path = _write_raw(tmp_path / "old.mrcs", _asym_volume(4), voxel_size=1.0)
    raw = bytearray(path.read_bytes())
    raw[208:212] = b"\0\0\0\0"  # wipe the map ID
    path.write_bytes(bytes(raw))
    np.testing.assert_array_equal(open_stack(path), _asym_volume(4))
    path.write_bytes(bytes(raw) + b"\0" * 16)
    with pytest.raises(InputError, match="old.mrcs: not a valid MRC file"):
        open_stack(path)


def test_read_volume_rejects_non_cubic_2d_and_nan(tmp_path):
    with pytest.raises(InputError, match="nc.mrc: volume is not cubic"):
        read_volume(_write_raw(tmp_path / "nc.mrc", np.zeros((4, 5, 6), np.float32)))
    with pytest.raises(InputError, match="img.mrc: is a 2D image"):
        read_volume(_write_raw(tmp_path / "img.mrc", np.zeros((5, 5), np.float32)))
    vol = _asym_volume(4)
    vol[1, 2, 3] = np.inf
    with pytest.raises(InputError, match="nan.mrc: 1 voxel values are NaN or infinite"):
        read_volume(_write_raw(tmp_path / "nan.mrc", vol))


def test_real_maps(data_file):
    vol, voxel = read_volume(data_file("maps/emd_1832.map"))
    assert vol.shape == (64, 64, 64) and voxel == pytest.approx(5.7)
    vol, voxel = read_volume(data_file("maps/ribosome70S_65.mrc"))
    assert vol.shape == (65, 65, 65) and voxel is None  # header says 0
    path = data_file("maps/EMD-3197.map")
    vol, voxel = read_volume(path)
    assert voxel == pytest.approx(11.4)
    with mrcfile.open(path) as m:
        np.testing.assert_array_equal(vol, m.data)


def test_real_betagal_map(data_file):
    vol, voxel = read_volume(data_file("betagal/betagal_3.54A.mrc"))
    assert vol.shape == (100, 100, 100) and voxel == pytest.approx(3.54)


# ------------------------------------------------------------------------------------ stacks


def test_open_stack_real_files_select_the_right_slice(data_file):
    path = data_file("particles/empiar_10076_7.mrc")
    stack = open_stack(path)
    assert isinstance(stack, np.memmap)
    assert stack.shape == (7, 320, 320)
    assert stack_shape(path) == (7, 320, 320)
    assert stack_voxel_size(path) is None  # header pixel size 0
    with mrcfile.open(path) as m:
        np.testing.assert_array_equal(stack[4], m.data[4])

    # relion31.mrcs has no 'MAP ' ID: read leniently, compare with mrcfile's permissive read.
    path = data_file("particles/relion31.mrcs")
    stack = open_stack(path)
    assert stack.shape == (5, 256, 256)
    assert stack_voxel_size(path) == 1.0  # placeholder, returned as is
    with pytest.warns(RuntimeWarning):
        with mrcfile.open(path, permissive=True) as m:
            np.testing.assert_array_equal(stack[3], m.data[3])
    assert not np.array_equal(stack[3], stack[2])


def test_open_stack_single_image_file(data_file):
    stack = open_stack(data_file("betagal/empiar10061_particles/000007.mrc"))
    assert stack.shape == (1, 384, 384)


def test_open_stack_is_memory_mapped_not_loaded(tmp_path):
    path = tmp_path / "s.mrcs"
    write_stack(path, np.zeros((3, 8, 8), np.float32), 1.0)
    stack = open_stack(path)
    assert isinstance(stack, np.memmap) and os.path.samefile(stack.filename, path)
    assert not stack.flags.writeable


def test_open_stack_errors(tmp_path):
    with pytest.raises(InputError, match="none.mrcs: file not found"):
        open_stack(tmp_path / "none.mrcs")
    with pytest.raises(InputError, match="rect.mrcs: images are not square"):
        open_stack(_write_raw(tmp_path / "rect.mrcs", np.zeros((2, 4, 6), np.float32)))


def test_stack_writer_chunks_header_and_stats(tmp_path):
    rng = np.random.default_rng(3)
    images = rng.normal(size=(7, 6, 6)).astype(np.float32)
    path = tmp_path / "out" / "p.mrcs"
    with StackWriter(path, 7, 6, 1.25) as w:
        w.write(4, images[4:])  # any order
        w.write(0, images[:3])
        w.write(3, images[3])  # a single [box, box] image
        assert not path.exists()  # only renamed on exit
    np.testing.assert_array_equal(open_stack(path), images)
    assert stack_voxel_size(path) == pytest.approx(1.25)
    with mrcfile.open(path) as m:
        assert int(m.header.ispg) == 0 and int(m.header.mode) == 2
        assert m.is_image_stack()
        assert float(m.header.dmin) == pytest.approx(images.min())
        assert float(m.header.dmax) == pytest.approx(images.max())
        assert float(m.header.dmean) == pytest.approx(images.mean(), abs=1e-5)
        assert float(m.header.rms) == pytest.approx(images.std(), rel=1e-4)
    assert _leftovers(path.parent) == []


def test_stack_writer_removes_temp_file_on_error(tmp_path):
    path = tmp_path / "p.mrcs"
    with pytest.raises(KeyError):
        with StackWriter(path, 3, 4, 1.0) as w:
            w.write(0, np.ones((3, 4, 4), np.float32))
            raise KeyError("boom")
    assert os.listdir(tmp_path) == []


def test_stack_writer_refuses_incomplete_stack(tmp_path):
    path = tmp_path / "p.mrcs"
    with pytest.raises(RuntimeError, match="never written"):
        with StackWriter(path, 3, 4, 1.0) as w:
            w.write(0, np.ones((2, 4, 4), np.float32))
    assert os.listdir(tmp_path) == []


def test_stack_writer_bad_writes(tmp_path):
    with StackWriter(tmp_path / "p.mrcs", 2, 4, 1.0) as w:
        with pytest.raises(IndexError):
            w.write(1, np.zeros((2, 4, 4), np.float32))
        with pytest.raises(ValueError):
            w.write(0, np.zeros((1, 5, 5), np.float32))
        w.write(0, np.zeros((2, 4, 4), np.float32))
    with pytest.raises(InputError, match="voxel size"):
        StackWriter(tmp_path / "q.mrcs", 2, 4, 0.0)


def test_write_stack_relion_style(tmp_path):
    images = np.arange(2 * 5 * 5, dtype=np.float32).reshape(2, 5, 5)
    path = tmp_path / "s.mrcs"
    write_stack(path, images, 2.5)
    assert mrcfile.validate(str(path), print_file=open(os.devnull, "w"))
    with mrcfile.open(path) as m:
        np.testing.assert_array_equal(m.data, images)
        assert m.voxel_size.x == pytest.approx(2.5)
