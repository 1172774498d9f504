"""bin/evaluate end to end: outputs and printed figures, resampling, precision/recall, bad input."""

import csv
import json
import os
import re
import subprocess
import sys

import mrcfile
import numpy as np
import pytest

from tfcryogan import io
from tfcryogan.evaluation import align as al
from tfcryogan.phantoms import phantom
from tfcryogan.physics import fourier, rotations

# End-to-end runs of bin/ commands in subprocesses: deselect with -m "not slow".
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def evaluate(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, os.path.join(ROOT, "bin", "evaluate"), *args],
                          capture_output=True, text=True, check=False, env=env)


def moved(seed, n, matrix, shift, lowpass=None):
    """Phantom ``seed`` rotated/shifted at 2x, then brought to box ``n``."""
    big = al.rotate_volume(phantom(2 * n, seed=seed), matrix, 2 * np.asarray(shift))
    if lowpass is not None:  # cycles per box of the 2x map
        big = fourier.gaussian_lowpass(big, lowpass, 3)
    return fourier.fourier_crop(big, n, 3).numpy()


@pytest.fixture
def maps(tmp_path):
    n = 20
    truth = fourier.fourier_crop(phantom(2 * n), n, 3).numpy()
    rotation = rotations.euler_to_matrix(70.0, 40.0, -20.0).numpy()
    vol = moved(0, n, rotation @ al.MIRROR, [1.0, -2.0, 1.5], lowpass=n / 5)
    io.write_volume(tmp_path / "truth.mrc", truth, 4.0)
    io.write_volume(tmp_path / "map.mrc", vol, 4.0)
    return tmp_path


def test_single_map_outputs_and_printed_resolutions(maps):
    out = maps / "eval"
    done = evaluate(f"--map={maps / 'map.mrc'}", f"--reference={maps / 'truth.mrc'}",
                    f"--output_dir={out}", "--n_rotations=1500")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    for name in ("fsc.csv", "fsc.png", "aligned.mrc", "evaluation.json"):
        assert (out / name).is_file() and str(out / name) in done.stdout
    record = json.loads((out / "evaluation.json").read_text())
    assert record["alignment"]["flipped"] is True and "mirrored" in done.stdout
    assert record["alignment"]["correlation"] > 0.9
    for t in ("0.5", "0.143"):
        res = record["resolution"][t]
        # Printed as "resolution at FSC 0.5: 9.12 A (0.877 of Nyquist, 8 A)".
        m = re.search(rf"resolution at FSC {t}: ([0-9.]+) A \(([0-9.]+) of Nyquist", done.stdout)
        assert m, done.stdout
        assert float(m.group(1)) == pytest.approx(res["angstrom"], abs=0.01)
        assert float(m.group(2)) == pytest.approx(res["fraction_of_nyquist"], abs=0.001)
        assert res["angstrom"] < 14.0  # a low-passed copy of the truth: near Nyquist (8 A)
        assert record["resolution_unaligned"][t]["angstrom"] > 2 * res["angstrom"]
    with mrcfile.open(out / "aligned.mrc") as m:
        assert m.data.shape == (20, 20, 20) and float(m.voxel_size.x) == pytest.approx(4.0)
    rows = list(csv.reader((out / "fsc.csv").open()))
    assert rows[0] == ["shell", "frequency_per_A", "resolution_A", "fsc", "fsc_unaligned"]
    assert len(rows) == 20 // 2 + 2
    assert (out / "fsc.png").read_bytes()[:4] == b"\x89PNG"


def test_other_voxel_size_is_resampled_without_alignment(maps, tmp_path):
    truth, _ = io.read_volume(maps / "truth.mrc")
    finer = fourier.resample_volume(truth, 4.0, 3.0, 32).numpy()
    io.write_volume(tmp_path / "fine.mrc", finer, 3.0)
    out = tmp_path / "e2"
    done = evaluate(f"--map={tmp_path / 'fine.mrc'}", f"--reference={maps / 'truth.mrc'}",
                    f"--output_dir={out}", "--noalign", "--mask_radius_A=40")
    assert done.returncode == 0, done.stderr
    assert "resampled from 32^3 voxels of 3 A" in done.stdout
    record = json.loads((out / "evaluation.json").read_text())
    assert record["alignment"] is None and record["mask"]["radius_A"] == 40.0
    assert record["resolution"]["0.5"]["fraction_of_nyquist"] > 0.95  # the same map back
    assert len(record["notes"]) == 1


def test_precision_recall_mode(tmp_path):
    n = 20
    refs, gen = tmp_path / "refs", tmp_path / "gen"
    for s in range(2):
        io.write_volume(refs / f"conf{s}.mrc",
                        fourier.fourier_crop(phantom(2 * n, seed=s), n, 3).numpy(), 5.0)
    rotation = rotations.euler_to_matrix(10.0, 80.0, 30.0).numpy()
    io.write_volume(gen / "a.mrc", moved(1, n, rotation, [1.0, 0.0, -1.0], lowpass=n / 5), 5.0)
    noise = np.random.default_rng(0).normal(size=(n,) * 3).astype(np.float32)
    io.write_volume(gen / "b.mrc", fourier.gaussian_lowpass(noise, 2.0, 3).numpy(), 5.0)
    out = tmp_path / "pr"
    done = evaluate(f"--map={gen}", f"--references={refs}", f"--output_dir={out}",
                    "--threshold_A=15", "--n_rotations=800")
    assert done.returncode == 0, done.stderr
    record = json.loads((out / "evaluation.json").read_text())
    matrix = np.array(record["resolution_matrix_A"])  # maps a, b x references conf0, conf1
    assert matrix.shape == (2, 2) and matrix[0, 1] < 15.0 and matrix[1].min() > 15.0
    assert [r["best_map"] for r in record["per_reference"]] == ["a", "a"]
    assert record["per_reference"][1]["matched"] and not record["per_map"][1]["matched"]
    assert record["precision"] == 0.5
    assert "precision 0.500" in done.stdout
    for name in ("resolution_matrix.csv", "precision_recall.csv", "precision_recall.png",
                 "fsc.csv", "fsc.png"):
        assert (out / name).is_file()


@pytest.mark.parametrize("case", ["missing", "boxes", "nonfinite"])
def test_bad_input_is_one_line_error(maps, case):
    if case == "missing":
        args = [f"--map={maps / 'nothing.mrc'}", f"--reference={maps / 'truth.mrc'}"]
        expected = "nothing.mrc: file not found"
    elif case == "nonfinite":
        volume, _ = io.read_volume(maps / "map.mrc")
        volume[4, 5, 6] = np.nan
        with mrcfile.new(maps / "nan.mrc") as m:
            m.set_data(volume)
            m.voxel_size = 4.0
        args = [f"--map={maps / 'nan.mrc'}", f"--reference={maps / 'truth.mrc'}"]
        expected = "nan.mrc"
    else:
        io.write_volume(maps / "small.mrc", phantom(16), 4.0)
        args = [f"--map={maps / 'small.mrc'}", f"--reference={maps / 'truth.mrc'}"]
        expected = "box 16 differs"
    done = evaluate(*args, f"--output_dir={maps / 'bad'}")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0]
    assert not (maps / "bad").exists()
