"""The training driver: inputs, strategy, models, checkpoints, summaries, progress and outputs.

:func:`train` is ``bin/train``'s job: it reads what a :class:`~tfcryogan.training.config.TrainConfig`
names (particles, ground truth, noise images), builds a :class:`Trainer` and runs it.

A :class:`Trainer` builds the models under the strategy's scope, restores the last checkpoint of
its run folder if there is one (``resumed from step K``), then runs the distributed ``tf.function``
step until ``max_steps`` or the ``max_minutes`` budget, writing checkpoints and the current map
every ``checkpoint_every`` steps and at the end. Its public API (:meth:`Trainer.step`,
:meth:`Trainer.set_progress`, :meth:`Trainer.batches`) lets tests and benches drive a run one step
at a time.
"""

import dataclasses
import os
import sys
import time
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from tfcryogan import data as data_lib
from tfcryogan import demo, io, simulator
from tfcryogan.errors import InputError
from tfcryogan.models.critic import build_critic
from tfcryogan.models.generator import (build_generator, random_basis_volumes,
                                        random_initial_volume)
from tfcryogan.physics import fourier, noise as noise_lib, projector
from tfcryogan.progress import Progress, format_duration
from tfcryogan.training import config as config_lib
from tfcryogan.training import strategy as strategy_lib
from tfcryogan.training.cryogan import CryoGAN
from tfcryogan.training.run_folder import RunFolder, restore_checkpoint


def _stderr(line):
    print(line, file=sys.stderr, flush=True)


@dataclasses.dataclass
class Inputs:
    """What a run reads besides its settings: the particles (:class:`~tfcryogan.data.ParticleData`),
    the ground truth on the training grid (or None) and the noise images (or None)."""

    data: data_lib.ParticleData
    ground_truth: Optional[np.ndarray] = None
    noise_images: Optional[data_lib.ParticleData] = None


def load_inputs(config, log=_stderr):
    """Read the particles, ground truth and noise images ``config`` names (``particles='demo'``
    makes the built-in data set in ``output_dir/demo_data`` first). Raises
    :class:`~tfcryogan.errors.InputError` on bad input, before any training."""
    particles, truth_path = config.particles, config.ground_truth
    if particles == "demo":
        particles, truth = demo.demo_particles(
            os.path.join(os.path.abspath(config.output_dir), "demo_data"), log=log)
        truth_path = truth_path or truth
    data = data_lib.load_particles(particles, box=config.box,
                                   invert_contrast=config.invert_contrast,
                                   skip_nonfinite=config.skip_nonfinite, log=log)
    noise_images = None
    if config.noise_from:
        noise_images = data_lib.load_noise_images(config.noise_from, data.box, data.pixel_size,
                                                  log=log)
    ground_truth = None
    if truth_path:
        truth, truth_px = io.read_volume(truth_path)
        ground_truth = data_lib.on_training_grid(truth, truth_px, data, truth_path)
    return Inputs(data, ground_truth, noise_images)


def train(config, log=_stderr):
    """Run ``bin/train``'s job: validate ``config``, read the inputs, train (resuming a run
    already in the folder, or replacing it with ``restart``). Returns ``(trainer, record)``:
    ``record`` is what ``run.json`` holds."""
    config.validate()
    inputs = load_inputs(config, log)
    trainer = Trainer(config, inputs.data, ground_truth=inputs.ground_truth,
                      noise_images=inputs.noise_images, log=log)
    return trainer, trainer.run()


