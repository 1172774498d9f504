"""bin/train end to end: outputs, resume, SIGKILL recovery, bad input."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import mrcfile
import numpy as np
import pytest

# End-to-end runs of bin/ commands in subprocesses: deselect with -m "not slow".
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN = os.path.join(ROOT, "bin", "train")
SMALL = ["--batch_size=8", "--n_critic=2"]


def train(*args):
    return subprocess.run([sys.executable, TRAIN, *SMALL, *args], capture_output=True, text=True,
                          check=False)


def test_outputs_and_resume(tiny_dataset, tmp_path):
    star, truth = tiny_dataset
    out = tmp_path / "run"
    common = [f"--particles={star}", f"--output_dir={out}", "--checkpoint_every=3",
              f"--ground_truth={truth}"]
    first = train(*common, "--max_steps=6")
    assert first.returncode == 0, first.stderr
    assert "resumed" not in first.stderr
    for name in ("volume.mrc", "run.json", "fsc.csv", "fsc.png"):
        assert (out / name).exists(), name
    with mrcfile.open(out / "volume.mrc", permissive=False) as m:
        assert m.data.shape == (16, 16, 16) and abs(float(m.voxel_size.x) - 6.0) < 1e-4
    record = json.loads((out / "run.json").read_text())
    assert record["step"] == 6 and record["finished"]
    assert "resolution_0.5_A" in record["fsc"]
    assert str(out / "volume.mrc") in first.stdout  # the last lines say what was written where
    assert list((out / "logs").iterdir())  # TensorBoard events
    second = train(*common, "--max_steps=9")
    assert second.returncode == 0, second.stderr
    assert "resumed from step 6" in second.stderr
    assert json.loads((out / "run.json").read_text())["step"] == 9


def test_sigkill_then_same_command_resumes(tiny_dataset, tmp_path):
    """Killed (SIGKILL) the moment its second checkpoint appears, whatever the machine's speed,
    the run resumes from its last complete checkpoint with the same command."""
    star, _ = tiny_dataset
    out = tmp_path / "killed"
    cmd = [sys.executable, TRAIN, *SMALL, f"--particles={star}", f"--output_dir={out}",
           "--checkpoint_every=2", "--max_steps=400"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and \
            not (out / "checkpoints" / "ckpt-4.index").exists():
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before its second checkpoint"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = sorted(int(p.name[5:-6]) for p in (out / "checkpoints").glob("ckpt-*.index"))
    assert saved, "no checkpoint before the kill"
    # The last complete checkpoint is the one the state file names: the kill may land after a
    # checkpoint's files are written but before the state file records it (then the previous
    # one is the right place to resume).
    state = (out / "checkpoints" / "checkpoint").read_text()
    last = int(re.search(r'^model_checkpoint_path: "ckpt-(\d+)"', state, re.M).group(1))
    assert last in saved and last >= saved[-1] - 2
    target = saved[-1] + 6
    done = train(f"--particles={star}", f"--output_dir={out}", "--checkpoint_every=2",
                 f"--max_steps={target}")
    assert done.returncode == 0, done.stderr
    assert f"resumed from step {last}" in done.stderr
    record = json.loads((out / "run.json").read_text())
    assert record["step"] == target and record["finished"]
    with mrcfile.open(out / "volume.mrc", permissive=False) as m:
        assert np.isfinite(m.data).all()


def with_bad_image(star, folder, index, value=np.nan):
    """A copy of the particle set ``star`` in ``folder`` whose image ``index`` (0-based) holds
    ``value`` in one pixel; returns ``(star, stack)`` of the copy."""
    folder.mkdir(parents=True, exist_ok=True)
    stack = folder / "particles.mrcs"
    with mrcfile.open(star.with_suffix(".mrcs"), permissive=True) as m:
        data, voxel = m.data.copy(), m.voxel_size.copy()
    data[index, 3, 5] = value
    with mrcfile.new(stack, overwrite=True) as m:
        m.set_data(data)
        m.voxel_size = voxel
    copy = folder / "particles.star"
    copy.write_text(star.read_text().replace(str(star.with_suffix(".mrcs")), str(stack)))
    return copy, stack


def assert_one_line_error(done, expected):
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert lines and lines[-1].startswith("error: ") and expected in lines[-1], done.stderr
    assert "Traceback" not in done.stderr


def test_bad_input_is_one_line(tiny_dataset, tmp_path):
    star, _ = tiny_dataset
    no_ctf = tmp_path / "noctf.star"
    no_ctf.write_text("data_\nloop_\n_rlnImageName\n_rlnImagePixelSize\n"
                      f"1@{star.with_suffix('.mrcs')} 6.0\n")
    nan_map = tmp_path / "nan.mrc"
    volume = np.ones((16, 16, 16), np.float32)
    volume[2, 3, 4] = np.inf
    with mrcfile.new(nan_map) as m:
        m.set_data(volume)
        m.voxel_size = 6.0
    _, bad_noise = with_bad_image(star, tmp_path / "noise", 11)
    cases = [
        ([f"--particles={tmp_path / 'missing.star'}"], "missing.star"),
        ([f"--particles={no_ctf}"], "noctf.star"),
        ([f"--particles={star}", "--box=64"], "--box=64"),
        ([f"--particles={star}", "--symmetry=X9"], "--symmetry=X9"),
        ([f"--particles={star}", "--max_steps=0"], "--max_steps=0"),
        ([f"--particles={star}", "--noise=none"], "--noise=none"),
        ([f"--particles={star}", "--noise=patches"], "--noise_from"),
        ([f"--particles={star}", f"--ground_truth={tmp_path / 'nope.mrc'}"], "nope.mrc"),
        ([f"--particles={star}", f"--initial_volume={nan_map}"], "nan.mrc"),
        ([f"--particles={star}", "--noise=patches", f"--noise_from={bad_noise}"],
         f"{bad_noise}: image 12 holds NaN or inf"),
    ]
    for flags, expected in cases:
        steps = [] if any(f.startswith("--max_steps") for f in flags) else ["--max_steps=2"]
        assert_one_line_error(train(*flags, *steps, f"--output_dir={tmp_path / 'bad'}"),
                              expected)


def test_nonfinite_particle_images_stop_before_training_or_are_skipped(tiny_dataset, tmp_path):
    """A stack with one NaN image: a one-line error naming the stack and the image number before
    any training step; with --skip_nonfinite the run trains without it and says how many it
    skipped."""
    star, _ = tiny_dataset
    bad_star, stack = with_bad_image(star, tmp_path / "data", 6)
    stopped = train(f"--particles={bad_star}", f"--output_dir={tmp_path / 'stop'}",
                    "--max_steps=2")
    assert_one_line_error(stopped, f"{stack}: image 7 holds NaN or inf values")
    assert "train [" not in stopped.stderr
    skipped = train(f"--particles={bad_star}", f"--output_dir={tmp_path / 'skip'}",
                    "--max_steps=2", "--checkpoint_every=2", "--skip_nonfinite")
    assert skipped.returncode == 0, skipped.stderr
    assert "skipping 1 of 400 particles" in skipped.stderr
    record = json.loads((tmp_path / "skip" / "run.json").read_text())
    assert record["n_particles"] == 399
    assert all(np.isfinite(v) for v in record["figures"].values())


def test_mixed_precision_runs(tiny_dataset, tmp_path):
    star, _ = tiny_dataset
    out = tmp_path / "mp"
    done = train(f"--particles={star}", f"--output_dir={out}", "--max_steps=3",
                 "--checkpoint_every=3", "--mixed_precision")
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((out / "run.json").read_text())
    assert record["step"] == 3 and record["settings"]["mixed_precision"]
    assert all(np.isfinite(v) for v in record["figures"].values())
