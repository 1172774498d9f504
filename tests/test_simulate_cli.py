"""bin/simulate end to end: outputs, heterogeneous data, noise models, and clean errors."""

import json
import os
import subprocess
import sys

import mrcfile
import numpy as np
import pytest

from tfcryogan import io
from tfcryogan.phantoms import phantom
from tfcryogan.physics import projector

# End-to-end runs of bin/ commands in subprocesses: deselect with -m "not slow".
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def simulate(*args, cwd=None):
    return subprocess.run([sys.executable, os.path.join(ROOT, "bin", "simulate"), *args],
                          capture_output=True, text=True, cwd=cwd, check=False)


@pytest.fixture
def small_map(tmp_path):
    path = tmp_path / "map.mrc"
    io.write_volume(path, phantom(24), 4.0)
    return path


def write_frames(folder, count):
    """``count`` different 16^3 phantoms, 5 A/voxel, as ``folder/frame<i>.mrc``; returns folder."""
    for i in range(count):
        io.write_volume(folder / f"frame{i}.mrc", phantom(16, seed=i), 5.0)
    return folder


def test_outputs_metadata_and_snr(tmp_path, small_map):
    out = tmp_path / "sim" / "particles.star"
    done = simulate(f"--volume={small_map}", "--n_particles=300", "--snr_db=-5",
                    "--shift_std_A=4", "--astigmatism_A=800", "--bfactor=30", "--seed=7",
                    f"--output={out}")
    assert done.returncode == 0, done.stderr
    assert str(out) in done.stdout and "Traceback" not in done.stderr
    table = io.read_star(out, check_images=True)
    assert len(table) == 300 and table.has_poses and table.has_ctf
    assert np.allclose(table.pixel_size, 4.0) and (table.box == 24).all()
    assert 3.3 < np.std(table.origin_x) < 4.7  # --shift_std_A=4
    assert np.all(table.defocus_u - table.defocus_v <= 800 + 1e-3)
    with mrcfile.open(out.with_suffix(".mrcs"), permissive=False) as m:
        assert m.data.shape == (300, 24, 24)
        assert abs(float(m.voxel_size.x) - 4.0) < 1e-5
        images = np.array(m.data)
    record = json.loads(out.with_suffix(".json").read_text())
    # The noise actually added has the recorded sigma, and the SNR is -5 dB by the box definition:
    # total variance = signal + noise variance.
    signal = np.var(images, axis=(1, 2)).mean() - record["sigma"] ** 2
    assert abs(10 * np.log10(signal / record["sigma"] ** 2) + 5.0) < 0.5
    # The same seed gives the same data set.
    again = tmp_path / "again" / "p.star"
    assert simulate(f"--volume={small_map}", "--n_particles=300", "--snr_db=-5", "--shift_std_A=4",
                    "--astigmatism_A=800", "--bfactor=30", "--seed=7",
                    f"--output={again}").returncode == 0
    np.testing.assert_array_equal(mrcfile.read(again.with_suffix(".mrcs")), images)


def test_heterogeneous_maps_from_folder(tmp_path):
    folder = write_frames(tmp_path / "frames", 3)
    out = tmp_path / "het.star"
    done = simulate(f"--volume={folder}", "--n_particles=90", "--noise=none", "--noctf",
                    f"--output={out}")
    assert done.returncode == 0, done.stderr
    table = io.read_star(out, require_ctf=False)
    assert set(table.class_number) == {1, 2, 3}
    assert not table.has_ctf
    # Each image is the projection of the map its class number names.
    record = json.loads(out.with_suffix(".json").read_text())
    assert [os.path.basename(m) for m in record["maps"]] == ["frame0.mrc", "frame1.mrc",
                                                             "frame2.mrc"]
    images = mrcfile.read(out.with_suffix(".mrcs"))
    # An image's sum is its zero frequency: the map's (gridding-corrected) zero frequency, the
    # same at every pose, and different for each map.
    sums = images.reshape(90, -1).sum(axis=1)
    dc = [float(np.real(projector.volume_spectrum(phantom(16, seed=i))[0, 0, 0, 0]))
          for i in range(3)]
    assert min(abs(a - b) for a in dc for b in dc if a != b) > 0.01 * max(dc)
    np.testing.assert_allclose(sums, np.array(dc)[table.class_number - 1], rtol=1e-3)


def test_class_fractions(tmp_path):
    folder = write_frames(tmp_path / "frames", 3)
    out = tmp_path / "mix.star"
    done = simulate(f"--volume={folder}", "--n_particles=2000", "--noise=none", "--noctf",
                    "--class_fractions=3,0,7", f"--output={out}")
    assert done.returncode == 0, done.stderr
    classes = io.read_star(out, require_ctf=False).class_number
    # Shares in the maps' (file name) order, normalised: 0.3, none, 0.7 (binomial sd 0.010).
    assert not (classes == 2).any()
    assert abs(np.mean(classes == 1) - 0.3) < 0.04
    assert set(classes) == {1, 3}
    record = json.loads(out.with_suffix(".json").read_text())
    np.testing.assert_allclose(record["class_fractions"], [0.3, 0.0, 0.7])


