#!/usr/bin/env python3
"""The race: CryoGAN against RELION's SGD ab initio, same particles, same minutes, one machine.

For each SNR (--snr_db, default -10 and -20), on ``relion_project`` data made once by
``bench/reconstruct.py``'s recipe (the beta-galactosidase map at box 64, 5.53 A/px, 20,000
particles, EMPIAR-10061 defocus, 1.5 px shifts, white noise), one after the other:

1. ``bin/train`` for --minutes (default 40, --train_flags added; the race uses one map,
   ``--nohalf_maps``, as RELION's ab initio makes one) with a checkpoint every --every steps;
   the bench copies ``volume.mrc`` each time it changes, with the minutes since the command
   started;
2. ``relion_refine --denovo_3dref --sgd`` with RELION 3.1's defaults (300 iterations: 50 at
   35 A, 200 in between, 50 at 15 A; ``--j`` = the machine's cores) for the same minutes (it is
   stopped then), writing its model every iteration;
3. for each method and each mark (default 5, 10, 20, 40 minutes) the newest map written by then
   is aligned to the truth (rotation, hand, shift) and its FSC 0.5 and 0.143 resolutions are
   printed as a table (A and fraction of Nyquist), with CryoGAN's step count and RELION's
   iteration, and plotted (resolution against minutes) in WORK/race.png.

  python bench/ab_initio_race.py [--snr_db=-10,-20] [--minutes=40] [--marks=5,10,20,40]
      [--work=/tmp/bench_race] [--train_flags="--nohalf_maps"] [--only=cryogan|relion]
"""

import argparse
import glob
import json
import os
import re
import shutil
import sys
import time


HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

import reconstruct  # noqa: E402  (bench/reconstruct.py: the data recipe, run_for)


def run_relion(work, minutes, diameter, threads):
    """``relion_refine --denovo_3dref --sgd`` (RELION 3.1's defaults) for at most ``minutes``;
    returns ``(minutes_since_start, iteration, path)`` of every model it wrote."""
    out_dir = os.path.join(work, "relion_sgd")
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    cmd = ["relion_refine", "--o", os.path.join(out_dir, "run"), "--i", "particles.star",
           "--denovo_3dref", "--sgd", "--sgd_ini_iter", "50", "--sgd_inbetween_iter", "200",
           "--sgd_fin_iter", "50", "--sgd_write_iter", "1", "--sgd_ini_resol", "35",
           "--sgd_fin_resol", "15", "--sgd_ini_subset", "100", "--sgd_fin_subset", "500",
           "--ctf", "--K", "1", "--sym", "C1", "--flatten_solvent", "--zero_mask",
           "--dont_combine_weights_via_disc", "--pool", "3", "--pad", "1", "--skip_gridding",
           "--particle_diameter", str(diameter), "--oversampling", "1", "--healpix_order", "1",
           "--offset_range", "6", "--offset_step", "2", "--j", str(threads)]
    t0 = time.time()
    reconstruct.run_for(cmd, minutes, os.path.join(work, "relion_sgd.log"), cwd=work)
    out = []
    for path in glob.glob(os.path.join(out_dir, "run_it*_class001.mrc")):
        iteration = int(re.search(r"_it(\d+)_", path).group(1))
        if iteration > 0:
            out.append(((os.path.getmtime(path) - t0) / 60.0, iteration, path))
    if not out:
        sys.exit(f"relion_refine wrote no model (see {os.path.join(work, 'relion_sgd.log')})")
    return sorted(out)


def score(path, truth, pixel, cache):
    """FSC 0.5 / 0.143 of the map at ``path`` against the truth after alignment."""
    if path not in cache:
        from tfcryogan import io
        from tfcryogan.evaluation import report
        from tfcryogan.physics import fourier
        vol, voxel = io.read_volume(path)
        if vol.shape[0] != truth.shape[0] or (voxel and abs(voxel - pixel) > 1e-3 * pixel):
            vol = fourier.resample_volume(vol, voxel or pixel, pixel, truth.shape[0]).numpy()
        r = report.compare_maps(vol, truth, pixel, align=True)
        cache[path] = (r["resolution_0.5_A"], r["fraction_0.5"], r["resolution_0.143_A"],
                       r["fraction_0.143"])
    return cache[path]


