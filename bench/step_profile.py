#!/usr/bin/env python3
"""Where one CryoGAN training step spends its time, at box 64 and 128.

For each box (a phantom data set made once with ``bin/simulate`` in --work; batch 32, 4 critic
updates per step, one map: ``half_maps=False``; the package's defaults otherwise) it times, each
as its own compiled function run --repeats times after a warm-up:

  input      one step's batch from the tf.data pipeline (read, resample, normalise), alone
  spectrum   the volume's 3D transform (2x padded), once per step
  simulate   one critic batch of simulated images (slices, shift, CTF, noise)
  critic     critic forward and backward on one real and one simulated batch (no penalty)
  penalty    the gradient penalty's double backward on one batch
  generator  the generator update's gradients (simulate, critic, back to the volume)
  step       the whole distributed step (4 critic updates, the generator update, the average)

and prints each in ms, with its share of the step counting the critic, penalty and simulate
parts 4 times. With --variants it also times the whole step of the step variants named there
(TrainConfig fields set to other values, e.g. ``jit_compile=True`` or ``half_maps=True``: the
default's two gold-standard halves in one step), so that a speed-up is measured beside the
default in the same run.

  python bench/step_profile.py [--boxes=64,128] [--repeats=10] [--work=/tmp/bench_profile]
      [--variants="jit_compile=True;n_critic=2"]
"""

import argparse
import dataclasses
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def dataset(work, box):
    """A phantom particle set at ``box`` (2,000 particles, -10 dB, CTFs, 2 px shifts)."""
    star = os.path.join(work, f"phantom_{box}.star")
    if not os.path.exists(star):
        subprocess.run([sys.executable, os.path.join(ROOT, "bin", "simulate"), "--volume=phantom",
                        f"--box={box}", f"--pixel_size={320.0 / box}", "--n_particles=2000",
                        "--snr_db=-10", f"--shift_std_A={640.0 / box}", f"--output={star}"],
                       check=True, stdout=subprocess.DEVNULL)
    return star


def timed(fn, repeats):
    """Mean seconds of ``fn()`` over ``repeats`` calls after two warm-up calls."""
    fn()
    fn()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats


def parse_variants(text):
    """``"a=1,b=x;c=2"`` -> ``[("a=1,b=x", {"a": 1, "b": "x"}), ("c=2", {"c": 2})]``."""
    from tfcryogan.training.config import TrainConfig, value_type
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    out = []
    for variant in [v.strip() for v in text.split(";") if v.strip()]:
        values = {}
        for item in variant.split(","):
            name, _, value = item.partition("=")
            if name not in fields:
                sys.exit(f"error: --variants: {name!r} is not a TrainConfig field")
            kind = value_type(fields[name])
            values[name] = (value.lower() in ("1", "true")) if kind is bool else kind(value)
        out.append((variant, values))
    return out


def profile(box, args):
    import tensorflow as tf

    from tfcryogan import data as data_lib
    from tfcryogan.physics import projector
    from tfcryogan.training import losses, loop
    from tfcryogan.training.config import TrainConfig

    star = dataset(args.work, box)
    data = data_lib.load_particles(star)
    config = TrainConfig(particles=star, output_dir=os.path.join(args.work, f"run_{box}"),
                         restart=True, checkpoint_every=10 ** 6, summary_every=10 ** 6,
                         half_maps=False)
    trainer = loop.Trainer(config, data, log=lambda line: None)
    model, critic, generator = trainer.model, trainer.critic, trainer.generator
    iterator = trainer.batches(0)
    batches = next(iterator)  # one per reconstruction (here one)
    batch = batches[0]
    real = model.preprocess(batch["real"][:, 0])
    ctf = batch["ctf"][:, 0]
    g = config.batch_size
    seed = tf.constant([1, 2], tf.int64)
    spectrum = projector.volume_spectrum(generator.basis_volumes())
    fake = model.preprocess(model.simulate(ctf, seed, spectrum=spectrum))
    epsilon = tf.random.uniform([g])

    @tf.function
    def spectrum_fn():
        return projector.volume_spectrum(generator.basis_volumes())

    @tf.function
    def simulate_fn():
        return model.preprocess(model.simulate(ctf, seed, spectrum=spectrum))

    @tf.function
    def critic_fn():
        with tf.GradientTape() as tape:
            loss = losses.critic_loss(critic(real, training=True), critic(fake, training=True), g)
        return tape.gradient(loss, critic.trainable_variables)

    @tf.function
    def penalty_fn():
        with tf.GradientTape() as tape:
            gp = losses.gradient_penalty(critic, real, fake, epsilon, g)
        return tape.gradient(gp, critic.trainable_variables)

    @tf.function
    def generator_fn():
        with tf.GradientTape() as tape:
            images = model.preprocess(model.simulate(ctf, seed))
            loss = losses.generator_loss(critic(images, training=True), g)
        return tape.gradient(loss, model.generator_variables())

    rows = {"input": timed(lambda: next(iterator), args.repeats),
            "spectrum": timed(spectrum_fn, args.repeats),
            "simulate": timed(simulate_fn, args.repeats),
            "critic": timed(critic_fn, args.repeats),
            "penalty": timed(penalty_fn, args.repeats),
            "generator": timed(generator_fn, args.repeats),
            "step": timed(lambda: trainer.step(batches), args.repeats)}
    variants = {}
    for name, values in parse_variants(args.variants):
        other = loop.Trainer(dataclasses.replace(config, output_dir=config.output_dir + "_v",
                                                 **values), data, log=lambda line: None)
        other_batch = next(other.batches(0))
        variants[name] = timed(lambda: other.step(other_batch), args.repeats)
    return rows, variants, config.n_critic


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boxes", default="64,128")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--work", default="/tmp/bench_profile")
    parser.add_argument("--variants", default="",
                        help="';'-separated variants, each 'field=value,...' of TrainConfig")
    args = parser.parse_args()
    from tfcryogan import cli
    tf = cli.import_tensorflow_quietly()
    os.makedirs(args.work, exist_ok=True)
    print(f"{os.cpu_count()} CPU cores, TensorFlow {tf.__version__}, GPUs: "
          f"{len(tf.config.list_physical_devices('GPU'))}")
    for box in [int(b) for b in args.boxes.split(",")]:
        rows, variants, n_critic = profile(box, args)
        step = rows["step"]
        per_step = {"input": 1, "spectrum": 1, "simulate": n_critic, "critic": n_critic,
                    "penalty": n_critic, "generator": 1}
        print(f"\nbox {box}, batch 32, {n_critic} critic updates per step: "
              f"{1.0 / step:.2f} steps/s")
        print(f"  {'part':10s}{'ms per call':>12s}{'calls/step':>11s}{'share of step':>15s}")
        for name, seconds in rows.items():
            calls = per_step.get(name, 1)
            share = "" if name == "step" else f"{100 * calls * seconds / step:13.0f} %"
            print(f"  {name:10s}{1000 * seconds:12.1f}{calls:11d}  {share}")
        accounted = sum(per_step[k] * rows[k] for k in per_step if k != "input")
        print(f"  the parts add up to {100 * accounted / step:.0f} % of the step (the input "
              "runs beside it, prefetched)")
        for name, seconds in variants.items():
            print(f"  variant {name}: {1000 * seconds:.1f} ms per step, {step / seconds:.2f} x "
                  "the default's rate")


if __name__ == "__main__":
    main()
