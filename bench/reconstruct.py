#!/usr/bin/env python3
"""Pose-free CryoGAN against the true-pose limit on RELION-made data.

1. Data (made once in --work): ``relion_project`` projects a real map at box 64 (default: the
   beta-galactosidase experimental map, Fourier-resampled to 64 voxels; or --map) at uniform random
   poses with small shifts (--shift_px, per axis) and CTFs drawn from the EMPIAR-10061 micrograph
   table, then adds white noise at --snr_db (``var(clean CTF images over the box) / var(noise)``).
2. ``bin/train --max_minutes=M`` reconstructs without poses.
3. ``relion_reconstruct --ctf`` reconstructs the same particles with their true poses (the limit).
4. Both maps are compared with the truth (FSC after alignment for ours; the true-pose map is
   already in the truth's frame) and printed side by side.

  python bench/reconstruct.py [--minutes=40] [--n=20000] [--snr_db=-10] [--work=/tmp/bench_rec]
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SHARED = os.path.join(ROOT, "..", "shared", "data")
#: The experimental beta-galactosidase map the benches project (resampled to the bench's box).
DEFAULT_MAP = os.path.join(SHARED, "betagal", "betagal_3.54A.mrc")


def start(*programs):
    """A RELION bench's start: exit with the install hint when one of ``programs`` (e.g.
    ``relion_refine``) is missing, then import TensorFlow without its start-up noise."""
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        sys.exit(f"{', '.join(missing)} not found: apt-get install relion")
    from tfcryogan import cli
    cli.import_tensorflow_quietly()


def run_for(cmd, minutes, log_path, cwd=None, env=None):
    """Run ``cmd`` (output to ``log_path``) for at most ``minutes``, then SIGTERM its process
    group (a peer that does not stop on its own); returns the minutes it ran."""
    t0 = time.time()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            proc.wait(timeout=minutes * 60.0)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
    return (time.time() - t0) / 60.0


def prepare(work, map_path, box, n, snr_db, shift_px, seed):
    """Make truth.mrc, poses.star and the noisy particles (RELION) in ``work``; returns paths."""
    import mrcfile
    import pandas as pd
    import starfile

    from tfcryogan import io
    from tfcryogan.physics import fourier

    star = os.path.join(work, "particles.star")
    truth_path = os.path.join(work, "truth.mrc")
    if os.path.exists(star) and os.path.exists(truth_path):
        return star, truth_path
    os.makedirs(work, exist_ok=True)
    vol, voxel = io.read_volume(map_path)
    voxel = voxel or 5.0
    pixel = voxel * vol.shape[0] / box
    truth = fourier.resample_volume(vol, voxel, pixel, box).numpy()
    truth = np.maximum(truth, 0.0)  # a density: drop the negative halo of the experimental map
    io.write_volume(truth_path, truth, pixel)

    rng = np.random.default_rng(seed)
    table = io.read_ctf_table(os.path.join(SHARED, "betagal", "empiar10061_ctf_per_micrograph.txt"),
                              300.0, 2.7, 0.1)
    rows = table[rng.integers(0, len(table), n)]
    optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnOpticsGroupName": ["opticsGroup1"],
                           "rlnVoltage": [300.0], "rlnSphericalAberration": [2.7],
                           "rlnAmplitudeContrast": [0.1], "rlnImagePixelSize": [pixel],
                           "rlnImageSize": [box], "rlnImageDimensionality": [2]})
    parts = pd.DataFrame({
        "rlnImageName": [f"{i + 1:06d}@x.mrcs" for i in range(n)],
        "rlnAngleRot": rng.uniform(-180, 180, n),
        "rlnAngleTilt": np.degrees(np.arccos(rng.uniform(-1, 1, n))),
        "rlnAnglePsi": rng.uniform(-180, 180, n),
        "rlnOriginXAngst": rng.normal(0, shift_px * pixel, n),
        "rlnOriginYAngst": rng.normal(0, shift_px * pixel, n),
        "rlnDefocusU": rows[:, 0], "rlnDefocusV": rows[:, 1], "rlnDefocusAngle": rows[:, 2],
        "rlnOpticsGroup": np.ones(n, int)})
    starfile.write({"optics": optics, "particles": parts}, os.path.join(work, "poses.star"),
                   overwrite=True)
    # Clean projections first, to set the noise level by the SNR definition.
    subprocess.run(["relion_project", "--i", "truth.mrc", "--o", "clean", "--ang", "poses.star",
                    "--ctf", "--angpix", str(pixel)], cwd=work, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    clean = mrcfile.mmap(os.path.join(work, "clean.mrcs"), permissive=True).data
    signal_var = float(np.mean(np.var(clean[:2000], axis=(1, 2))))
    sigma = float(np.sqrt(signal_var / 10 ** (snr_db / 10)))
    subprocess.run(["relion_project", "--i", "truth.mrc", "--o", "particles", "--ang",
                    "poses.star", "--ctf", "--angpix", str(pixel), "--add_noise",
                    "--white_noise", str(sigma)], cwd=work, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.remove(os.path.join(work, "clean.mrcs"))
    with open(os.path.join(work, "data.json"), "w", encoding="utf-8") as f:
        json.dump({"map": os.path.abspath(map_path), "box": box, "pixel_size": pixel, "n": n,
                   "snr_db": snr_db, "noise_sigma": sigma, "shift_px": shift_px}, f, indent=2)
    return star, truth_path


def evaluate(volume_path, truth_path, align):
    from tfcryogan import io
    from tfcryogan.evaluation import report
    vol, _ = io.read_volume(volume_path)
    truth, pixel = io.read_volume(truth_path)
    return report.compare_maps(vol, truth, pixel, align=align)


def train_with_snapshots(work, star, minutes, every, train_flags):
    """Run ``bin/train`` on ``star`` for ``minutes`` (a checkpoint every ``every`` steps) and copy
    ``volume.mrc`` each time ``run.json`` records a new step (``run.json`` is written after the
    maps). Returns ``[(minutes_since_start, record, volume_copy)]``; the log is WORK/cryogan.log."""
    run_dir = os.path.join(work, "cryogan")
    snaps = os.path.join(work, "cryogan_snapshots")
    shutil.rmtree(snaps, ignore_errors=True)
    os.makedirs(snaps)
    record_path = os.path.join(run_dir, "run.json")
    t0 = time.monotonic()
    with open(os.path.join(work, "cryogan.log"), "w", encoding="utf-8") as log:
        proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "bin", "train"),
                                 f"--particles={star}", f"--output_dir={run_dir}", "--restart",
                                 f"--max_minutes={minutes}", f"--checkpoint_every={every}",
                                 *train_flags], stdout=log, stderr=subprocess.STDOUT)
        last_step, out = None, []
        while True:
            done = proc.poll() is not None
            try:
                with open(record_path, encoding="utf-8") as f:
                    record = json.load(f)
            except (OSError, ValueError):
                record = None
            if record and record.get("step") != last_step:
                last_step = record["step"]
                path = os.path.join(snaps, f"volume_{last_step:07d}.mrc")
                shutil.copy(os.path.join(run_dir, "volume.mrc"), path)
                out.append(((time.monotonic() - t0) / 60.0, record, path))
            if done:
                break
            time.sleep(2.0)
    if proc.returncode:
        sys.exit(f"bin/train failed (see {os.path.join(work, 'cryogan.log')})")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/bench_reconstruct")
    parser.add_argument("--map", default=DEFAULT_MAP)
    parser.add_argument("--box", type=int, default=64)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--snr_db", type=float, default=-10.0)
    parser.add_argument("--shift_px", type=float, default=1.5)
    parser.add_argument("--minutes", type=float, default=40.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prepare_only", action="store_true")
    parser.add_argument("--train_flags", default="--nohalf_maps",
                        help="bin/train flags (default one map on all particles, as the "
                             "figures in RESULTS.md before 2026-12-05; '' for the halves)")
    args = parser.parse_args()
    start("relion_project", "relion_reconstruct")
    star, truth = prepare(args.work, args.map, args.box, args.n, args.snr_db, args.shift_px,
                          args.seed)
    print(f"data: {args.n} particles from {args.map}, box {args.box}, {args.snr_db:g} dB, "
          f"in {args.work}", flush=True)
    if args.prepare_only:
        return
    run_dir = os.path.join(args.work, "cryogan")
    t = time.time()
    subprocess.run([sys.executable, os.path.join(ROOT, "bin", "train"), f"--particles={star}",
                    f"--output_dir={run_dir}", f"--max_minutes={args.minutes}",
                    f"--ground_truth={truth}", "--restart", *args.train_flags.split()],
                   check=True)
    train_minutes = (time.time() - t) / 60
    t = time.time()
    subprocess.run(["relion_reconstruct", "--i", "particles.star", "--o", "relion_true_poses.mrc",
                    "--ctf"], cwd=args.work, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    relion_minutes = (time.time() - t) / 60
    ours = evaluate(os.path.join(run_dir, "volume.mrc"), truth, align=True)
    limit = evaluate(os.path.join(args.work, "relion_true_poses.mrc"), truth, align=False)
    print(f"\n{'':34s}{'FSC 0.5':>18s}{'FSC 0.143':>18s}{'minutes':>9s}")
    for name, r, minutes in (("bin/train (no poses, aligned)", ours, train_minutes),
                             ("relion_reconstruct (true poses)", limit, relion_minutes)):
        print(f"{name:34s}{r['resolution_0.5_A']:8.1f} A ({r['fraction_0.5']:.2f} Nyq)"
              f"{r['resolution_0.143_A']:8.1f} A ({r['fraction_0.143']:.2f} Nyq)"
              f"{minutes:9.1f}")


if __name__ == "__main__":
    main()
