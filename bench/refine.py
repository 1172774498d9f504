#!/usr/bin/env python3
"""RELION 3D auto-refine from our map, from RELION's own ab initio model, and from a sphere.

On ``relion_project`` data (``bench/reconstruct.py``'s recipe: the beta-galactosidase map at box
64, 5.53 A/px, --n particles, EMPIAR-10061 defocus, --snr_db, made once in --work), one after the
other on one machine:

(a) ``bin/train`` with its defaults (gold-standard halves) for --minutes: its
    ``initial_model.mrc`` (the particles' box and pixel size, low-passed to its gold-standard
    resolution);
(b) ``relion_refine --denovo_3dref --sgd`` (RELION 3.1's defaults, ``--j`` = the cores) for the
    same minutes: its newest model;
(c) a featureless soft sphere of the particle's size;

then ``relion_refine_mpi --auto_refine --split_random_halves`` (``mpirun -n 3``: one process per
half and the leader) from each (``--ini_high 40``,
``--firstiter_cc`` for the two that are not on RELION's greyscale, C1, the same particles; local
searches from 3.75 degrees on, which move the particle's edge by 8 A, less than Nyquist at box 64,
at a fraction of a global search's cost). It
prints for each: the initial model's minutes, the refinement's minutes and iterations, RELION's
final gold-standard resolution, and the FSC 0.5 / 0.143 of the refined map against the truth
(after alignment: a pose-free start fixes neither the hand nor the frame).

  python bench/refine.py [--minutes=20] [--n=20000] [--snr_db=-10] [--work=/tmp/bench_refine]
      [--only=a,b,c]
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)


def ours(work, star, minutes):
    """``bin/train`` (defaults: two halves) for ``minutes``: its ``initial_model.mrc`` and the
    minutes it took."""
    import reconstruct
    t = time.time()
    reconstruct.train_with_snapshots(work, star, minutes, 10 ** 6,
                                     ["--ground_truth=" + os.path.join(work, "truth.mrc")])
    return os.path.join(work, "cryogan", "initial_model.mrc"), (time.time() - t) / 60.0


def relion_ab_initio(work, minutes, diameter):
    """RELION's SGD ab initio for ``minutes`` (``ab_initio_race.run_relion``): its newest model
    and the minutes it took to write it."""
    import ab_initio_race
    written, _, path = ab_initio_race.run_relion(work, minutes, diameter, os.cpu_count())[-1]
    return path, written


def sphere(work, box, pixel, diameter):
    """A soft sphere of ``diameter`` A (3-voxel cosine edge) at ``pixel`` A/voxel."""
    from tfcryogan import io
    from tfcryogan.evaluation.align import soft_sphere_mask
    path = os.path.join(work, "sphere.mrc")
    io.write_volume(path, soft_sphere_mask(box, 0.5 * diameter / pixel - 3.0, 3.0).numpy(), pixel)
    return path, 0.0


def subset_star(work, star, n):
    """A STAR file of the first ``n`` particles of ``star`` (same optics, same stacks)."""
    from tfcryogan import io
    table = io.read_star(star)
    path = os.path.join(work, f"particles_first{n}.star")
    io.write_star(path, table.subset(np.arange(min(n, len(table)))))
    return path


def auto_refine(work, name, reference, star, diameter, absolute_greyscale, threads):
    """``relion_refine --auto_refine`` of the particles in ``star`` from ``reference``; returns
    (minutes, iterations, resolution_A, path of the refined map)."""
    out_dir = os.path.join(work, f"refine_{name}")
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    # --split_random_halves needs MPI: a leader and one follower per half, --j sharing the cores.
    mpi = ["mpirun", "-n", "3", "--oversubscribe"]
    if os.geteuid() == 0:
        mpi.append("--allow-run-as-root")
    cmd = mpi + ["relion_refine_mpi", "--o", os.path.join(out_dir, "run"), "--auto_refine",
           "--split_random_halves", "--i", os.path.abspath(star), "--ref", reference,
           "--ini_high", "40", "--dont_combine_weights_via_disc", "--pool", "3", "--pad", "2",
           "--ctf", "--particle_diameter", str(diameter), "--flatten_solvent", "--zero_mask",
           "--oversampling", "1", "--healpix_order", "2", "--auto_local_healpix_order", "3",
           "--offset_range", "5", "--offset_step", "2.5", "--sym", "C1",
           "--low_resol_join_halves", "40", "--norm", "--scale",
           "--j", str(max(1, threads // 2))]
    if not absolute_greyscale:
        cmd.append("--firstiter_cc")
    t = time.time()
    with open(os.path.join(work, f"refine_{name}.log"), "w", encoding="utf-8") as log:
        subprocess.run(cmd, cwd=work, check=True, stdout=log, stderr=subprocess.STDOUT)
    minutes = (time.time() - t) / 60.0
    iterations = max(int(re.search(r"_it(\d+)_", p).group(1))
                     for p in glob.glob(os.path.join(out_dir, "run_it*_half1_model.star")))
    resolution = None
    model = os.path.join(out_dir, "run_model.star")
    if os.path.exists(model):
        match = re.search(r"_rlnCurrentResolution\s+([0-9.eE+-]+)", open(model).read())
        resolution = float(match.group(1)) if match else None
    return minutes, iterations, resolution, os.path.join(out_dir, "run_class001.mrc")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--snr_db", type=float, default=-10.0)
    parser.add_argument("--diameter", type=float, default=250.0)
    parser.add_argument("--work", default="/tmp/bench_refine")
    parser.add_argument("--only", default="a,b,c")
    parser.add_argument("--initial_model", default="",
                        help="(a) from this bin/train output instead of a new run (e.g. "
                             "bench/gold_standard.py's run on the same data), with "
                             "--initial_minutes its training minutes")
    parser.add_argument("--initial_minutes", type=float, default=0.0)
    parser.add_argument("--relion_model", default="",
                        help="(b) from this RELION SGD model instead of a new run (e.g. "
                             "bench/ab_initio_race.py's on the same data), with "
                             "--relion_minutes the minutes it took")
    parser.add_argument("--relion_minutes", type=float, default=0.0)
    parser.add_argument("--refine_n", type=int, default=0,
                        help="refine on the first N particles only (0: all): a shorter bench "
                             "that still compares the three starts on the same particles")
    args = parser.parse_args()
    import reconstruct
    reconstruct.start("relion_project", "relion_refine_mpi", "mpirun")
    from tfcryogan import io
    from tfcryogan.evaluation import report
    star, truth_path = reconstruct.prepare(args.work, reconstruct.DEFAULT_MAP, 64, args.n,
                                           args.snr_db, 1.5, 0)
    truth, pixel = io.read_volume(truth_path)
    threads = os.cpu_count()
    if args.refine_n:
        star = subset_star(args.work, star, args.refine_n)

    def make_ours():
        if args.initial_model:
            return args.initial_model, args.initial_minutes
        return ours(args.work, star, args.minutes)

    starts = {"a": ("(a) CryoGAN initial_model.mrc", make_ours, False),
              "b": ("(b) RELION SGD ab initio", lambda: (
                  (args.relion_model, args.relion_minutes) if args.relion_model else
                  relion_ab_initio(args.work, args.minutes, args.diameter)), True),
              "c": ("(c) featureless sphere", lambda: sphere(args.work, 64, pixel, args.diameter),
                    False)}
    rows = []
    for key in args.only.split(","):
        name, make, absolute = starts[key]
        print(f"{name}: making the initial model", flush=True)
        reference, initial_minutes = make()
        print(f"{name}: relion_refine --auto_refine from {reference}", flush=True)
        minutes, iterations, resolution, refined = auto_refine(
            args.work, key, reference, star, args.diameter, absolute, threads)
        vol, _ = io.read_volume(refined)
        r = report.compare_maps(vol, truth, pixel, align=True)
        rows.append((name, initial_minutes, minutes, iterations, resolution, r))
    refined_n = f", refined on the first {args.refine_n}" if args.refine_n else ""
    print(f"\n{args.n} particles{refined_n}, box 64, {pixel:.3f} A/px (Nyquist {2 * pixel:.2f} A), "
          f"{args.snr_db:g} dB, {threads} cores")
    print(f"{'start':32s}{'initial min':>12s}{'refine min':>11s}{'iters':>6s}{'total min':>10s}"
          f"{'RELION res':>11s}{'truth FSC 0.5':>15s}{'truth 0.143':>13s}")
    for name, t0, t1, iterations, resolution, r in rows:
        res = f"{resolution:.2f} A" if resolution else "?"
        print(f"{name:32s}{t0:12.1f}{t1:11.1f}{iterations:6d}{t0 + t1:10.1f}{res:>11s}"
              f"{r['resolution_0.5_A']:11.2f} A{r['resolution_0.143_A']:11.2f} A")
    np.save(os.path.join(args.work, "refine_rows.npy"),
            np.array([(n, a, b, c, d or 0, r["resolution_0.5_A"], r["resolution_0.143_A"])
                      for n, a, b, c, d, r in rows], dtype=object), allow_pickle=True)


if __name__ == "__main__":
    main()
