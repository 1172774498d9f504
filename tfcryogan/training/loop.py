"""The training driver: strategy, models, checkpoints, summaries, progress and outputs.

``train(config, data)`` builds everything under the strategy's scope, restores the last
checkpoint of ``output_dir`` if there is one (``resumed from step K``), then runs the distributed
``tf.function`` step until ``max_steps`` or the ``max_minutes`` budget, writing checkpoints and the
current volume every ``checkpoint_every`` steps and at the end. Only the chief writes outputs
(other workers of a multi-worker run write their checkpoints to a temporary folder, as TensorFlow's
guide prescribes).
"""

import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from tfcryogan import data as data_lib
from tfcryogan import io, simulator
from tfcryogan.physics import fourier, projector
from tfcryogan.errors import InputError
from tfcryogan.models.critic import batch_statistics_group, build_critic
from tfcryogan.models.generator import (basis_count, generator_from_settings,
                                        random_basis_volumes, random_initial_volume)
from tfcryogan.progress import Progress, format_duration
from tfcryogan.run_record import recorded_settings
from tfcryogan.training import strategy as strategy_lib
from tfcryogan.training.cryogan import CryoGAN, generator_batch_count


@dataclasses.dataclass
class TrainConfig:
    """Everything a training run needs besides the data (units: A, degrees; steps count
    generator updates)."""

    output_dir: str
    max_steps: int = 20000
    max_minutes: float = 0.0
    batch_size: int = 32
    n_critic: int = 4
    gp_weight: float = 10.0
    critic_lr: float = 3e-4
    generator_lr: float = 3e-3
    beta_1: float = 0.5
    beta_2: float = 0.9
    critic_channels: int = 16
    critic_batch_statistics: int = -1
    symmetry: str = "C1"
    latent_dim: int = 0
    n_basis: int = -1
    hidden: int = 64
    coefficient_map: str = "linear"
    translation_free_basis: bool = False
    positivity_weight: float = 10.0
    basis_decay: float = 0.0
    basis_warmup: float = 0.0
    basis_start_scale: float = 0.2
    generator_batches: int = -1
    mixed_precision: bool = False
    mask_radius: float = 0.45
    initial_volume: str = "random"
    noise: str = "white"
    shift_std_A: float = -1.0
    learn_shift: bool = True
    lowpass_start: float = 4.0
    lowpass_fraction: float = 0.8
    ema_decay: float = 0.995
    final_lr_fraction: float = 0.1
    seed: int = 0
    strategy: str = "auto"
    cpu_replicas: int = 1
    checkpoint_every: int = 500
    summary_every: int = 50
    flags: dict = dataclasses.field(default_factory=dict)

    # Settings a resumed run must share with the checkpoint it resumes.
    FIXED = ("batch_size", "n_critic", "critic_channels", "critic_batch_statistics", "symmetry",
             "latent_dim", "n_basis", "hidden", "coefficient_map", "translation_free_basis",
             "basis_decay", "noise", "seed", "box", "pixel_size")


_GENERATOR_ONLY = ("coefficient_map", "translation_free_basis", "n_basis", "hidden",
                   "basis_decay")


def changed_settings(previous, now):
    """Names in ``TrainConfig.FIXED`` whose value in a recorded run's ``previous`` settings differs
    from ``now`` (both dicts as in ``run.json``). A setting missing from an older record takes
    the value it had then; the generator's own settings do not matter for CryoGAN
    (``latent_dim == 0``)."""
    previous = recorded_settings(previous)
    names = TrainConfig.FIXED
    if previous.get("latent_dim", 0) == 0 and now.get("latent_dim", 0) == 0:
        names = [k for k in names if k not in _GENERATOR_ONLY]
    return [k for k in names if k in previous and previous[k] != now[k]]


def _write_json(path, record):
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2, sort_keys=True, default=str)
    os.replace(tmp, path)


