#!/usr/bin/env python3
"""Does a fresh critic rank single maps (CryoGAN results) as their FSC against the truth does?

For each map, held fixed, a fresh critic (the package's architecture and settings) is trained
against the real particles for --steps steps (``n_critic`` critic updates each; the map's signal
scale calibrated to the data's SNR as a fresh run's is, the simulated shifts fixed at
--shift_px) and its Wasserstein estimate over the last half is printed, beside the map's FSC 0.5
against the truth after alignment. --lowpass gives the critic images Gaussian low-passed to that
width (cycles per box; 0: full resolution, as at the end of a run). The same critic seed serves
every map, so the maps see the same draws.

A critic whose estimate does not fall as the FSC improves cannot pull a run towards the right
low-resolution shape, nor pick the best of several starts. The last line gives Spearman's rank
correlation between the estimate and the FSC 0.5 resolution in A (+1: the critic ranks the maps
as the truth does).

  python bench/critic_rank.py --particles=/tmp/bench_race/snr-10/particles.star
      --truth=/tmp/bench_race/snr-10/truth.mrc [--box=32] [--steps=600] [--lowpass=0]
      [--shift_px=1.5] [--settings=critic_channels=32] MAP [MAP ...]
"""

import argparse
import contextlib
import os
import shutil
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)


#: The TrainConfig settings :func:`critic_estimate` sets itself (not --settings).
ESTIMATE_SETTINGS = ("particles", "output_dir", "box", "half_maps", "seed", "lowpass_start",
                     "learn_shift", "shift_std_A", "max_steps")


@contextlib.contextmanager
def fixed_map_trainer(data, volume, steps, lowpass, shift_A, seed, overrides=None):
    """A fresh :class:`~tfcryogan.training.loop.Trainer` on ``data`` whose map is ``volume``
    (``[N, N, N]`` on ``data``'s grid), held fixed (generator learning rate 0), its signal scale
    calibrated as a fresh run's; ``overrides``: further TrainConfig settings (e.g. the critic's).
    Its run folder is a scratch folder, removed on exit."""
    from tfcryogan.training import loop
    from tfcryogan.training.config import TrainConfig
    scratch = tempfile.mkdtemp(prefix="critic_rank_")
    try:
        config = TrainConfig(particles=data.path, output_dir=scratch, box=data.box,
                             half_maps=False, seed=seed, lowpass_start=lowpass,
                             learn_shift=False, shift_std_A=shift_A, max_steps=steps,
                             **(overrides or {}))
        trainer = loop.Trainer(config, data, log=lambda line: None)
        trainer.generator.template.assign(np.maximum(volume, 0.0).astype(np.float32))
        trainer.calibrate_scales()
        trainer.g_optimizer.learning_rate.assign(0.0)  # the map stays as it is
        # progress stays 0 (it is set only by the training loop): the low-pass keeps its width.
        yield trainer
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def critic_estimate(data, volume, steps, lowpass, shift_A, seed, overrides=None):
    """Mean and standard error of a fresh critic's Wasserstein estimate over the last half of
    ``steps``, against ``volume`` held fixed (:func:`fixed_map_trainer`)."""
    import critic_separation
    with fixed_map_trainer(data, volume, steps, lowpass, shift_A, seed, overrides) as trainer:
        return critic_separation.wasserstein_estimate(trainer, steps)


def spearman(a, b):
    """Spearman's rank correlation of two equal-length sequences (no ties expected)."""
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("maps", nargs="+")
    parser.add_argument("--particles", required=True)
    parser.add_argument("--truth", required=True)
    parser.add_argument("--box", type=int, default=32)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--lowpass", type=float, default=0.0)
    parser.add_argument("--shift_px", type=float, default=1.5,
                        help="the particles' true shift spread, pixels of their own box")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--settings", default="",
                        help="further training settings of the fresh critic's run, e.g. "
                             "critic_channels=32,n_critic=2")
    args = parser.parse_args()
    import critic_separation
    overrides = critic_separation.parse_settings(args.settings, ESTIMATE_SETTINGS)
    from tfcryogan import cli
    cli.import_tensorflow_quietly()
    import ab_initio_race
    from tfcryogan import data as data_lib, io
    truth, truth_pixel = io.read_volume(args.truth)
    data = data_lib.load_particles(args.particles, box=args.box)
    shift_A = args.shift_px * data.pixel_size_in
    print(f"{len(args.maps)} maps against {args.particles} at box {args.box} "
          f"({data.pixel_size:.2f} A/px), critic low-pass {args.lowpass:g}, {args.steps} steps")
    w, res = [], []
    for path in args.maps:
        vol = data_lib.on_training_grid(*io.read_volume(path), data, path)
        mean, se = critic_estimate(data, vol, args.steps, args.lowpass, shift_A, args.seed,
                                   overrides)
        fsc = ab_initio_race.score(path, truth, truth_pixel, {})
        w.append(mean)
        res.append(fsc[0])
        print(f"  {path}: W {mean:.3f} +- {se:.3f}, FSC 0.5 {fsc[0]:.1f} A", flush=True)
    print(f"Spearman rank correlation (W, FSC 0.5 resolution in A): {spearman(w, res):+.2f}")


if __name__ == "__main__":
    main()
