#!/usr/bin/env python3
"""Multi-CryoGAN beside cryoDRGN on the same motion, particles and minutes, one machine.

On the coverage data set of ``bench/multi.py`` (``--dataset``, default the adenylate kinase
closed -> open motion: 10 frames, box 32, 20,000 particles at -5 dB, made on first use), one
after the other, each for --minutes of wall time (start-up included):

1. Multi-CryoGAN: ``bin/train --latent_dim=2`` and ``bin/sample`` (``multi.py``'s recipe), its
   --samples (16) random samples;
2. cryoDRGN ``train_vae`` with the TRUE poses (what the images hold when the poses are known: the
   ceiling of any pose-free method), stopped at --minutes, its last finished epoch;
3. cryoDRGN ``abinit`` (cryoDRGN-AI: pose search and the latent together; the pose-searching
   rival), stopped at --minutes, its last finished epoch.

For each cryoDRGN run, two sets of --samples maps are made with ``cryodrgn eval_vol``: ``pc1``
(points along the first principal component of the particles' latent means, from its 5th to its
95th percentile, as ``cryodrgn analyze`` traverses) and ``particles`` (the latent means of as many
random particles: the learned distribution, as Multi-CryoGAN's samples are). On a continuous
data set every set is scored by ``multi.evaluate_samples`` (one alignment to the middle frame;
share of the variance along the motion with and without whole-particle shifts and turns; span of
the positions on the line; precision / recall at the data set's FSC 0.5 threshold) and a
side-by-side table is printed.

cryoDRGN is installed (pinned, --cryodrgn_version) in its own virtual environment
WORK/cryodrgn_env on first use (about 7 GB with PyTorch; never a tfcryogan dependency). It runs on
the CPU with ``--no-amp``, ``OMP_NUM_THREADS`` = the machine's cores, and smaller networks than its
GPU defaults (--dim, 3 layers) so that epochs finish within the budget.

On the discrete rungs of the ladder (``--dataset=mixture``: 30% beta-galactosidase chain A + 70%
adenylate kinase; ``endstates``: 30% closed + 70% open adenylate kinase) each set is scored by
``multi.evaluate_states`` instead (the share of samples nearest each state, near neither, each
state's best sample), and cryoDRGN's pc1 traversal is skipped (it has no proportions).

  python bench/peers.py [--minutes=15] [--dataset=adk|hinge|mixture|endstates]
      [--work=/tmp/bench_multi]
      [--only=multicryogan,vae,abinit] [--samples=16] [--zdim=8] [--dim=256]
"""

import argparse
import glob
import os
import pickle
import re
import shutil
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

import multi  # noqa: E402  (bench/multi.py: the data set and the scoring)
import reconstruct  # noqa: E402  (bench/reconstruct.py: run_for)


def cryodrgn_env(work, version):
    """The ``cryodrgn`` executable of WORK/cryodrgn_env, installing cryoDRGN there if needed."""
    env = os.path.join(work, "cryodrgn_env")
    exe = os.path.join(env, "bin", "cryodrgn")
    if not os.path.exists(exe):
        print(f"installing cryodrgn=={version} into {env} (about 7 GB, several minutes)",
              flush=True)
        subprocess.run([sys.executable, "-m", "venv", env], check=True)
        wheels = os.path.join(work, "wheels")  # a pip download cache, if one was made
        extra = ["--find-links", wheels] if os.path.isdir(wheels) else []
        subprocess.run([os.path.join(env, "bin", "pip"), "install", "-q", *extra,
                        f"cryodrgn=={version}"], check=True)
    return exe


def last_epoch(out_dir):
    """The highest epoch ``e`` with both ``weights.e.pkl`` and ``z.e.pkl`` in ``out_dir`` (None if
    none finished)."""
    epochs = [int(m.group(1)) for p in glob.glob(os.path.join(out_dir, "weights.*.pkl"))
              if (m := re.search(r"weights\.(\d+)\.pkl$", p))]
    epochs = [e for e in epochs if os.path.exists(os.path.join(out_dir, f"z.{e}.pkl"))]
    return max(epochs) if epochs else None


def latent_sets(z, count, seed=0):
    """Two ``[count, zdim]`` sets of latent codes from the particles' latent means ``z``
    ``[n, zdim]``: ``pc1`` (evenly from the 5th to the 95th percentile of the first principal
    component, through the mean) and ``particles`` (``count`` random particles' codes)."""
    mean = z.mean(axis=0)
    _, _, vt = np.linalg.svd(z - mean, full_matrices=False)
    pc = vt[0]
    coords = (z - mean) @ pc
    lo, hi = np.percentile(coords, [5, 95])
    pc1 = mean + np.linspace(lo, hi, count)[:, None] * pc[None]
    rng = np.random.default_rng(seed)
    particles = z[rng.choice(len(z), count, replace=False)]
    return {"pc1": pc1, "particles": particles}


