"""Tests for tfcryogan.io.ctf_table.read_ctf_table."""

import numpy as np
import pytest

from tfcryogan.errors import InputError
from tfcryogan.io import CTF_COLUMNS, read_ctf_table, read_star

NAMED = """# micrograph, number, DefocusU, DefocusV, angle, phase shift, score, resolution
m_0000.mrc     1.000000 7923.343262 7857.347168 65.937813 0.000000 0.069725 3.144489

m_0001.mrc     1.000000 8158.252930 8020.485352 -77.096286 1.570796 0.066004 3.158342
"""


def test_named_table(tmp_path):
    path = tmp_path / "ctf.txt"
    path.write_text(NAMED)
    rows = read_ctf_table(path, voltage_kv=300, cs_mm=2.7, amplitude_contrast=0.1)
    assert rows.dtype == np.float32 and rows.shape == (2, len(CTF_COLUMNS))
    np.testing.assert_allclose(rows[0], [7923.343262, 7857.347168, 65.937813, 300, 2.7, 0.1,
                                         0, 0, 1], rtol=1e-6)
    np.testing.assert_allclose(rows[1, :3], [8158.252930, 8020.485352, -77.096286], rtol=1e-6)
    np.testing.assert_allclose(rows[1, 6], 90.0, rtol=1e-5)  # CTFFIND radians -> degrees


def test_ctffind4_output(tmp_path):
    path = tmp_path / "diag.txt"
    path.write_text("# Output from CTFFind version 4.1.14\n"
                    "# Columns: #1 - micrograph number; #2 - defocus 1 [Angstroms]; ...\n"
                    "1.000000 12000.5 11800.25 45.0 0.0 0.12 3.5\n")
    rows = read_ctf_table(path, 200, 0.01, 0.07)
    np.testing.assert_allclose(rows, [[12000.5, 11800.25, 45.0, 200, 0.01, 0.07, 0, 0, 1]],
                               rtol=1e-6)


@pytest.mark.parametrize("line,message", [
    ("m.mrc 1.0 7000", "line 3: expected at least 5 columns"),
    ("m.mrc 1.0 7000 abc 12.0 0 0 3", "line 3: DefocusV 'abc' is not a finite number"),
    ("m.mrc 1.0 7000 nan 12.0 0 0 3", "line 3: DefocusV 'nan' is not a finite number"),
    ("m.mrc 1.0 -7000 6000 12.0 0 0 3", "line 3: negative defocus"),
])
def test_bad_rows_name_the_line(tmp_path, line, message):
    path = tmp_path / "ctf.txt"
    path.write_text(NAMED.splitlines()[0] + "\n" + NAMED.splitlines()[1] + "\n" + line + "\n")
    with pytest.raises(InputError) as err:
        read_ctf_table(path, 300, 2.7, 0.1)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


def test_needs_constants_and_rows(tmp_path):
    path = tmp_path / "ctf.txt"
    path.write_text(NAMED)
    with pytest.raises(InputError, match="ctf.txt: a CTFFIND-style table has no voltage"):
        read_ctf_table(path)
    with pytest.raises(InputError, match="amplitude contrast 1.5 is out of range"):
        read_ctf_table(path, 300, 2.7, 1.5)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    with pytest.raises(InputError, match="empty.txt: no CTF rows"):
        read_ctf_table(empty, 300, 2.7, 0.1)
    with pytest.raises(InputError, match="none.txt: file not found"):
        read_ctf_table(tmp_path / "none.txt", 300, 2.7, 0.1)


def test_real_empiar10061_table(data_file):
    rows = read_ctf_table(data_file("betagal/empiar10061_ctf_per_micrograph.txt"), 300, 2.7, 0.1)
    assert rows.shape == (1539, 9)
    np.testing.assert_allclose(rows[0, :3], [7923.343262, 7857.347168, 65.937813], rtol=1e-6)
    np.testing.assert_allclose(rows[-1, :3], [14943.262695, 14482.911133, 77.045128], rtol=1e-6)
    np.testing.assert_allclose(rows[:, 3:6], [[300, 2.7, 0.1]] * 1539, rtol=1e-6)
    assert (rows[:, 0] > 3000).all() and (rows[:, 0] < 40000).all()


def test_particle_files_use_their_own_ctf(data_file):
    star = data_file("betagal/empiar10061_particles/particles.star")
    rows = read_ctf_table(star, voltage_kv=120, cs_mm=0.0, amplitude_contrast=0.5)
    np.testing.assert_array_equal(rows, read_star(star).ctf_array())
    assert rows[0, 3] == 300  # the file's voltage, not the argument
    rows = read_ctf_table(data_file("particles/empiar_10076_7.cs"))
    assert rows.shape == (7, 9)
    np.testing.assert_allclose(rows[0, :6], [15301.1, 14916.4, 5.28, 300, 2.7, 0.07], rtol=1e-5)
