"""ImageSource reads exactly the images the metadata names, with pread (no memory maps)."""

import mrcfile
import numpy as np
import pytest

from tfcryogan import io
from tfcryogan.errors import InputError
from tfcryogan.io.image_source import ImageSource


def test_stack_images_match_mrcfile(data_file):
    table = io.read_star(data_file("particles/relion31.star"))
    src = ImageSource(table)
    order = np.array([4, 0, 2, 2])
    got = src.read(order)
    stack = mrcfile.read(data_file("particles/relion31.mrcs"))
    np.testing.assert_array_equal(got, stack[table.image_index[order]].astype(np.float32))


def test_one_file_per_particle(data_file):
    table = io.read_star(data_file("betagal/empiar10061_particles/particles.star"))
    src = ImageSource(table, max_open=4)  # more files than handles: LRU closing
    rows = np.arange(len(table))[::-1]
    got = src.read(rows)
    for r, image in zip(rows[:6], got[:6]):
        want = mrcfile.read(table.image_path[r]).astype(np.float32).reshape(image.shape)
        np.testing.assert_array_equal(image, want)
    assert len(src._open) <= 4  # pylint: disable=protected-access


def test_index_beyond_stack(tmp_path):
    io.write_stack(tmp_path / "s.mrcs", np.zeros((2, 8, 8), np.float32), 1.0)
    table = io.ParticleTable(image_path=[str(tmp_path / "s.mrcs")] * 3, image_index=[0, 1, 5],
                             pixel_size=1.0)
    with pytest.raises(InputError, match="s.mrcs"):
        ImageSource(table).read([2])
