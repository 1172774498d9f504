#!/usr/bin/env python3
"""Does the critic's gradient on a plateaued map point towards the truth, shell by shell?

For a map held fixed, a fresh critic (the package's) trains against the particles for --steps
steps (as bench/critic_rank.py); then, over --batches further steps, the generator loss's
gradient on the map (what a volume update follows) is taken on fresh simulated batches. Per
Fourier shell k (cycles per box) it prints:
  cos_k   cosine between the descent direction -mean(G)_k and (s truth - map)_k, the truth
          aligned onto the map (rotation, hand, shift) and scaled by least squares: > 0 means
          the gradient moves that shell towards the truth;
  shape   the same against the part of (s truth - map)_k orthogonal to map_k (shape, not
          amplitude);
  snr_k   |mean G_k|^2 / mean |G_k|^2 over the batches (1/batches for pure noise): how
          consistent that shell's gradient is from batch to batch;
  fsc_k   FSC of map and aligned truth in that shell.
If cos_k is not clearly > 0 in the shells where FSC is low, no per-frequency step size can move the
coarse shape the right way: the critic's gradient itself is the limit.

  python bench/critic_gradient.py --particles=P.star --truth=T.mrc [--box=32] [--steps=600]
      [--batches=100] [--lowpass=0] MAP
"""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("map")
    p.add_argument("--particles", required=True)
    p.add_argument("--truth", required=True)
    p.add_argument("--box", type=int, default=32)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batches", type=int, default=100)
    p.add_argument("--lowpass", type=float, default=0.0)
    p.add_argument("--shift_px", type=float, default=1.5)
    p.add_argument("--seed", type=int, default=7)
    a = p.parse_args()
    from tfcryogan import cli
    cli.import_tensorflow_quietly()
    import tensorflow as tf
    import critic_rank
    import critic_separation
    from tfcryogan import data as data_lib, io
    from tfcryogan.evaluation import align as align_lib, fsc as fsc_lib
    from tfcryogan.physics import fourier
    from tfcryogan.training import losses
    data = data_lib.load_particles(a.particles, box=a.box)
    vol = data_lib.on_training_grid(*io.read_volume(a.map), data, a.map)
    vol = np.maximum(vol, 0.0).astype(np.float32)
    truth = data_lib.on_training_grid(*io.read_volume(a.truth), data, a.truth)
    res = align_lib.align(truth, vol)
    t = res.aligned_volume
    s = float(np.sum(t * vol) / np.sum(t * t))
    print(f"truth aligned onto the map: correlation {res.correlation:.3f}, flipped {res.flipped}, "
          f"scale {s:.3g}", flush=True)
    with critic_rank.fixed_map_trainer(data, vol, a.steps, a.lowpass,
                                       a.shift_px * data.pixel_size_in, a.seed) as trainer:
        mean, se = critic_separation.wasserstein_estimate(trainer, a.steps)
        print(f"critic after {a.steps} steps: W {mean:.3f} +- {se:.3f}", flush=True)
        model = trainer.model
        template = model.generator.template

        @tf.function
        def grad_fn(ctf, seed):
            with tf.GradientTape() as tape:
                fake = model.preprocess(model.simulate(ctf, seed))
                g_loss = losses.generator_loss(model.critic_scores(fake), model.global_batch)
            return tape.gradient(g_loss, template)

        batches = trainer.batches(a.steps)
        grads = []
        for i in range(a.batches):
            batch = next(batches)
            trainer.step(batch)  # the critic keeps training, as in a run
            ctf = batch[0]["ctf"][:, 0]
            grad = grad_fn(ctf, tf.constant([a.seed, 1000 + i], tf.int64))
            grads.append(np.fft.rfftn(grad.numpy()))
    G = np.stack(grads)
    Gm = G.mean(0)
    D = np.fft.rfftn(s * t - vol)
    V = np.fft.rfftn(vol)
    k = np.rint(np.sqrt(fourier.squared_frequency(data.box, 3).numpy())).astype(int)
    fsc = fsc_lib.fsc(vol, t).numpy()
    print(f"{'shell':>5s} {'A':>7s} {'cos(-G, truth-map)':>19s} {'shape only':>11s} {'snr':>7s} "
          f"{'fsc':>6s}")
    for sh in range(1, data.box // 2 + 1):
        m = k == sh
        num = np.real(np.sum(-Gm[m] * np.conj(D[m])))
        cos = num / (np.linalg.norm(Gm[m]) * np.linalg.norm(D[m]) + 1e-30)
        # The part of (truth - map) orthogonal to the map in this shell: a change of shape, not
        # of the shell's amplitude (which the per-image normalisation and scale calibration see
        # differently).
        d = D[m] - np.real(np.sum(D[m] * np.conj(V[m]))) / np.sum(np.abs(V[m]) ** 2) * V[m]
        shape = np.real(np.sum(-Gm[m] * np.conj(d))) / (
            np.linalg.norm(Gm[m]) * np.linalg.norm(d) + 1e-30)
        snr = np.sum(np.abs(Gm[m]) ** 2) / np.mean(np.sum(np.abs(G[:, m]) ** 2, axis=1))
        print(f"{sh:5d} {data.box * data.pixel_size / sh:7.1f} {cos:19.3f} {shape:11.3f} "
              f"{snr:7.3f} {fsc[sh]:6.3f}")


if __name__ == "__main__":
    main()
