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

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN = os.path.join(ROOT, "bin", "train")
SMALL = ["--batch_size=8", "--n_critic=2", "--summary_every=2", "--lowpass_fraction=0.5"]


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
    star, _ = tiny_dataset
    out = tmp_path / "killed"
    cmd = [sys.executable, TRAIN, *SMALL, f"--particles={star}", f"--output_dir={out}",
           "--checkpoint_every=2", "--max_steps=400"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list((out / "checkpoints").glob("ckpt-*.index")):
        time.sleep(0.1)
    time.sleep(1.0)  # let it run on past the first checkpoint, then kill it mid-run
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


def test_bad_input_is_one_line(tiny_dataset, tmp_path):
    star, _ = tiny_dataset
    no_ctf = tmp_path / "noctf.star"
    no_ctf.write_text("data_\nloop_\n_rlnImageName\n_rlnImagePixelSize\n"
                      f"1@{star.with_suffix('.mrcs')} 6.0\n")
    cases = [
        ([f"--particles={tmp_path / 'missing.star'}"], "missing.star"),
        ([f"--particles={no_ctf}"], "noctf.star"),
        ([f"--particles={star}", "--box=64"], "--box=64"),
        ([f"--particles={star}", "--symmetry=X9"], "--symmetry=X9"),
        ([f"--particles={star}", "--max_steps=0"], "--max_steps=0"),
        ([f"--particles={star}", "--latent_dim=2", "--coefficient_map=linear", "--n_basis=3"],
         "--n_basis=3"),
        ([f"--particles={star}", "--critic_batch_statistics=-2"], "--critic_batch_statistics=-2"),
        ([f"--particles={star}", "--basis_decay=-1"], "--basis_decay=-1"),
        ([f"--particles={star}", "--basis_warmup=2"], "--basis_warmup=2"),
        ([f"--particles={star}", f"--ground_truth={tmp_path / 'nope.mrc'}"], "nope.mrc"),
    ]
    for flags, expected in cases:
        steps = [] if any(f.startswith("--max_steps") for f in flags) else ["--max_steps=2"]
        done = train(*flags, *steps, f"--output_dir={tmp_path / 'bad'}")
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2, (flags, done.stderr)
        assert lines and lines[-1].startswith("error: ") and expected in lines[-1], \
            (flags, done.stderr)
        assert "Traceback" not in done.stderr


def test_mixed_precision_runs(tiny_dataset, tmp_path):
    star, _ = tiny_dataset
    out = tmp_path / "mp"
    done = train(f"--particles={star}", f"--output_dir={out}", "--max_steps=3",
                 "--checkpoint_every=3", "--mixed_precision")
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((out / "run.json").read_text())
    assert record["step"] == 3 and record["settings"]["mixed_precision"]
    assert all(np.isfinite(v) for v in record["figures"].values())