class Trainer:
    """One training run (see the module docstring). ``log`` receives the lines for the user."""

    def __init__(self, config: TrainConfig, data: data_lib.ParticleData,
                 ground_truth: Optional[np.ndarray] = None, patches=None, log=None):
        self.config = config
        self.data = data
        self.ground_truth = ground_truth
        self.patches = patches
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.strategy, self.strategy_text = strategy_lib.make_strategy(config.strategy,
                                                                       config.cpu_replicas)
        self.worker_index, self.num_workers, self.is_chief = strategy_lib.worker_info(
            self.strategy)
        replicas = self.strategy.num_replicas_in_sync
        if config.batch_size % replicas:
            raise InputError(f"--batch_size={config.batch_size} must be divisible by the "
                             f"{replicas} replicas")
        self.output_dir = os.path.abspath(config.output_dir)
        os.makedirs(self.output_dir, exist_ok=True)
        self.record_path = os.path.join(self.output_dir, "run.json")
        self._check_resume_settings()
        self._build()

    # ------------------------------------------------------------------ set-up
    def _settings(self):
        values = dataclasses.asdict(self.config)
        values.update(box=self.data.box, pixel_size=round(self.data.pixel_size, 6),
                      n_basis=basis_count(self.config.latent_dim, self.config.n_basis,
                                          self.config.coefficient_map),
                      critic_batch_statistics=batch_statistics_group(
                          self.config.critic_batch_statistics, self.config.latent_dim,
                          self.config.batch_size // self.strategy.num_replicas_in_sync),
                      generator_batches=generator_batch_count(self.config.generator_batches,
                                                              self.config.latent_dim,
                                                              self.config.n_critic),
                      optics=[float(x) for x in self.data.ctf_rows()[0, 3:6]])
        return values

    def _check_resume_settings(self):
        if not os.path.exists(self.record_path):
            return
        try:
            with open(self.record_path, encoding="utf-8") as f:
                previous = recorded_settings(json.load(f).get("settings", {}))
        except (OSError, ValueError):
            return
        now = self._settings()
        changed = changed_settings(previous, now)
        if changed:
            k = changed[0]
            raise InputError(f"{self.record_path}: this folder holds a run with {k}="
                             f"{previous[k]} but now {k}={now[k]}; use another --output_dir "
                             "or the same settings to resume")

    def _build(self):
        c = self.config
        data = self.data
        noise_psd = None
        if c.noise == "colored":
            noise_psd = data_lib.estimate_noise_psd(self.patches or data, seed=c.seed)
        shift_std = c.shift_std_A if c.shift_std_A >= 0 else data.pixel_size
        keras.utils.set_random_seed(c.seed)  # weight initialisation: the same for every run
        with self.strategy.scope():
            settings = self._settings()
            self.generator = generator_from_settings(settings, "generator")
            self.ema_generator = generator_from_settings(settings, "ema_generator")
            critic = build_critic(data.box, base_channels=c.critic_channels,
                                  batch_statistics_group=settings["critic_batch_statistics"],
                                  mixed_precision=c.mixed_precision)
            self.model = CryoGAN(
                self.generator, critic, data.pixel_size, c.batch_size,
                ema_generator=self.ema_generator, n_critic=c.n_critic, gp_weight=c.gp_weight,
                noise_kind=c.noise, noise_psd=noise_psd,
                shift_std_px=shift_std / data.pixel_size, learn_shift=c.learn_shift,
                lowpass_start=c.lowpass_start, lowpass_fraction=c.lowpass_fraction,
                ema_decay=c.ema_decay, positivity_weight=c.positivity_weight,
                basis_decay=c.basis_decay, basis_warmup=c.basis_warmup,
                generator_batches=c.generator_batches, seed=c.seed)
            z = tf.zeros([1, c.latent_dim])
            self.generator(z)
            self.ema_generator(z)
            self.generator.template.assign(self._initial_volume())
            if self.generator.n_basis:
                # Random variation directions (symmetry breaking), up to basis_start_scale of
                # the starting template's maximum, which is 1 (or the template is zero).
                self.generator.basis.assign(random_basis_volumes(
                    self.generator.n_basis, data.box, c.mask_radius, c.seed,
                    c.basis_start_scale))
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
                generator=self.generator, ema_generator=self.ema_generator, critic=critic,
                scalars=[self.model.signal_scale_raw, self.model.noise_scale_raw,
                         self.model.shift_std_raw],
                step=self.model.step, d_optimizer=self.d_optimizer,
                g_optimizer=self.g_optimizer)
        ckpt_dir = os.path.join(self.output_dir, "checkpoints")
        log_dir = os.path.join(self.output_dir, "logs")
        self._scratch_dirs = []
        if not self.is_chief:  # TensorFlow's multi-worker rule: others write to a temporary place
            ckpt_dir = tempfile.mkdtemp(prefix=f"tfcryogan_worker{self.worker_index}_")
            log_dir = tempfile.mkdtemp(prefix=f"tfcryogan_logs{self.worker_index}_")
            self._scratch_dirs = [ckpt_dir, log_dir]
        self.manager = tf.train.CheckpointManager(self.checkpoint, ckpt_dir, max_to_keep=2)
        self.summary_writer = tf.summary.create_file_writer(log_dir)

    def _initial_volume(self):
        """The starting template: ``random`` (smooth random density), ``zero``, or a map file
        (resampled to the training grid)."""
        c, data = self.config, self.data
        if c.initial_volume == "zero":
            return tf.zeros([data.box] * 3)
        if c.initial_volume == "random":
            return random_initial_volume(data.box, c.mask_radius, c.seed)
        volume, voxel = io.read_volume(c.initial_volume)
        volume = data_lib.match_reference(volume, voxel, data, c.initial_volume)
        return tf.maximum(tf.constant(volume), 0.0) / max(float(volume.max()), 1e-12)

    def calibrate_scales(self):
        """Set the initial signal scale so that the simulated images of the starting volume have
        the real data's SNR (a fresh run only; a resumed run restores its own scales).

        The real images are normalised per image, so their variance outside the support (noise
        only) is the noise's share of their total variance: SNR = (1 - share) / share. The noise
        scale stays 1 and the signal scale is ``sqrt(SNR / var(clean projections))``.
        Returns the estimated SNR in dB (or None when there is no signal to calibrate)."""
        c, data, model = self.config, self.data, self.model
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
        model.set_scales(signal_scale=float(np.sqrt(snr / clean_var)), noise_scale=1.0)
        return 10.0 * np.log10(snr)

    def restore(self):
        """Restore the last checkpoint of the output folder; returns its step (0 if none)."""
        latest = tf.train.latest_checkpoint(os.path.join(self.output_dir, "checkpoints"))
        if latest is None:
            return 0
        self.checkpoint.restore(latest).expect_partial()
        step = int(self.model.step.numpy())
        self.log(f"resumed from step {step} ({latest})")
        return step

    # ------------------------------------------------------------------ the step
    def _distributed_step(self):
        model, strategy = self.model, self.strategy

        @tf.function
        def step_fn(batch):
            before = model.basis_before_update()
            per_replica = strategy.run(model.train_step, args=(batch,))
            metrics = {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                       for k, v in per_replica.items()}
            model.gate_basis(before)
            model.decay_basis()
            model.update_ema()
            model.step.assign_add(1)
            return metrics

        return step_fn

    def _set_schedules(self, progress):
        """Set what follows the run's progress (0 to 1): the cosine decay of both learning rates
        from their initial values to ``final_lr_fraction`` of them, the critic's low-pass, and the
        basis volumes' share of the generator's rate (a linear ramp over ``basis_warmup``)."""
        c = self.config
        progress = min(max(progress, 0.0), 1.0)
        f = c.final_lr_fraction + (1.0 - c.final_lr_fraction) * 0.5 * (
            1.0 + np.cos(np.pi * progress))
        self.d_optimizer.learning_rate.assign(c.critic_lr * f)
        self.g_optimizer.learning_rate.assign(c.generator_lr * f)
        self.model.lowpass_progress.assign(progress)
        if c.basis_warmup > 0:
            self.model.basis_rate.assign(min(progress / c.basis_warmup, 1.0))

    def _agree(self, progress, out_of_time):
        """The run's progress and stop decision, the same on every worker.

        The workers of a multi-worker run have their own clocks: a schedule driven by the
        wall-clock budget would differ between them (their mirrored weights would drift apart)
        and they must stop at the same step. So both go through one collective: the mean
        progress, and stop when any worker is out of time. Returns ``(progress, out_of_time)``."""
        if self.num_workers == 1:
            return float(progress), bool(out_of_time)
        if not hasattr(self, "_agree_fn"):
            strategy = self.strategy

            @tf.function
            def agree_fn(values):
                per_replica = strategy.run(lambda v: tf.identity(v), args=(values,))
                return strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)

            self._agree_fn = agree_fn
        mean = self._agree_fn(tf.constant([progress, 1.0 if out_of_time else 0.0], tf.float32))
        return float(mean[0]), bool(mean[1] > 0)

    def dataset(self, start_step):
        """The distributed input: each worker's pipeline reads only its replicas' slices of the
        global batch (``data.BatchPlan``), whatever the number of workers and devices."""
        c = self.config

        def per_worker(context):
            local = context.num_replicas_in_sync // context.num_input_pipelines
            plan = data_lib.BatchPlan(c.batch_size, c.n_critic, c.seed,
                                      num_replicas=context.num_replicas_in_sync,
                                      first_replica=context.input_pipeline_id * local,
                                      local_replicas=local)
            return data_lib.make_dataset(self.data, plan, start_step, self.patches)

        return self.strategy.distribute_datasets_from_function(per_worker)

    # ------------------------------------------------------------------ outputs
    def volume(self, ema=True):
        """The current output volume ``[N, N, N]`` float32 (EMA weights by default)."""
        generator = self.ema_generator if ema else self.generator
        return generator(tf.zeros([1, self.config.latent_dim]))[0].numpy()

    def write_outputs(self, step, wall, metrics, final=False):
        """Write ``volume.mrc`` and ``run.json`` (atomically; chief only)."""
        if not self.is_chief:
            return {}
        volume_path = os.path.join(self.output_dir, "volume.mrc")
        io.write_volume(volume_path, self.volume(), self.data.pixel_size)
        record = {
            "settings": self._settings(), "flags": self.config.flags, "step": int(step),
            "wall_seconds": round(wall, 1), "finished": bool(final),
            "strategy": self.strategy_text, "particles": self.data.path,
            "n_particles": len(self.data),
            "figures": {k: float(v) for k, v in metrics.items()},
            "outputs": {"volume": volume_path,
                        "checkpoints": os.path.join(self.output_dir, "checkpoints"),
                        "logs": os.path.join(self.output_dir, "logs")},
        }
        scales = {k: float(v) for k, v in self.model.scales().items()}
        record["figures"].update(
            signal_scale=scales["signal_scale"], noise_scale=scales["noise_scale"],
            shift_std_A=scales["shift_std_px"] * self.data.pixel_size)
        if self.generator.latent_dim:
            record["figures"]["conformation_spread"] = self.spread()
        if final and self.ground_truth is not None:
            record["fsc"] = self.write_fsc()
        _write_json(self.record_path, record)
        return record

    def write_fsc(self):
        """FSC of the output volume against the ground truth after alignment: ``fsc.csv`` and
        ``fsc.png``; returns the resolutions."""
        from tfcryogan.evaluation import report  # pylint: disable=import-outside-toplevel
        result = report.compare_maps(self.volume(), self.ground_truth, self.data.pixel_size,
                                     align=True)
        report.write_fsc_csv(os.path.join(self.output_dir, "fsc.csv"), result)
        report.plot_fsc(os.path.join(self.output_dir, "fsc.png"), [("reconstruction", result)])
        return {k: v for k, v in result.items() if k.startswith("resolution")
                or k.startswith("fraction")}

    def summaries(self, step, metrics, images=None):
        with self.summary_writer.as_default(step=step):
            for k, v in metrics.items():
                tf.summary.scalar(k, v)
            scales = self.model.scales()
            tf.summary.scalar("noise_scale", scales["noise_scale"])
            tf.summary.scalar("signal_scale", scales["signal_scale"])
            tf.summary.scalar("shift_std_A", scales["shift_std_px"] * self.data.pixel_size)
            if self.generator.latent_dim:
                self._last_spread = self.spread()
                tf.summary.scalar("conformation_spread", self._last_spread)
            if images is not None:
                vol = self.volume()
                c = vol.shape[0] // 2
                slices = np.stack([vol[c], vol[:, c], vol[:, :, c]])
                slices = (slices - slices.min()) / (np.ptp(slices) + 1e-12)
                tf.summary.image("volume_central_slices", slices[..., None], max_outputs=3)
                tf.summary.image("real_vs_simulated", images, max_outputs=1)

    def spread(self):
        """The output (EMA) generator's spread over 16 fixed codes (see
        :meth:`ConformationGenerator.spread`)."""
        z = tf.random.stateless_normal([16, self.config.latent_dim], [self.config.seed, 555])
        return float(self.ema_generator.spread(z))

    def image_grid(self, batch):
        """A grid of 8 real (top) and 8 simulated (bottom) critic inputs, ``[1, 2N, 8N, 1]``."""
        per_replica = self.strategy.experimental_local_results(batch["real"])[0]
        ctf = self.strategy.experimental_local_results(batch["ctf"])[0]
        k = min(8, per_replica.shape[0])
        real = self.model.preprocess(per_replica[:k, 0])
        fake = self.model.preprocess(self._simulate_local(ctf[:k, 0]))
        rows = [tf.concat(tf.unstack(x), axis=1) for x in (real, fake)]
        grid = tf.concat(rows, axis=0)
        grid = (grid - tf.reduce_min(grid)) / (tf.reduce_max(grid) - tf.reduce_min(grid) + 1e-8)
        return grid[None, :, :, None]

    def _simulate_local(self, ctf):
        """Simulated images outside the distributed step (for the summaries)."""
        model = self.model
        saved = model.global_batch
        model.global_batch = int(ctf.shape[0])
        try:
            return model.simulate(ctf, tf.constant([self.config.seed, 999], tf.int64))
        finally:
            model.global_batch = saved

    # ------------------------------------------------------------------ the run
    def run(self):
        c = self.config
        start = self.restore()
        if start == 0:
            snr_db = self.calibrate_scales()
            if snr_db is not None:
                self.log(f"the particles' SNR is about {snr_db:.1f} dB (variance outside the "
                         "support); simulated images start at the same SNR")
        step_fn = self._distributed_step()
        iterator = iter(self.dataset(start))
        t0 = time.monotonic()
        budget = c.max_minutes * 60.0 if c.max_minutes > 0 else float("inf")
        previous_wall = 0.0
        if start and os.path.exists(self.record_path):
            with open(self.record_path, encoding="utf-8") as f:
                previous_wall = float(json.load(f).get("wall_seconds", 0.0))
        self.log(f"training on {len(self.data)} particles ({self.data.box} px, "
                 f"{self.data.pixel_size:.3f} A/px), {self.strategy_text}, batch {c.batch_size}, "
                 f"{c.n_critic} critic steps per volume step")
        bar = Progress(c.max_steps, "train", unit="step", start=start, budget=budget)
        step, metrics = start, {}
        self._last_spread = None  # the generator's conformational spread, at summary steps
        stopped_by_time = False
        while step < c.max_steps:
            elapsed = time.monotonic() - t0
            progress, out_of_time = self._agree(
                max(step / c.max_steps, (elapsed + previous_wall) / (budget + previous_wall)),
                elapsed >= budget)
            if out_of_time:
                stopped_by_time = True
                break
            self._set_schedules(progress)
            batch = next(iterator)
            metrics = {k: float(v) for k, v in step_fn(batch).items()}
            step += 1
            if not all(np.isfinite(v) for v in metrics.values()):
                raise RuntimeError(f"training diverged at step {step} (metrics {metrics}); "
                                   "lower the learning rates")
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
        for folder in self._scratch_dirs:  # a non-chief worker's copies are not needed any more
            shutil.rmtree(folder, ignore_errors=True)
        if stopped_by_time:
            self.log(f"stopped at step {step}: --max_minutes={c.max_minutes:g} reached "
                     f"({format_duration(time.monotonic() - t0)})")
        return record


def remove_run(output_dir):
    """Delete a run folder's checkpoints and logs (for ``--restart``)."""
    for sub in ("checkpoints", "logs"):
        shutil.rmtree(os.path.join(output_dir, sub), ignore_errors=True)
    for name in ("run.json", "volume.mrc", "fsc.csv", "fsc.png"):
        path = os.path.join(output_dir, name)
        if os.path.exists(path):
            os.remove(path)
