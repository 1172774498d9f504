"""Tests for tfcryogan.io.read_particles (dispatch by extension) and the package exports."""

import pytest

import tfcryogan.io as tio
from tfcryogan.errors import InputError


def test_dispatch(data_file):
    assert len(tio.read_particles(data_file("particles/relion31.star"))) == 5
    t = tio.read_particles(data_file("particles/empiar_10076_7.cs"), check_images=True,
                           require_ctf=False, pixel_size=None)
    assert len(t) == 7 and t.source.endswith(".cs")
    assert len(tio.read_particles(data_file("particles/empiar_10076_7.cs"), pixel_size=1.31)) == 7
    with pytest.raises(InputError, match="empiar_10076_7.cs: pixel size 1.31 A in the file"):
        tio.read_particles(data_file("particles/empiar_10076_7.cs"), pixel_size=1.5)


def test_unsupported_extension(tmp_path):
    path = tmp_path / "particles.txt"
    path.write_text("x")
    with pytest.raises(InputError) as err:
        tio.read_particles(path)
    assert str(err.value) == (f"{path}: unsupported particle file type '.txt' "
                              "(supported: .star, .cs)")


def test_public_api_and_no_tensorflow():
    for name in tio.__all__:
        assert getattr(tio, name).__doc__, name
    import sys
    import subprocess
    code = ("import sys, tfcryogan.io; "
            "sys.exit(1 if any(m == 'tensorflow' or m.startswith('tensorflow.') "
            "for m in sys.modules) else 0)")
    from pathlib import Path
    root = Path(tio.__file__).resolve().parents[2]
    assert subprocess.run([sys.executable, "-c", code], cwd=root).returncode == 0
