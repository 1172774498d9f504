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
With --learn_scales the candidate's signal and noise scales learn as in training (its volumes stay
fixed), so that no candidate is judged on a calibration error of the scales.

--statistic=moments scores each candidate instead by its images' second moments
(``tfcryogan.evaluation.image_moments``: in-plane-rotation-invariant ring correlations, Kam's):
the per-entry chi^2 of the difference between the mean moments of 20,000 simulated images and of
the real ones (1 when they are indistinguishable), at the candidate's best signal scale (a
golden-section search, since a 4% error of the scale alone moves it by 1).

  python bench/multi.py --part=coverage --box=32      # once: the data, frames and a trained run
  python bench/critic_separation.py [--steps=600] [--seed=0] [--statistic=critic|moments]
      [--learn_scales] [--candidates=answer,affine,none,trained,frames]
      [--settings=critic_channels=16,n_critic=2]
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
    q = multi.whole_particle_basis(template.reshape(shape))
    parts = (basis @ q) @ q.T
    return parts * (np.linalg.norm(basis, axis=1) / np.linalg.norm(parts, axis=1))[:, None]


def one_frame_each(settings, name):
    """A generator (template: the frames' mean, basis: each frame minus it) that draws one frame
    per image, uniformly: frame ``floor(K * Phi(z_0))`` instead of the linear map's ``z`` (the
    Trainer's ``make_generator`` hook)."""
    import tensorflow as tf
    from tfcryogan.models.generator import ConformationGenerator

    class OneFrameEach(ConformationGenerator):
        def coefficients(self, z):
            k = self.latent_dim
            u = 0.5 * (1.0 + tf.math.erf(z[:, 0] / np.sqrt(2.0)))
            index = tf.minimum(tf.cast(tf.floor(u * k), tf.int32), k - 1)
            return tf.concat([tf.ones([tf.shape(z)[0], 1]), tf.one_hot(index, k)], axis=1)

    return OneFrameEach(settings["box"], settings["latent_dim"], settings["symmetry"],
                        settings["mask_radius"], name=name)


#: The TrainConfig settings :func:`candidate_trainer` sets itself (not --settings).
CANDIDATE_SETTINGS = ("particles", "output_dir", "latent_dim", "seed", "lowpass_start",
                      "learn_shift", "shift_std_A", "max_steps")


def candidate_trainer(data, template, basis, seed, scratch, discrete=False, max_steps=20000,
                      overrides=None):
    """A Trainer (in the emptied folder ``scratch``) whose generator is the candidate, linear or
    with ``discrete`` one basis volume per image (:func:`one_frame_each`), calibrated to the
    data's SNR as a fresh run is; full resolution, particle shifts fixed at the true 2 A;
    ``overrides``: further TrainConfig settings (e.g. the critic's)."""
    import multi
    from tfcryogan.models.generator import build_generator
    from tfcryogan.training import loop
    from tfcryogan.training.config import TrainConfig
    shutil.rmtree(scratch, ignore_errors=True)
    config = TrainConfig(particles=data.path, output_dir=scratch, latent_dim=len(basis),
                         seed=seed, lowpass_start=0.0, learn_shift=False, shift_std_A=2.0,
                         max_steps=max_steps, **(overrides or {}))
    trainer = loop.Trainer(config, data, log=lambda line: None,
                           make_generator=one_frame_each if discrete else build_generator)
    multi.set_linear_model(trainer.generator, template, basis)
    trainer.calibrate_scales()
    return trainer


def separation(data, template, basis, steps, seed, scratch, discrete=False, learn_scales=False,
               overrides=None):
    """Train a fresh critic against the fixed candidate (linear, or with ``discrete`` one basis
    volume per image, :func:`one_frame_each`) and the real particles ``data``; returns the mean
    and standard error of its Wasserstein estimate over the last half of ``steps``."""
    trainer = candidate_trainer(data, template, basis, seed, scratch, discrete, max_steps=steps,
                                overrides=overrides)
    if learn_scales:  # the candidate's volumes stay as they are, its signal and noise scales learn
        trainer.generator.trainable = False
    else:  # the candidate stays as it is, at the calibrated scales
        trainer.g_optimizer.learning_rate.assign(0.0)
    result = wasserstein_estimate(trainer, steps)
    shutil.rmtree(scratch, ignore_errors=True)
    return result