@pytest.mark.parametrize("kind", ["colored", "patches"])
def test_noise_from_real_particles(tmp_path, small_map, data_file, kind):
    star = data_file("particles/relion31.star")
    out = tmp_path / f"{kind}.star"
    done = simulate(f"--volume={small_map}", "--n_particles=40", f"--noise={kind}",
                    f"--noise_from={star}", "--snr_db=-10", f"--output={out}")
    assert done.returncode == 0, done.stderr
    images = mrcfile.read(out.with_suffix(".mrcs"))
    assert images.shape == (40, 24, 24) and np.isfinite(images).all()
    # Real noise is correlated between neighbouring pixels (unlike white noise).
    centred = images - images.mean(axis=(1, 2), keepdims=True)
    lag1 = np.mean(centred[:, :, 1:] * centred[:, :, :-1]) / np.mean(centred ** 2)
    assert lag1 > 0.1


def test_atomic_model(tmp_path, data_file):
    model = data_file("adk/adk_closed.pdb")
    out = tmp_path / "adk.star"
    done = simulate(f"--atomic_model={model}", "--box=40", "--pixel_size=2", "--n_particles=20",
                    "--model_resolution=5", "--noise=none", f"--output={out}")
    assert done.returncode == 0, done.stderr
    images = mrcfile.read(out.with_suffix(".mrcs"))
    assert images.shape == (20, 40, 40) and images.std() > 0


def bad_inputs(tmp_path, small_map):
    """(flags, text expected in the one-line error)."""
    truncated = tmp_path / "truncated.mrc"
    truncated.write_bytes(small_map.read_bytes()[:2000])
    flat = tmp_path / "flat.mrc"
    with mrcfile.new(flat) as m:
        m.set_data(np.zeros((8, 16, 16), np.float32))
        m.voxel_size = 2.0
    nan_map = tmp_path / "nan.mrc"
    vol = phantom(16)
    vol[3, 3, 3] = np.nan
    with mrcfile.new(nan_map) as m:
        m.set_data(vol)
        m.voxel_size = 2.0
    no_ctf = tmp_path / "noctf.star"
    no_ctf.write_text("data_\nloop_\n_rlnImageName\n_rlnAngleRot\n1@x.mrcs 1.0\n")
    bad_index = tmp_path / "badindex.star"
    bad_index.write_text("data_\nloop_\n_rlnImageName\n_rlnAngleRot\n_rlnAngleTilt\n"
                         "_rlnAnglePsi\n_rlnImagePixelSize\n0@x.mrcs 1 2 3 4.0\n")
    nan_noise = tmp_path / "nan_noise.mrcs"
    noise = np.random.default_rng(0).normal(size=(5, 64, 64)).astype(np.float32)
    noise[1, 4, 4] = np.inf
    with mrcfile.new(nan_noise) as m:
        m.set_data(noise)
        m.voxel_size = 2.0
    nan_star = tmp_path / "nanstar.star"
    nan_star.write_text("data_\nloop_\n_rlnImageName\n_rlnAngleRot\n_rlnAngleTilt\n"
                        "_rlnAnglePsi\n_rlnImagePixelSize\n1@x.mrcs nan 2 3 4.0\n")
    return [
        ([f"--volume={tmp_path / 'missing.mrc'}"], "missing.mrc"),
        ([f"--volume={truncated}"], "truncated.mrc"),
        ([f"--volume={flat}"], "flat.mrc"),
        ([f"--volume={nan_map}"], "nan.mrc"),
        ([f"--volume={small_map}", f"--poses_from={no_ctf}"], "noctf.star"),
        ([f"--volume={small_map}", f"--poses_from={bad_index}"], "badindex.star"),
        ([f"--volume={small_map}", f"--poses_from={nan_star}"], "nanstar.star"),
        ([f"--volume={small_map}", "--n_particles=-5"], "n_particles"),
        ([f"--volume={small_map}", "--noise=colored"], "noise_from"),
        ([f"--volume={small_map}", "--noise=patches", f"--noise_from={nan_noise}"],
         "nan_noise.mrcs: image 2 holds NaN or inf"),
        ([f"--volume={small_map}", f"--ctf_from={tmp_path / 'nope.txt'}"], "nope.txt"),
        ([f"--volume={small_map}", "--class_fractions=0.3,0.7"], "2 numbers for 1 map"),
        ([f"--volume={small_map}", "--class_fractions=lots"], "give numbers"),
        ([f"--volume={small_map}", "--class_fractions=0"], "not all 0"),
        ([f"--volume={small_map}", f"--poses_from={nan_star}", "--class_fractions=1"],
         "rlnClassNumber chooses"),
    ]


def test_bad_input_gives_one_line_errors_and_no_output(tmp_path, small_map):
    for flags, expected in bad_inputs(tmp_path, small_map):
        out = tmp_path / "out" / "p.star"
        done = simulate(*flags, f"--output={out}")
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2, (flags, done.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], \
            (flags, done.stderr)
        assert not out.parent.exists() or not any(out.parent.iterdir()), flags
