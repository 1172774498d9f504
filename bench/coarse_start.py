#!/usr/bin/env python3
"""Experiment: a coarse first stage (small box) before the full-box run, against the plain run.

Both arms get the same wall-clock budget on the race's particles (``bench/ab_initio_race.py``'s
data: beta-galactosidase, box 64, 5.53 A/px, 20,000 particles, --snr_db), one after the other:

- control: ``bin/train --max_minutes=M`` (the race's flags);
- staged: ``bin/train --box=COARSE --max_minutes=f*M``, then ``bin/train --max_minutes=(1-f)*M
  --initial_volume=<stage 1's volume.mrc> --lowpass_start=S2`` on the full box. The clock of the
  second stage starts where the first ended (both start-ups are paid).

Steps at box 32 cost about a quarter of those at box 64 (``bench/scaling.py``), so the coarse
stage gives the low-resolution shape, where pose-free runs stall (RESULTS: Known limits), about
4x the updates. The FSC against the truth (after alignment) of the newest map by each mark is
printed for both arms.

  python bench/coarse_start.py [--snr_db=-10] [--minutes=10] [--fraction=0.5] [--coarse_box=32]
      [--stage2_lowpass=8] [--marks=5,10] [--only=control|staged] [--work=/tmp/bench_race]
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snr_db", type=float, default=-10.0)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--fraction", type=float, default=0.5,
                        help="share of the minutes spent at --coarse_box")
    parser.add_argument("--coarse_box", type=int, default=32)
    parser.add_argument("--stage2_lowpass", type=float, default=8.0,
                        help="--lowpass_start of the full-box stage (cycles per box)")
    parser.add_argument("--marks", default="5,10")
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--train_flags", default="--nohalf_maps")
    parser.add_argument("--only", choices=["control", "staged"], default=None)
    parser.add_argument("--work", default="/tmp/bench_race")
    args = parser.parse_args()
    import ab_initio_race
    import reconstruct
    reconstruct.start("relion_project")
    from tfcryogan import io
    work = os.path.join(args.work, f"snr{args.snr_db:g}")
    star, truth_path = reconstruct.prepare(work, reconstruct.DEFAULT_MAP, 64, args.n,
                                           args.snr_db, 1.5, 0)
    truth, pixel = io.read_volume(truth_path)
    flags = args.train_flags.split()
    marks = [float(m) for m in args.marks.split(",")]
    arms = {}
    if args.only != "staged":
        arms["control"] = [(m, r["step"], p) for m, r, p in reconstruct.train_with_snapshots(
            os.path.join(work, "coarse_control"), star, args.minutes, args.every, flags)]
    if args.only != "control":
        first = reconstruct.train_with_snapshots(
            os.path.join(work, "coarse_stage1"), star, args.fraction * args.minutes, args.every,
            flags + [f"--box={args.coarse_box}"])
        offset = first[-1][0]
        start_map = os.path.join(work, "coarse_stage1", "cryogan", "volume.mrc")
        second = reconstruct.train_with_snapshots(
            os.path.join(work, "coarse_stage2"), star, args.minutes - offset, args.every,
            flags + [f"--initial_volume={start_map}", f"--lowpass_start={args.stage2_lowpass}"])
        arms["staged"] = ([(m, f"{r['step']}@{args.coarse_box}", p) for m, r, p in first] +
                          [(offset + m, f"{r['step']}@64", p) for m, r, p in second])
    cache = {}
    print(f"\n{args.snr_db:g} dB, {args.minutes:g} min per arm; FSC against the truth after "
          "alignment (fraction of Nyquist of the box-64 grid, "
          f"{2 * pixel:.2f} A)")
    print(f"{'arm':9s}{'min':>5s}{'step':>10s}{'written':>9s}{'FSC 0.5':>18s}{'FSC 0.143':>18s}")
    for name, snaps in arms.items():
        for mark, snap in ab_initio_race.at_marks(snaps, marks).items():
            if snap is None:
                print(f"{name:9s}{mark:5g}   (no map yet)")
                continue
            res = ab_initio_race.score(snap[2], truth, pixel, cache)
            print(f"{name:9s}{mark:5g}{str(snap[1]):>10s}{snap[0]:8.1f}m"
                  f"{res[0]:9.1f} A ({2 * pixel / res[0]:.2f}){res[2]:9.1f} A "
                  f"({2 * pixel / res[2]:.2f})", flush=True)


if __name__ == "__main__":
    main()
