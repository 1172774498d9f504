"""Two MultiWorkerMirroredStrategy workers on 127.0.0.1 make the same step as one process with the
same global batch."""

import json
import os
import socket
import subprocess
import sys

import pytest

import mirrored_run  # tests/training/mirrored_run.py (on sys.path: this folder)

# End-to-end runs of bin/ commands in subprocesses: deselect with -m "not slow".
pytestmark = pytest.mark.slow

HERE = os.path.dirname(os.path.abspath(__file__))


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def run_two_workers(command):
    """Run ``command`` as workers 0 and 1 of a two-worker cluster on 127.0.0.1 (each with its
    ``TF_CONFIG``); asserts both succeed and returns their ``(stdout, stderr)``."""
    workers = [f"127.0.0.1:{p}" for p in free_ports(2)]
    procs = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen([sys.executable, *command], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    return outputs


def test_two_workers_equal_one_process(tiny_dataset, tmp_path):
    star, _ = tiny_dataset
    script = os.path.join(HERE, "mirrored_run.py")
    one = subprocess.run([sys.executable, script, str(star), str(tmp_path / "one"), "1"],
                         capture_output=True, text=True, check=False)
    assert one.returncode == 0, one.stderr[-2000:]
    outputs = run_two_workers([script, str(star), str(tmp_path / "multi"), "1", "multiworker"])
    assert "MultiWorkerMirroredStrategy, worker 0 of 2" in outputs[0][0]
    # Tolerances: the mirrored test's (the summation order differs across workers).
    mirrored_run.assert_same_step(tmp_path / "multi", tmp_path / "one")


def test_restarted_workers_resume_from_the_chiefs_checkpoint(tiny_dataset, tmp_path):
    """bin/train --strategy=multiworker: both workers stop at --max_steps; the same command with
    more steps makes every worker resume from the chief's last checkpoint."""
    star, _ = tiny_dataset
    train = os.path.join(os.path.dirname(os.path.dirname(HERE)), "bin", "train")
    out = tmp_path / "run"

    def launch(max_steps):
        outputs = run_two_workers(
            [train, f"--particles={star}", f"--output_dir={out}", "--strategy=multiworker",
             "--batch_size=8", "--n_critic=2", "--checkpoint_every=1",
             f"--max_steps={max_steps}"])
        return [err for _, err in outputs]

    launch(2)
    assert json.loads((out / "run.json").read_text())["step"] == 2
    logs = launch(4)
    for err in logs:
        assert "resumed from step 2" in err, err[-2000:]
    assert json.loads((out / "run.json").read_text())["step"] == 4
    # Only the chief's checkpoints are in the run folder.
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("checkpoints")) == \
        ["checkpoints"]
