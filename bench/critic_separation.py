#!/usr/bin/env python3
"""Can the critic tell the right conformational variation from a wrong one of the same size?

A diagnostic for the coverage bench (``bench/multi.py --part=coverage``, whose data, frames and
trained run it reuses). For each candidate generator, held fixed, a fresh critic (the package's
architecture and settings, full resolution: no low-pass) is trained against the real particles
for --steps steps (``n_critic`` critic updates each) and its Wasserstein estimate over the last
half of them is printed: near 0 when the critic cannot tell the candidate's images from the data.

Candidates (linear models ``template + z @ basis``, ``z ~ N(0, I_2)``; every one calibrated to the
data's SNR as a fresh run is, with the simulated particles' shifts at the true 2 A):
  answer     the frames' mean and two principal components (the linear map's best)
  affine     the answer's template, its basis volumes replaced by their parts in the 12 whole-
             particle shifts, turns, stretches and shears of the template, rescaled to the same
             size: the same amount of variation, in the wrong (whole-particle) directions
  none       the answer's template alone (no variation)
  trained    the generator of WORK/coverage's last run (its newest export)
  frames     the data's own model, not a linear one: each image one of the frames, drawn
             uniformly (the floor for the estimate: what the critic makes of the truth)

If the critic separates "affine" or "trained" from the data no better than "answer", the
adversarial objective cannot pull the variation towards the motion, whatever the generator does.

  python bench/multi.py --part=coverage --box=32      # once: the data, frames and a trained run
  python bench/critic_separation.py [--steps=600] [--seed=0]
"""

import argparse
import os
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)


def exported_linear_model(export_dir, latent):
    """``(template [N^3], basis [K, N^3])`` of the newest export in ``export_dir`` (float64):
    the linear map's volumes at ``z = 0`` and their changes at the unit codes."""
    import tensorflow as tf
    import multi
    model = tf.saved_model.load(multi.newest_export(export_dir))
    z = np.concatenate([np.zeros((1, latent)), np.eye(latent)]).astype(np.float32)
    vols = model.signatures["serving_default"](z=tf.constant(z))["volume"].numpy()
    flat = vols.reshape(len(vols), -1).astype(np.float64)
    return flat[0], flat[1:] - flat[0]


def affine_part(template, basis, shape):
    """Each basis volume's part in the template's 12 whole-particle motions, rescaled to its norm."""
    import multi
    directions = multi.whole_particle_directions(template.reshape(shape))
    q, _ = np.linalg.qr(np.stack([d.ravel() for ds in directions.values() for d in ds], axis=1))
    parts = (basis @ q) @ q.T
    return parts * (np.linalg.norm(basis, axis=1) / np.linalg.norm(parts, axis=1))[:, None]


def one_frame_each(generator):
    """Make ``generator`` (template: the frames' mean, basis: each frame minus it) draw one frame
    per image, uniformly: frame ``floor(K * Phi(z_0))`` instead of the linear map's ``z``."""
    import tensorflow as tf
    k = generator.n_basis

    def coefficients(z, normalization=None):
        del normalization
        u = 0.5 * (1.0 + tf.math.erf(z[:, 0] / np.sqrt(2.0)))
        index = tf.minimum(tf.cast(tf.floor(u * k), tf.int32), k - 1)
        return tf.concat([tf.ones([tf.shape(z)[0], 1]), tf.one_hot(index, k)], axis=1)

    generator.coefficients = coefficients


def separation(star, template, basis, steps, seed, scratch, discrete=False):
    """Train a fresh critic against the fixed candidate (linear, or with ``discrete`` one basis
    volume per image, :func:`one_frame_each`); returns the mean and standard error of its
    Wasserstein estimate over the last half of ``steps``."""
    import tensorflow as tf
    from tfcryogan import data as data_lib
    from tfcryogan.training import loop
    n = round(len(template) ** (1 / 3))
    shutil.rmtree(scratch, ignore_errors=True)
    config = loop.TrainConfig(output_dir=scratch, latent_dim=len(basis), seed=seed,
                              lowpass_start=0.0, learn_shift=False, shift_std_A=2.0,
                              max_steps=steps)
    trainer = loop.Trainer(config, data_lib.load_particles(star), log=lambda line: None)
    trainer.generator.template.assign(tf.constant(template.reshape([n] * 3), tf.float32))
    trainer.generator.basis.assign(tf.constant(basis.reshape([len(basis)] + [n] * 3),
                                               tf.float32))
    if discrete:
        one_frame_each(trainer.generator)
    trainer.calibrate_scales()
    trainer.g_optimizer.learning_rate.assign(0.0)  # the candidate stays as it is
    step = trainer._distributed_step()  # pylint: disable=protected-access
    batches = iter(trainer.dataset(0))
    w = []
    for i in range(steps):
        w.append(float(step(next(batches))["wasserstein"]))
        if (i + 1) % 100 == 0:
            print(f"    step {i + 1}/{steps}: W {np.mean(w[-100:]):.3f}", flush=True)
    tail = np.array(w[steps // 2:])
    shutil.rmtree(scratch, ignore_errors=True)
    return float(tail.mean()), float(tail.std() / np.sqrt(len(tail)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/bench_multi")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--candidates", default="answer,affine,none,trained,frames",
                        help="comma list of the candidates to score")
    args = parser.parse_args()
    coverage = os.path.join(args.work, "coverage")
    star = os.path.join(coverage, "particles.star")
    export_dir = os.path.join(coverage, "export", "adk")
    if not os.path.isdir(export_dir):
        sys.exit(f"error: {export_dir} not found: run python bench/multi.py --part=coverage "
                 "--box=32 first (it makes the data, trains and exports)")
    from tfcryogan import cli
    cli.import_tensorflow_quietly()
    import multi
    frames = multi.read_frames(os.path.join(coverage, "frames"))
    shape = frames[0].shape
    mean, scaled = multi.frames_linear_model(frames, 2)
    unit = mean.max()
    template, basis = mean / unit, scaled / unit
    candidates = {"answer": (template, basis),
                  "affine": (template, affine_part(template, basis, shape)),
                  "none": (template, np.zeros_like(basis)),
                  "trained": exported_linear_model(export_dir, 2),
                  "frames": (template, np.stack([f.ravel() / unit for f in frames]) - template)}
    chosen = args.candidates.split(",")
    unknown = sorted(set(chosen) - set(candidates))
    if unknown:
        sys.exit(f"error: --candidates: unknown {unknown}; choose from {sorted(candidates)}")
    results = {}
    for name in chosen:
        print(f"  {name}: training a fresh critic for {args.steps} steps", flush=True)
        results[name] = separation(star, *candidates[name], args.steps, args.seed,
                                   os.path.join(args.work, "critic_separation"),
                                   discrete=name == "frames")
    print(f"critic's Wasserstein estimate against the real particles ({star}), mean of the last "
          f"{args.steps // 2} of {args.steps} steps (0: indistinguishable):")
    for name, (m, se) in results.items():
        print(f"  {name:8s} {m:.3f} +- {se:.3f}")


if __name__ == "__main__":
    main()