def volumes_at(exe, out_dir, epoch, codes, folder, pixel, env):
    """``cryodrgn eval_vol`` at ``codes`` ``[k, zdim]``, renamed ``folder/sample_XX.mrc``."""
    os.makedirs(folder, exist_ok=True)
    for old in glob.glob(os.path.join(folder, "*.mrc")):
        os.remove(old)
    z_file = os.path.join(folder, "codes.txt")  # not z.txt: that is Multi-CryoGAN's latent
    np.savetxt(z_file, codes)
    subprocess.run([exe, "eval_vol", os.path.join(out_dir, f"weights.{epoch}.pkl"), "-c",
                    os.path.join(out_dir, "config.yaml"), "--zfile", z_file, "-o", folder,
                    "--Apix", str(pixel), "--vol-start-index", "0"], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    for k in range(len(codes)):
        os.replace(os.path.join(folder, f"vol_{k:03d}.mrc"),
                   os.path.join(folder, f"sample_{k:02d}.mrc"))


def read_latent_means(path):
    """The first pickle in ``path`` (cryoDRGN's ``z.e.pkl``: the latent means ``[n, zdim]``)."""
    with open(path, "rb") as f:
        return np.asarray(pickle.load(f), np.float64)


def run_cryodrgn(kind, exe, data, args, env):
    """Run cryoDRGN ``train_vae`` (true poses) or ``abinit`` for --minutes; returns
    ``(minutes, epoch, out_dir)`` (epoch None when none finished)."""
    work, star = data["work"], data["star"]
    out_dir = os.path.join(work, f"cryodrgn_{kind}")
    ctf = os.path.join(work, "cryodrgn_ctf.pkl")
    poses = os.path.join(work, "cryodrgn_poses.pkl")
    if not os.path.exists(ctf):
        subprocess.run([exe, "parse_ctf_star", star, "-o", ctf, "--ps", "0"], check=True,
                       env=env, stdout=subprocess.DEVNULL)
        subprocess.run([exe, "parse_pose_star", star, "-o", poses], check=True, env=env,
                       stdout=subprocess.DEVNULL)
    common = [star, "--datadir", os.path.dirname(star), "--ctf", ctf, "--zdim", str(args.zdim),
              "-o", out_dir, "--no-amp", "--no-analysis", "--num-workers", "0", "--seed", "0",
              "--checkpoint", "1", "-n", "1000"]
    if kind == "vae":
        cmd = [exe, "train_vae", *common, "--poses", poses, "--enc-dim", str(args.dim),
               "--dec-dim", str(args.dim), "--enc-layers", "3", "--dec-layers", "3"]
    else:
        box = multi.read_frames(data["frames"])[0].shape[0]
        cmd = [exe, "abinit", *common, "--dim", str(args.dim), "--layers", "3",
               "--l-end", str(box // 2), "--t-extent", "4", "--n-imgs-pretrain", "2000",
               "--epochs-pose-search", "2"]
    shutil.rmtree(out_dir, ignore_errors=True)
    print(f"cryoDRGN {kind} for {args.minutes:g} min: {' '.join(cmd[1:])}", flush=True)
    minutes = reconstruct.run_for(cmd, args.minutes, os.path.join(work, f"cryodrgn_{kind}.log"),
                                  env=env)
    epoch = last_epoch(out_dir)
    if kind == "abinit" and epoch == 0:  # epoch 0 is pretraining at random poses, not a map
        epoch = None
    return minutes, epoch, out_dir


# The side-by-side tables' figure columns: (heading, width, format, figure from the scores).
MOTION_COLUMNS = (("share", 6, ".2f", lambda f: f["share"]),
                  ("share*", 7, ".2f", lambda f: f["share_rigid_free"]),
                  ("span*", 6, ".2f", lambda f: f["span"]),
                  ("prec", 5, ".2f", lambda f: f["precision"]),
                  ("recall", 6, ".2f", lambda f: f["recall"]))
STATES_COLUMNS = (("state 0", 8, ".2f", lambda f: f["fractions"][0]),
                  ("state 1", 8, ".2f", lambda f: f["fractions"][1]),
                  ("neither", 8, ".2f", lambda f: f["neither"]),
                  ("any 0", 6, ".2f", lambda f: f["closest"][0]),
                  ("best 0", 7, ".1f", lambda f: f["best_A"][0]),
                  ("best 1", 7, ".1f", lambda f: f["best_A"][1]),
                  ("recall", 6, ".2f", lambda f: f["recall"]))


def print_table(rows, columns):
    """One line per ``(method, work done, minutes, scores or None)`` row, then ``columns``
    (:data:`MOTION_COLUMNS` or :data:`STATES_COLUMNS`) of its scores."""
    print(f"{'method':34s} {'work done':>12s} {'min':>5s} " +
          " ".join(f"{title:>{width}s}" for title, width, _, _ in columns))
    for name, work_done, minutes, fig in rows:
        start = f"{name:34s} {work_done:>12s} {minutes:5.1f}"
        if fig is None:
            print(f"{start}   (no map)")
            continue
        print(f"{start} " + " ".join(f"{get(fig):{width}{spec}}"
                                     for _, width, spec, get in columns))


def print_states_table(rows, data):
    """The side-by-side table of a discrete data set (``multi.evaluate_states``' figures)."""
    truth = data["dataset"]["fractions"]
    print_table(rows, STATES_COLUMNS)
    print(f"(state k: share of the {rows[0][3]['samples'] if rows[0][3] else '?'} samples nearest "
          f"state k within {data['threshold']:g} A at FSC 0.5; the particles: {truth[0]:.2f} / "
          f"{truth[1]:.2f}; any 0: share nearest state 0 at any resolution; best k: state k's "
          "best sample, A)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--dataset", choices=sorted(multi.DATASETS), default="adk",
                        help="a rung of the heterogeneity ladder (bench/multi.py --dataset)")
    parser.add_argument("--work", default="/tmp/bench_multi")
    parser.add_argument("--only", default="multicryogan,vae,abinit")
    parser.add_argument("--samples", type=int, default=16,
                        help="maps per method and set (Multi-CryoGAN's samples, cryoDRGN's codes)")
    parser.add_argument("--zdim", type=int, default=8)
    parser.add_argument("--dim", type=int, default=256,
                        help="cryoDRGN's hidden layer width (its GPU default is 1024)")
    parser.add_argument("--cryodrgn_version", default="4.3.1")
    # multi.coverage_data's settings (its defaults: the data set multi.py --part=coverage makes)
    parser.add_argument("--box", type=int, default=32)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--snr_db", type=float, default=-5.0)
    parser.add_argument("--pixel", type=float, default=0.0)
    parser.add_argument("--threshold_A", type=float, default=0.0)
    args = parser.parse_args()
    from tfcryogan import cli
    cli.import_tensorflow_quietly()
    only = args.only.split(",")
    data = multi.coverage_data(args)
    discrete = "fractions" in data["dataset"]
    print(f"{data['dataset']['title']}: box {args.box}, {data['pixel']:g} A/px, {args.n} "
          f"particles at {args.snr_db:g} dB, {args.minutes:g} min per method, in "
          f"{data['work']}", flush=True)
    rows = []
    if "multicryogan" in only:
        samples = os.path.join(data["work"], "samples_peers")
        steps, minutes = multi.train_and_sample(
            data, os.path.join(data["work"], "run_peers"),
            os.path.join(data["work"], "export", "peers"), samples, args.minutes, 2, args.samples)
        print(f"Multi-CryoGAN ({steps} steps, {minutes:.1f} min):", flush=True)
        rows.append(("Multi-CryoGAN", f"{steps} steps", minutes,
                     multi.evaluate(samples, data, "multicryogan")))
    kinds = [k for k in ("vae", "abinit") if k in only]
    if kinds:
        exe = cryodrgn_env(args.work, args.cryodrgn_version)
        env = dict(os.environ, OMP_NUM_THREADS=str(os.cpu_count() or 1))
        for kind in kinds:
            name = {"vae": "cryoDRGN, true poses", "abinit": "cryoDRGN-AI ab initio"}[kind]
            minutes, epoch, out_dir = run_cryodrgn(kind, exe, data, args, env)
            if epoch is None:
                print(f"{name}: no epoch finished in {minutes:.1f} min (pretraining excluded; "
                      f"see {out_dir}.log)", flush=True)
                rows.append((name, "0 epochs", minutes, None))
                continue
            z = read_latent_means(os.path.join(out_dir, f"z.{epoch}.pkl"))
            for set_name, codes in latent_sets(z, args.samples).items():
                if discrete and set_name == "pc1":  # a traversal: no proportions to read
                    continue
                folder = os.path.join(data["work"], f"samples_cryodrgn_{kind}_{set_name}")
                volumes_at(exe, out_dir, epoch, codes, folder, data["pixel"], env)
                print(f"{name}, {set_name} ({epoch} epochs, {minutes:.1f} min):", flush=True)
                rows.append((f"{name}, {set_name}", f"{epoch} epochs", minutes,
                             multi.evaluate(folder, data, f"cryodrgn_{kind}_{set_name}")))
    print(f"\n{data['dataset']['title']}, {args.minutes:g} min each, one machine, one after the "
          "other")
    if discrete:
        print_states_table(rows, data)
        return
    print_table(rows, MOTION_COLUMNS)
    if rows and rows[0][3] is not None:
        print(f"(the true frames: share* {rows[0][3]['frames_share_rigid_free']:.2f}; * without "
              "whole-particle shifts and turns; span: max - min position on the closed (0) -> "
              "open (1) line)")


if __name__ == "__main__":
    main()