class Trainer:
    """One training run (see the module docstring).

    Args:
      config: :class:`~tfcryogan.training.config.TrainConfig`.
      data: the particles (:class:`~tfcryogan.data.ParticleData`).
      ground_truth: ``[N, N, N]`` map on the training grid, for the final FSC (or None).
      noise_images: noise images (:class:`~tfcryogan.data.ParticleData`) for ``noise='patches'``
        or as the source of the ``colored`` noise's spectrum (default: the particles'
        background).
      log: receives the lines for the user.
      make_generator: ``make_generator(settings, name)`` builds the generator and its moving
        average (default :func:`~tfcryogan.models.generator.build_generator`; a bench may pass a
        subclass).
    """

    def __init__(self, config, data, ground_truth=None, noise_images=None, log=_stderr,
                 make_generator=build_generator):
        self.config = config.validate()
        self.data = data
        self.ground_truth = ground_truth
        self.noise_images = noise_images
        self.log = log
        self.strategy, self.strategy_text = strategy_lib.make_strategy(config.strategy,
                                                                       config.cpu_replicas)
        self.worker_index, self.num_workers, self.is_chief = strategy_lib.worker_info(
            self.strategy)
        replicas = self.strategy.num_replicas_in_sync
        if config.batch_size % replicas:
            raise InputError(f"--batch_size={config.batch_size} must be divisible by the "
                             f"{replicas} replicas")
        self.run_folder = RunFolder(config.output_dir, self.is_chief, self.worker_index)
        if config.restart and self.is_chief:
            self.run_folder.clear()
        self.settings = self._settings()
        self.run_folder.check_resume(self.settings,
                                     config_lib.fixed_settings() + ["critic_batch_group"])
        self._build(make_generator)
        self._step_fn = None
        self._agree_fn = None
        self._last_spread = None

    # ------------------------------------------------------------------ set-up
    def _settings(self):
        """``run.json``'s ``settings``: the config, the training grid and the effective derived
        values."""
        c, data = self.config, self.data
        replica_batch = c.batch_size // self.strategy.num_replicas_in_sync
        return {**c.settings(), "box": data.box, "pixel_size": round(data.pixel_size, 6),
                "critic_batch_group": c.batch_statistics_group(replica_batch),
                "generator_batch_count": c.generator_batch_count(),
                "optics": [float(x) for x in data.ctf_rows()[0, 3:6]]}

    def _noise_model(self):
        c = self.config
        if c.noise == "colored":
            source = self.noise_images or self.data
            return noise_lib.ColoredNoise(data_lib.estimate_noise_psd(source, seed=c.seed))
        return noise_lib.make_noise_model(c.noise)

    def _build(self, make_generator):
        c, data, s = self.config, self.data, self.settings
        noise_model = self._noise_model()
        keras.utils.set_random_seed(c.seed)  # weight initialisation: the same for every run
        with self.strategy.scope():
            self.generator = make_generator(s, "generator")
            self.ema_generator = make_generator(s, "ema_generator")
            self.critic = build_critic(data.box, c.critic_channels, s["critic_batch_group"],
                                       c.mixed_precision)
            self.image_formation = simulator.ImageFormation(
                data.box, data.pixel_size, noise_model,
                shift_std_px=c.shift_std(data.pixel_size) / data.pixel_size,
                learn_shift=c.learn_shift)
            self.model = CryoGAN(self.generator, self.critic, self.image_formation, c,
                                 ema_generator=self.ema_generator)
            z = tf.zeros([1, c.latent_dim])
            self.generator(z)
            self.ema_generator(z)
            self.generator.template.assign(self._initial_volume())
            if c.latent_dim:
                self.generator.basis.assign(random_basis_volumes(c.latent_dim, data.box,
                                                                 c.mask_radius, c.seed))
            for ema, w in zip(self.ema_generator.weights, self.generator.weights):
                ema.assign(w)
            self.d_optimizer = keras.optimizers.Adam(c.critic_lr, beta_1=c.beta_1,
                                                     beta_2=c.beta_2)
            self.g_optimizer = keras.optimizers.Adam(c.generator_lr, beta_1=c.beta_1,
                                                     beta_2=c.beta_2)
            if c.mixed_precision:  # float16 critic: dynamic loss scaling for both updates
                self.d_optimizer = keras.optimizers.LossScaleOptimizer(self.d_optimizer)
                self.g_optimizer = keras.optimizers.LossScaleOptimizer(self.g_optimizer)
            self.model.compile(self.d_optimizer, self.g_optimizer)
            self.checkpoint = tf.train.Checkpoint(
                generator=self.generator, ema_generator=self.ema_generator, critic=self.critic,
                image_formation=self.image_formation, step=self.model.step,
                d_optimizer=self.d_optimizer, g_optimizer=self.g_optimizer)
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.run_folder.checkpoint_dir,
                                                  max_to_keep=2)
        self.summary_writer = tf.summary.create_file_writer(self.run_folder.log_dir)

    def _initial_volume(self):
        """The starting template: ``random`` (smooth random density), ``zero``, or a map file
        (resampled to the training grid, scaled to maximum 1)."""
        c, data = self.config, self.data
        if c.initial_volume == "zero":
            return tf.zeros([data.box] * 3)
        if c.initial_volume == "random":
            return random_initial_volume(data.box, c.mask_radius, c.seed)
        volume, voxel = io.read_volume(c.initial_volume)
        volume = data_lib.on_training_grid(volume, voxel, data, c.initial_volume)
        return tf.maximum(tf.constant(volume), 0.0) / max(float(volume.max()), 1e-12)

    def calibrate_scales(self):
        """Set the signal scale so that the simulated images of the starting volume have the real
        data's SNR (a fresh run only; a resumed run restores its own scales).

        The real images are normalised per image, so their variance outside the support (noise
        only) is the noise's share of their total variance: SNR = (1 - share) / share. The noise
        scale stays 1 and the signal scale is ``sqrt(SNR / var(clean projections))``.
        Returns the estimated SNR in dB (or None when there is no signal to calibrate)."""
        c, data = self.config, self.data
        plan = data_lib.BatchPlan(128, 1, c.seed + 99)
        real = next(iter(data_lib.make_dataset(data, plan)))["real"][:, 0]
        background = 1.0 - tf.cast(
            fourier.centred_radius_3d(data.box)[data.box // 2] <= c.mask_radius * data.box,
            tf.float32)
        share = float(tf.reduce_sum(tf.reduce_mean(tf.square(real), 0) * background) /
                      tf.reduce_sum(background))
        share = min(max(share, 0.02), 0.99)
        snr = (1.0 - share) / share
        params = simulator.sample_parameters(tf.constant([c.seed, 98], tf.int64), 128,
                                             data.ctf_rows(), 0.0)
        spectrum = projector.volume_spectrum(self.generator.basis_volumes()[:1])
        clean = simulator.project(spectrum, params["rotations"], params["origins"],
                                  params["ctf"], data.box, data.pixel_size)
        clean_var = float(tf.reduce_mean(tf.math.reduce_variance(clean, axis=[1, 2])))
        if clean_var <= 0:
            return None
        self.image_formation.set_scales(signal_scale=float(np.sqrt(snr / clean_var)),
                                        noise_scale=1.0)
        return 10.0 * np.log10(snr)

    def restore(self):
        """Restore the last checkpoint of the run folder; returns its step (0 if none). Every
        worker restores the chief's (the shared folder's) checkpoint, so that all resume at one
        step."""
        latest = tf.train.latest_checkpoint(self.run_folder.file("checkpoints"))
        if latest is None:
            return 0
        restore_checkpoint(self.checkpoint, latest, "use --restart or another --output_dir")
        step = int(self.model.step.numpy())
        self.log(f"resumed from step {step} ({latest})")
        return step

    # ------------------------------------------------------------------ the step
    def step(self, batch):
        """One distributed training step (``n_critic`` critic updates, one generator update, the
        moving average) on ``batch`` (an element of :meth:`batches`); returns the metrics summed
        over replicas as a dict of scalar tensors."""
        if self._step_fn is None:
            model, strategy = self.model, self.strategy

            @tf.function
            def step_fn(batch):
                per_replica = strategy.run(model.train_step, args=(batch,))
                metrics = {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                           for k, v in per_replica.items()}
                model.update_ema()
                model.step.assign_add(1)
                return metrics

            self._step_fn = step_fn
        return self._step_fn(batch)

    def set_progress(self, progress):
        """Set what follows the run's progress (0 to 1): the cosine decay of both learning rates
        from their starting values to ``final_lr_fraction`` of them, and the critic's low-pass."""
        c = self.config
        progress = min(max(float(progress), 0.0), 1.0)
        f = c.final_lr_fraction + (1.0 - c.final_lr_fraction) * 0.5 * (
            1.0 + np.cos(np.pi * progress))
        self.d_optimizer.learning_rate.assign(c.critic_lr * f)
        self.g_optimizer.learning_rate.assign(c.generator_lr * f)
        self.model.progress.assign(progress)

    def _agree(self, progress, out_of_time):
        """The run's progress and stop decision, the same on every worker.

        The workers of a multi-worker run have their own clocks: a schedule driven by the
        wall-clock budget would differ between them (their mirrored weights would drift apart)
        and they must stop at the same step. So both go through one collective: the mean
        progress, and stop when any worker is out of time. Returns ``(progress, out_of_time)``."""
        if self.num_workers == 1:
            return float(progress), bool(out_of_time)
        if self._agree_fn is None:
            strategy = self.strategy

            @tf.function
            def agree_fn(values):
                per_replica = strategy.run(tf.identity, args=(values,))
                return strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)

            self._agree_fn = agree_fn
        mean = self._agree_fn(tf.constant([progress, 1.0 if out_of_time else 0.0], tf.float32))
        return float(mean[0]), bool(mean[1] > 0)

    def batches(self, start_step=0):
        """An iterator over the distributed input from ``start_step`` on: each worker's pipeline
        reads only its replicas' slices of the global batch (``data.BatchPlan``), whatever the
        number of workers and devices."""
        c = self.config
        patches = self.noise_images if c.noise == "patches" else None

        def per_worker(context):
            local = context.num_replicas_in_sync // context.num_input_pipelines
            plan = data_lib.BatchPlan(c.batch_size, c.n_critic, c.seed,
                                      num_replicas=context.num_replicas_in_sync,
                                      first_replica=context.input_pipeline_id * local,
                                      local_replicas=local)
            return data_lib.make_dataset(self.data, plan, start_step, patches)

        return iter(self.strategy.distribute_datasets_from_function(per_worker))

    # ------------------------------------------------------------------ outputs
    def volume(self, ema=True):
        """The current output map ``[N, N, N]`` float32 (moving-average weights by default)."""
        generator = self.ema_generator if ema else self.generator
        return generator(tf.zeros([1, self.config.latent_dim]))[0].numpy()

    def spread(self):
        """The output generator's spread over 16 fixed codes
        (:meth:`~tfcryogan.models.generator.ConformationGenerator.spread`)."""
        z = tf.random.stateless_normal([16, self.config.latent_dim], [self.config.seed, 555])
        return float(self.ema_generator.spread(z))

    def write_outputs(self, step, wall, metrics, final=False):
        """Write ``volume.mrc`` and ``run.json`` (and with a ground truth at the end ``fsc.csv``,
        ``fsc.png``), atomically, chief only; returns the record."""
        folder = self.run_folder
        volume_path = folder.write_map("volume.mrc", self.volume(), self.data.pixel_size)
        scales = {k: float(v) for k, v in self.image_formation.scales().items()}
        record = {
            "settings": self.settings, "step": int(step), "wall_seconds": round(wall, 1),
            "finished": bool(final), "strategy": self.strategy_text,
            "particles": self.data.path, "n_particles": len(self.data),
            "figures": {**{k: float(v) for k, v in metrics.items()},
                        "signal_scale": scales["signal_scale"],
                        "noise_scale": scales["noise_scale"],
                        "shift_std_A": scales["shift_std_px"] * self.data.pixel_size},
            "outputs": {"volume": volume_path, "checkpoints": folder.file("checkpoints"),
                        "logs": folder.file("logs")},
        }
        if self.config.latent_dim:
            record["figures"]["conformation_spread"] = self.spread()
        if final and self.ground_truth is not None and self.is_chief:
            record["fsc"] = self.write_fsc()
        folder.write_record(record)
        return record

    def write_fsc(self):
        """FSC of the output map against the ground truth after alignment: ``fsc.csv`` and
        ``fsc.png``; returns the resolutions."""
        from tfcryogan.evaluation import report  # pylint: disable=import-outside-toplevel
        result = report.compare_maps(self.volume(), self.ground_truth, self.data.pixel_size,
                                     align=True)
        report.write_fsc_csv(self.run_folder.file("fsc.csv"), result)
        report.plot_fsc(self.run_folder.file("fsc.png"), [("reconstruction", result)])
        return {k: v for k, v in result.items() if k.startswith("resolution_")
                or k.startswith("fraction_")}

    def summaries(self, step, metrics, images=None):
        """TensorBoard scalars (metrics, learned scalars, spread) and, with ``images``, the
        map's central slices and real vs simulated critic inputs."""
        with self.summary_writer.as_default(step=step):
            for k, v in metrics.items():
                tf.summary.scalar(k, v)
            scales = self.image_formation.scales()
            tf.summary.scalar("noise_scale", scales["noise_scale"])
            tf.summary.scalar("signal_scale", scales["signal_scale"])
            tf.summary.scalar("shift_std_A", scales["shift_std_px"] * self.data.pixel_size)
            if self.config.latent_dim:
                self._last_spread = self.spread()
                tf.summary.scalar("conformation_spread", self._last_spread)
            if images is not None:
                vol = self.volume()
                c = vol.shape[0] // 2
                slices = np.stack([vol[c], vol[:, c], vol[:, :, c]])
                slices = (slices - slices.min()) / (np.ptp(slices) + 1e-12)
                tf.summary.image("volume_central_slices", slices[..., None], max_outputs=3)
                tf.summary.image("real_vs_simulated", images, max_outputs=1)

    def image_grid(self, batch):
        """A grid of 8 real (top) and 8 simulated (bottom) critic inputs, ``[1, 2N, 8N, 1]``."""
        local = self.strategy.experimental_local_results
        real, ctf = local(batch["real"])[0], local(batch["ctf"])[0]
        patches = local(batch["patches"])[0] if "patches" in batch else None
        k = min(8, real.shape[0])
        fake = self.image_formation.simulate(self.generator, ctf[:k, 0],
                                             tf.constant([self.config.seed, 999], tf.int64), k,
                                             patches=None if patches is None else patches[:k, 0])
        rows = [tf.concat(tf.unstack(self.model.preprocess(x)), axis=1)
                for x in (real[:k, 0], fake)]
        grid = tf.concat(rows, axis=0)
        grid = (grid - tf.reduce_min(grid)) / (tf.reduce_max(grid) - tf.reduce_min(grid) + 1e-8)
        return grid[None, :, :, None]

    # ------------------------------------------------------------------ the run
    def run(self):
        """Train to ``max_steps`` or the ``max_minutes`` budget (resuming the run folder's last
        checkpoint), with progress output; writes the outputs and returns the record."""
        c = self.config
        start = self.restore()
        if start == 0:
            snr_db = self.calibrate_scales()
            if snr_db is not None:
                self.log(f"the particles' SNR is about {snr_db:.1f} dB (variance outside the "
                         "support); simulated images start at the same SNR")
        iterator = self.batches(start)
        t0 = time.monotonic()
        budget = c.max_minutes * 60.0 if c.max_minutes > 0 else float("inf")
        previous_wall = self.run_folder.previous_wall_seconds() if start else 0.0
        self.log(f"training on {len(self.data)} particles ({self.data.box} px, "
                 f"{self.data.pixel_size:.3f} A/px), {self.strategy_text}, batch {c.batch_size}, "
                 f"{c.n_critic} critic steps per volume step")
        bar = Progress(c.max_steps, "train", unit="step", start=start, budget=budget)
        step, metrics = start, {}
        stopped_by_time = False
        while step < c.max_steps:
            elapsed = time.monotonic() - t0
            progress, out_of_time = self._agree(
                max(step / c.max_steps, (elapsed + previous_wall) / (budget + previous_wall)),
                elapsed >= budget)
            if out_of_time:
                stopped_by_time = True
                break
            self.set_progress(progress)
            batch = next(iterator)
            metrics = {k: float(v) for k, v in self.step(batch).items()}
            step += 1
            if not all(np.isfinite(v) for v in metrics.values()):
                raise RuntimeError(f"training diverged at step {step} (metrics {metrics}); "
                                   "lower --critic_lr and --generator_lr")
            if step % c.summary_every == 0 or step == c.max_steps:
                grid = self.image_grid(batch) if step % (10 * c.summary_every) == 0 else None
                self.summaries(step, metrics, grid)
            if step % c.checkpoint_every == 0:
                self.manager.save(checkpoint_number=step)
                self.write_outputs(step, previous_wall + time.monotonic() - t0, metrics)
            extra = f"W={metrics['wasserstein']:.3f}"
            if self._last_spread is not None:
                extra += f" spread={self._last_spread:.0%}"
            bar.update(step, extra=extra)
        bar.close()
        self.manager.save(checkpoint_number=step)
        wall = previous_wall + time.monotonic() - t0
        record = self.write_outputs(step, wall, metrics, final=True)
        self.summary_writer.flush()
        self.run_folder.remove_scratch()
        if stopped_by_time:
            self.log(f"stopped at step {step}: --max_minutes={c.max_minutes:g} reached "
                     f"({format_duration(time.monotonic() - t0)})")
        return record