def wasserstein_estimate(trainer, steps):
    """Run ``steps`` training steps of ``trainer`` (whose candidate is held as the caller set it)
    and return the mean and standard error of the critic's Wasserstein estimate over the last
    half; prints the running estimate every 100 steps."""
    batches = trainer.batches(0)
    w = []
    for i in range(steps):
        w.append(float(trainer.step(next(batches))["wasserstein"]))
        if (i + 1) % 100 == 0:
            print(f"    step {i + 1}/{steps}: W {np.mean(w[-100:]):.3f}", flush=True)
    tail = np.array(w[steps // 2:])
    return float(tail.mean()), float(tail.std() / np.sqrt(len(tail)))


def real_moments(data):
    """The image moments of every real particle of ``data`` (normalised per image, as the critic
    sees them): ``(moments, mean, inverse_variance)``."""
    import tensorflow as tf
    from tfcryogan import data as data_lib
    from tfcryogan.evaluation import image_moments
    from tfcryogan.physics.fourier import normalize_images
    moments = image_moments.ImageMoments(data.box)
    batches = (normalize_images(b["real"][:, 0]) for b in data_lib.make_dataset(
        data, data_lib.BatchPlan(250, 1, 97)))
    # Each of the BatchPlan's batches is a random draw: enough of them visit every particle
    # about once on average (the set's size in images).
    mean, variance, _ = image_moments.data_moments(moments, batches, len(data))
    return moments, tf.constant(mean, tf.complex64), image_moments.inverse_variance(variance)


def moment_separation(data, real, template, basis, seed, scratch, discrete=False,
                      n_images=20000):
    """Chi^2 per entry of the candidate's image moments against the real particles' (``data``,
    ``real``: their :func:`real_moments`; see the module docstring), minimised over the signal
    scale; returns ``(chi2, scale_factor)``."""
    import tensorflow as tf
    from tfcryogan.evaluation import image_moments
    from tfcryogan.physics.fourier import normalize_images
    trainer = candidate_trainer(data, template, basis, seed, scratch, discrete)
    model, formation = trainer.model, trainer.image_formation
    moments, target, inverse = real
    rows = data.ctf_rows()
    batch = 250

    def chi2(factor, signal=float(formation.scales()["signal_scale"])):
        formation.set_scales(signal_scale=signal * factor)
        total = 0.0
        for i in range(n_images // batch):
            ctf = tf.constant(rows[np.arange(i * batch, (i + 1) * batch) % len(rows)])
            images = model.simulate(ctf, tf.constant([seed + 7, i], tf.int64), global_batch=batch)
            total += moments.mean(normalize_images(images))
        mean = total / (n_images // batch)
        d = float(image_moments.mismatch(mean, target, inverse))
        return d / (1.0 / len(data) + 1.0 / (batch * (n_images // batch)))

    # Golden-section search of the scale factor in [0.8, 1.2] (the chi^2 is unimodal in it).
    lo, hi, g = 0.8, 1.2, (np.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = chi2(a), chi2(b)
    for _ in range(7):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = chi2(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = chi2(b)
    shutil.rmtree(scratch, ignore_errors=True)
    return (fa, a) if fa < fb else (fb, b)


def parse_settings(text, reserved=()):
    """``"key=value,key=value"`` -> TrainConfig overrides, each value converted to its field's
    type (:func:`tfcryogan.training.config.value_type`); exits with a one-line error on an
    unknown key, a key in ``reserved`` (the settings the calling bench sets itself) or a value
    of the wrong type (the Trainer checks the values themselves)."""
    import dataclasses
    from tfcryogan.training import config
    fields = {f.name: f for f in dataclasses.fields(config.TrainConfig)}
    out = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key not in fields:
            sys.exit(f"error: --settings: unknown setting {key!r}")
        if key in reserved:
            sys.exit(f"error: --settings: {key!r} is set by this bench (use its own flags)")
        kind = config.value_type(fields[key])
        try:
            out[key] = (value.lower() in ("1", "true")) if kind is bool else kind(value)
        except ValueError:
            sys.exit(f"error: --settings: {key}={value!r} expected {kind.__name__}")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/bench_multi")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--candidates", default="answer,affine,none,trained,frames",
                        help="comma list of the candidates to score")
    parser.add_argument("--statistic", default="critic", choices=["critic", "moments"],
                        help="score with a fresh critic, or with the image moments")
    parser.add_argument("--learn_scales", action="store_true",
                        help="critic: the candidate's signal and noise scales learn as in training "
                             "(its volumes stay fixed)")
    parser.add_argument("--settings", default="",
                        help="critic: further training settings of the fresh critic's run, "
                             "e.g. critic_channels=16,n_critic=2")
    args = parser.parse_args()
    overrides = parse_settings(args.settings, CANDIDATE_SETTINGS)
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
    scratch = os.path.join(args.work, "critic_separation")
    from tfcryogan import data as data_lib
    data = data_lib.load_particles(star)
    if args.statistic == "moments":
        print(f"image moments against the real particles ({star}): chi^2 per entry of the "
              "difference (1: indistinguishable), at each candidate's best signal scale:",
              flush=True)
        real = real_moments(data)
        for name in chosen:
            chi2, factor = moment_separation(data, real, *candidates[name], args.seed, scratch,
                                             discrete=name == "frames")
            print(f"  {name:8s} {chi2:.2f}  (signal scale x{factor:.3f} of the calibration)",
                  flush=True)
        return
    results = {}
    for name in chosen:
        print(f"  {name}: training a fresh critic for {args.steps} steps", flush=True)
        results[name] = separation(data, *candidates[name], args.steps, args.seed, scratch,
                                   discrete=name == "frames", learn_scales=args.learn_scales,
                                   overrides=overrides)
    print(f"critic's Wasserstein estimate against the real particles ({star}), mean of the last "
          f"{args.steps // 2} of {args.steps} steps (0: indistinguishable):")
    for name, (m, se) in results.items():
        print(f"  {name:8s} {m:.3f} +- {se:.3f}")


if __name__ == "__main__":
    main()