def at_marks(snaps, marks):
    """For each mark (minutes), the newest snapshot written by then (or None)."""
    return {m: max((s for s in snaps if s[0] <= m), default=None, key=lambda s: s[0])
            for m in marks}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snr_db", default="-10,-20")
    parser.add_argument("--minutes", type=float, default=40.0)
    parser.add_argument("--marks", default="5,10,20,40")
    parser.add_argument("--every", type=int, default=50,
                        help="bin/train steps between checkpoints (snapshots)")
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--diameter", type=float, default=250.0,
                        help="RELION's --particle_diameter (A)")
    parser.add_argument("--work", default="/tmp/bench_race")
    parser.add_argument("--train_flags", default="--nohalf_maps")
    parser.add_argument("--only", choices=["cryogan", "relion"], default=None)
    args = parser.parse_args()
    reconstruct.start("relion_project", "relion_refine")
    from tfcryogan import io
    marks = [float(m) for m in args.marks.split(",")]
    rows = []
    for snr in [float(s) for s in args.snr_db.split(",")]:
        work = os.path.join(args.work, f"snr{snr:g}")
        star, truth_path = reconstruct.prepare(work, reconstruct.DEFAULT_MAP, 64, args.n, snr,
                                               1.5, 0)
        truth, pixel = io.read_volume(truth_path)
        print(f"{snr:g} dB: {args.n} particles, box 64, {pixel:.3f} A/px (Nyquist "
              f"{2 * pixel:.2f} A), {args.minutes:g} min per method, in {work}", flush=True)
        results = {}
        if args.only != "relion":
            results["CryoGAN"] = [
                (minutes, record["step"], path) for minutes, record, path in
                reconstruct.train_with_snapshots(work, star, args.minutes, args.every,
                                                 args.train_flags.split())]
        if args.only != "cryogan":
            results["RELION SGD"] = run_relion(work, args.minutes, args.diameter,
                                               os.cpu_count())
        with open(os.path.join(work, "race.json"), "w", encoding="utf-8") as f:
            json.dump({k: v for k, v in results.items()}, f, indent=1)
        cache = {}
        for name, snaps in results.items():
            for mark, snap in at_marks(snaps, marks).items():
                if snap is None:
                    rows.append((snr, name, mark, None, None))
                    continue
                rows.append((snr, name, mark, snap, score(snap[2], truth, pixel, cache)))
    print("\nFSC against the truth after alignment (fraction of Nyquist in brackets); CryoGAN's "
          "step, RELION's iteration")
    print(f"{'SNR':>6s} {'method':12s}{'min':>5s}{'step/it':>9s}{'written':>9s}"
          f"{'FSC 0.5':>18s}{'FSC 0.143':>18s}")
    for snr, name, mark, snap, res in rows:
        if snap is None:
            print(f"{snr:6g} {name:12s}{mark:5g}   (no map yet)")
            continue
        print(f"{snr:6g} {name:12s}{mark:5g}{snap[1]:9d}{snap[0]:8.1f}m"
              f"{res[0]:9.1f} A ({res[1]:.2f}){res[2]:9.1f} A ({res[3]:.2f})")
    plot(rows, os.path.join(args.work, "race.png"))
    print(f"plot: {os.path.join(args.work, 'race.png')}")


def plot(rows, path):
    """Resolution (fraction of Nyquist at FSC 0.5) against minutes, one line per method/SNR."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(6.4, 4.4), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for key in sorted({(r[0], r[1]) for r in rows}):
        pts = [(r[2], r[4][1]) for r in rows if (r[0], r[1]) == key and r[4] is not None]
        if pts:
            x, y = zip(*pts)
            ax.plot(x, y, marker="o", label=f"{key[1]}, {key[0]:g} dB",
                    linestyle="-" if key[1] == "CryoGAN" else "--")
    ax.set_xlabel("minutes (same machine, one after the other)")
    ax.set_ylabel("FSC 0.5 resolution / Nyquist")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    main()
