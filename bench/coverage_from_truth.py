#!/usr/bin/env python3
"""Multi-CryoGAN started at the answer: does training keep the right variation?

A diagnostic for the coverage bench (``bench/multi.py --part=coverage``, whose data it reuses):
the generator starts with the adk frames' mean as its template and their principal components,
scaled to their standard deviations, as its basis volumes (the linear map's best, share along the
motion 0.90), then trains for --minutes with the package's defaults as ``bin/train`` would. The
samples are exported, drawn and scored by ``bench/multi.py --evaluate_only``. If the training
keeps the motion, the shortfall of a random start is in finding it; if the motion decays into
other directions, the objective itself does not hold it.

  python bench/multi.py --part=coverage --box=32      # once: makes WORK/coverage's data
  python bench/coverage_from_truth.py [--minutes=15] [--seed=0] [--set lowpass_start=0 ...]
"""

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys


HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)


def config_overrides(config_class, settings, reserved=()):
    """``["name=value", ...]`` -> ``{name: value}`` typed like ``config_class``'s fields; a name
    in ``reserved`` (set by this script's own flags) or a malformed setting is a one-line error."""
    types = {f.name: type(f.default) for f in dataclasses.fields(config_class)
             if f.default is not dataclasses.MISSING}
    out = {}
    for setting in settings:
        name, _, value = setting.partition("=")
        if name in reserved:
            sys.exit(f"error: --set {setting}: {name} is set by this script's own flag")
        if name not in types:
            sys.exit(f"error: --set {setting}: {name!r} is not a training setting")
        kind = types[name]
        try:
            if kind is bool:
                out[name] = {"1": True, "true": True, "0": False, "false": False}[value.lower()]
            else:
                out[name] = kind(value)
        except (KeyError, ValueError):
            sys.exit(f"error: --set {setting}: {name} takes a value of type {kind.__name__} "
                     "(NAME=VALUE)")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/bench_multi")
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--latent", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a training setting other than the default (a TrainConfig field), "
                             "e.g. --set lowpass_start=0; repeatable")
    args = parser.parse_args()
    coverage = os.path.join(args.work, "coverage")
    star = os.path.join(coverage, "particles.star")
    if not os.path.exists(star):
        sys.exit(f"error: {star} not found: run python bench/multi.py --part=coverage --box=32 "
                 "first (it makes the frames and the particles)")
    from tfcryogan import cli
    cli.import_tensorflow_quietly()

    import multi
    from tfcryogan import data as data_lib
    from tfcryogan.training import loop
    from tfcryogan.training.config import TrainConfig
    frames = multi.read_frames(os.path.join(coverage, "frames"))
    mean, scaled = multi.frames_linear_model(frames, args.latent)
    n = frames[0].shape[0]
    unit = mean.max()  # the package's templates start with maximum 1
    work = os.path.join(args.work, "from_truth")
    shutil.rmtree(work, ignore_errors=True)  # a fresh start each time
    run_dir = os.path.join(work, "run")
    config = TrainConfig(particles=star, output_dir=run_dir, max_minutes=args.minutes,
                         latent_dim=args.latent, seed=args.seed,
                         **config_overrides(TrainConfig, args.set,
                                            ("particles", "output_dir", "max_minutes",
                                             "latent_dim", "seed")))
    trainer = loop.Trainer(config, data_lib.load_particles(star))
    generator = trainer.generator
    multi.set_linear_model(generator, mean / unit, scaled / unit)
    for ema, w in zip(trainer.ema_generator.weights, generator.weights):
        ema.assign(w)
    trainer.run()
    samples = os.path.join(work, "samples")
    multi.export_and_sample(run_dir, os.path.join(work, "export", "adk"), samples, 16)
    subprocess.run([sys.executable, os.path.join(HERE, "multi.py"), "--part=coverage", f"--box={n}",
                    f"--work={args.work}", f"--minutes={args.minutes:g}",
                    f"--latent={args.latent}", "--evaluate_only", f"--samples_dir={samples}"],
                   check=True)


if __name__ == "__main__":
    main()
