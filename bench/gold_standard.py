#!/usr/bin/env python3
"""Gold-standard resolution against the truth: does the half-map FSC tell a user what they got?

For each SNR (--snr_db, default -10 and -20), on ``relion_project`` data (``bench/reconstruct.py``'s
recipe: the beta-galactosidase map at box 64, 5.53 A/px, --n particles, EMPIAR-10061 defocus,
made once in --work), ``bin/train`` runs with its defaults (two independent halves) and
``--ground_truth`` for --minutes, with a checkpoint every --every steps. At each checkpoint the
bench copies ``volume.mrc`` (the average of the aligned halves) and ``run.json`` (its gold-standard
FSC); it then prints, per checkpoint, the gold-standard resolutions at 0.143 (masked and unmasked)
beside the true FSC 0.5 and 0.143 of the average against the truth (after alignment), and their
ratios. RELION's rule is that the gold-standard 0.143 resolution of the halves equals the FSC 0.5
resolution of the average against the truth.

  python bench/gold_standard.py [--snr_db=-10,-20] [--minutes=20] [--every=100]
      [--work=/tmp/bench_gold]
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snr_db", default="-10,-20")
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--work", default="/tmp/bench_gold")
    args = parser.parse_args()
    import reconstruct
    reconstruct.start("relion_project")
    from tfcryogan import io
    from tfcryogan.evaluation import report
    table = []
    for snr in [float(s) for s in args.snr_db.split(",")]:
        work = os.path.join(args.work, f"snr{snr:g}")
        star, truth_path = reconstruct.prepare(work, reconstruct.DEFAULT_MAP, 64, args.n, snr,
                                               1.5, 0)
        truth, pixel = io.read_volume(truth_path)
        print(f"{snr:g} dB: bin/train (two halves) for {args.minutes:g} min in {work}",
              flush=True)
        snapshots = reconstruct.train_with_snapshots(work, star, args.minutes, args.every,
                                                     [f"--ground_truth={truth_path}"])
        for minutes, record, path in snapshots:
            if "gold_standard" not in record:
                continue
            vol, _ = io.read_volume(path)
            r = report.compare_maps(vol, truth, pixel, align=True)
            gold = record["gold_standard"]
            table.append((snr, record["step"], minutes, gold["masked"]["resolution_0143_A"],
                          gold["unmasked"]["resolution_0143_A"], r["resolution_0.5_A"],
                          r["resolution_0.143_A"], pixel))
    print("\ngold-standard FSC 0.143 of the halves (masked, unmasked) against the true FSC of "
          "their average (A; ratio gold 0.143 masked / true 0.5: 1 is RELION's rule, < 1 means "
          "the halves claim more than the truth shows)")
    print(f"{'SNR':>5s}{'step':>7s}{'min':>6s}{'gold masked':>13s}{'gold unmasked':>15s}"
          f"{'truth 0.5':>11s}{'truth 0.143':>13s}{'ratio':>7s}")
    for snr, step, minutes, gm, gu, t05, t0143, pixel in table:
        print(f"{snr:5g}{step:7d}{minutes:6.1f}{gm:11.1f} A{gu:13.1f} A{t05:9.1f} A"
              f"{t0143:11.1f} A{gm / t05:7.2f}")


if __name__ == "__main__":
    main()
