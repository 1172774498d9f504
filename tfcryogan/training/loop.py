"""The training driver: inputs, strategy, models, checkpoints, summaries, progress and outputs.

:func:`train` is ``bin/train``'s job: it reads what a :class:`~tfcryogan.training.config.TrainConfig`
names (particles, ground truth, noise images), builds a :class:`Trainer` and runs it.

A :class:`Trainer` builds its reconstructions under the strategy's scope: for CryoGAN by default
two independent ones, each with its own map, critic and optimisers, on the two gold-standard
halves of the particles (RELION's convention), trained side by side in one compiled step; one on
all particles otherwise. It restores the last checkpoint of its run folder if there is one
(``resumed from step K``), then runs the distributed ``tf.function`` step until ``max_steps`` or
the ``max_minutes`` budget, writing checkpoints and the outputs (for halves: the aligned half
maps, their average, the gold-standard FSC and a RELION initial model) every
``checkpoint_every`` steps and at the end. Its public API (:meth:`Trainer.step`,
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


#: Seed offset of the second half's random draws and starting map (independent of the first).
HALF2_SEED_OFFSET = 7919


@dataclasses.dataclass
class Reconstruction:
    """One independent reconstruction of a run: ``name`` (``all``, ``half1`` or ``half2``), its
    particles and seed, and (once built) its models and optimisers."""

    name: str
    data: data_lib.ParticleData
    seed: int
    generator: object = None
    ema_generator: object = None
    critic: object = None
    image_formation: object = None
    model: object = None
    d_optimizer: object = None
    g_optimizer: object = None


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
    strategy_lib.prepare_devices(config.strategy, config.cpu_replicas)  # before any TF op
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
                                     config_lib.fixed_settings() + ["critic_batch_group"],
                                     config_lib.settings_without_flag())
        self.split = None
        if config.trains_halves:
            self.split = data_lib.split_halves(data, config.seed)
            self.reconstructions = [
                Reconstruction("half1", data.subset(self.split.rows(1)), config.seed),
                Reconstruction("half2", data.subset(self.split.rows(2)),
                               config.seed + HALF2_SEED_OFFSET)]
        else:
            self.reconstructions = [Reconstruction("all", data, config.seed)]
        self._build(make_generator)
        self._step_fn = None
        self._agree_fn = None
        self._last_spread = None
        self._last_gold = None

    # The first (or only) reconstruction's parts, for single-map runs, tests and benches.
    generator = property(lambda self: self.reconstructions[0].generator)
    ema_generator = property(lambda self: self.reconstructions[0].ema_generator)
    critic = property(lambda self: self.reconstructions[0].critic)
    image_formation = property(lambda self: self.reconstructions[0].image_formation)
    model = property(lambda self: self.reconstructions[0].model)
    d_optimizer = property(lambda self: self.reconstructions[0].d_optimizer)
    g_optimizer = property(lambda self: self.reconstructions[0].g_optimizer)

    # ------------------------------------------------------------------ set-up
    def _settings(self):
        """``run.json``'s ``settings``: the config, the training grid and the effective derived
        values."""
        c, data = self.config, self.data
        replica_batch = c.batch_size // self.strategy.num_replicas_in_sync
        return {**c.settings(), "box": data.box, "pixel_size": round(data.pixel_size, 6),
                "critic_batch_group": c.batch_statistics_group(replica_batch),
                "generator_batch_count": c.generator_batch_count(),
                "penalty_interval": c.penalty_interval(),
                "optics": [float(x) for x in data.ctf_rows()[0, 3:6]]}

    def _noise_model(self, data):
        c = self.config
        if c.noise == "colored":
            source = self.noise_images or data
            return noise_lib.ColoredNoise(data_lib.estimate_noise_psd(source, seed=c.seed))
        return noise_lib.make_noise_model(c.noise)

    def _build(self, make_generator):
        c, s = self.config, self.settings
        keras.utils.set_random_seed(c.seed)  # weight initialisation: the same for every run
        parts = {}
        for r in self.reconstructions:
            noise_model = self._noise_model(r.data)
            with self.strategy.scope():
                r.generator = make_generator(s, "generator")
                r.ema_generator = make_generator(s, "ema_generator")
                r.critic = build_critic(r.data.box, c.critic_channels, s["critic_batch_group"],
                                        c.mixed_precision)
                r.image_formation = simulator.ImageFormation(
                    r.data.box, r.data.pixel_size, noise_model,
                    shift_std_px=c.shift_std(r.data.pixel_size) / r.data.pixel_size,
                    learn_shift=c.learn_shift)
                r.model = CryoGAN(r.generator, r.critic, r.image_formation,
                                  dataclasses.replace(c, seed=r.seed),
                                  ema_generator=r.ema_generator)
                z = tf.zeros([1, c.latent_dim])
                r.generator(z)
                r.ema_generator(z)
                r.generator.template.assign(self._initial_volume(r.seed))
                if c.latent_dim:
                    r.generator.basis.assign(random_basis_volumes(c.latent_dim, r.data.box,
                                                                  c.mask_radius, r.seed))
                for ema, w in zip(r.ema_generator.weights, r.generator.weights):
                    ema.assign(w)
                r.d_optimizer = keras.optimizers.Adam(c.critic_lr, beta_1=c.beta_1,
                                                      beta_2=c.beta_2)
                r.g_optimizer = keras.optimizers.Adam(c.generator_lr, beta_1=c.beta_1,
                                                      beta_2=c.beta_2)
                if c.mixed_precision:  # float16 critic: dynamic loss scaling for both updates
                    r.d_optimizer = keras.optimizers.LossScaleOptimizer(r.d_optimizer)
                    r.g_optimizer = keras.optimizers.LossScaleOptimizer(r.g_optimizer)
                r.model.compile(r.d_optimizer, r.g_optimizer)
                parts[r.name] = tf.train.Checkpoint(
                    generator=r.generator, ema_generator=r.ema_generator, critic=r.critic,
                    image_formation=r.image_formation, step=r.model.step,
                    d_optimizer=r.d_optimizer, g_optimizer=r.g_optimizer)
        self.checkpoint = tf.train.Checkpoint(**parts)
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.run_folder.checkpoint_dir,
                                                  max_to_keep=2)
        self.summary_writer = tf.summary.create_file_writer(self.run_folder.log_dir)

    def _initial_volume(self, seed):
        """The starting template: ``random`` (smooth random density from ``seed``), ``zero``, or
        a map file (resampled to the training grid, scaled to maximum 1)."""
        c, data = self.config, self.data
        if c.initial_volume == "zero":
            return tf.zeros([data.box] * 3)
        if c.initial_volume == "random":
            return random_initial_volume(data.box, c.mask_radius, seed)
        volume, voxel = io.read_volume(c.initial_volume)
        volume = data_lib.on_training_grid(volume, voxel, data, c.initial_volume)
        return tf.maximum(tf.constant(volume), 0.0) / max(float(volume.max()), 1e-12)

    def calibrate_scales(self):
        """Set each reconstruction's signal scale so that the simulated images of its starting
        volume have its particles' SNR (a fresh run only; a resumed run restores its own).

        The real images are normalised per image, so their variance outside the support (noise
        only) is the noise's share of their total variance: SNR = (1 - share) / share. The noise
        scale stays 1 and the signal scale is ``sqrt(SNR / var(clean projections))``.
        Returns the estimated SNR in dB of the first (or None when there is no signal)."""
        c = self.config
        estimates = []
        for r in self.reconstructions:
            data = r.data
            plan = data_lib.BatchPlan(128, 1, r.seed + 99)
            real = next(iter(data_lib.make_dataset(data, plan)))["real"][:, 0]
            background = 1.0 - tf.cast(
                fourier.centred_radius_3d(data.box)[data.box // 2] <= c.mask_radius * data.box,
                tf.float32)
            share = float(tf.reduce_sum(tf.reduce_mean(tf.square(real), 0) * background) /
                          tf.reduce_sum(background))
            share = min(max(share, 0.02), 0.99)
            snr = (1.0 - share) / share
            params = simulator.sample_parameters(tf.constant([r.seed, 98], tf.int64), 128,
                                                 data.ctf_rows(), 0.0)
            spectrum = projector.volume_spectrum(r.generator.basis_volumes()[:1])
            clean = simulator.project(spectrum, params["rotations"], params["origins"],
                                      params["ctf"], data.box, data.pixel_size)
            clean_var = float(tf.reduce_mean(tf.math.reduce_variance(clean, axis=[1, 2])))
            if clean_var <= 0:
                estimates.append(None)
                continue
            r.image_formation.set_scales(signal_scale=float(np.sqrt(snr / clean_var)),
                                         noise_scale=1.0)
            estimates.append(10.0 * np.log10(snr))
        return estimates[0]

    def restore(self):
        """Restore the last checkpoint of the run folder; returns its step (0 if none). Every
        worker restores the chief's (the shared folder's) checkpoint, so that all resume at one
        step."""
        latest = tf.train.latest_checkpoint(self.run_folder.file("checkpoints"))
        if latest is None:
            return 0
        restore_checkpoint(self.checkpoint, latest, "use --restart or another --output_dir")
        step = int(self.reconstructions[0].model.step.numpy())
        self.log(f"resumed from step {step} ({latest})")
        return step

    # ------------------------------------------------------------------ the step
    def step(self, batch):
        """One distributed training step of every reconstruction (each: ``n_critic`` critic
        updates, one generator update, the moving average), in one compiled function so that
        independent halves run side by side, on ``batch`` (an element of :meth:`batches`).
        Returns the metrics summed over replicas as a dict of scalar tensors; with two halves,
        ``half1/...`` and ``half2/...`` and their mean under the plain names."""
        if self._step_fn is None:
            reconstructions, strategy = self.reconstructions, self.strategy

            jit = self.config.jit_compile
            steps = [tf.function(r.model.train_step, jit_compile=True) if jit
                     else r.model.train_step for r in reconstructions]

            @tf.function
            def step_fn(batches):
                out = {}
                for r, train_step, part in zip(reconstructions, steps, batches):
                    per_replica = strategy.run(train_step, args=(part,))
                    for k, v in per_replica.items():
                        out[f"{r.name}/{k}"] = strategy.reduce(tf.distribute.ReduceOp.SUM, v,
                                                               axis=None)
                    r.model.update_ema()
                    r.model.step.assign_add(1)
                names = [k.split("/", 1)[1] for k in out if k.startswith(reconstructions[0].name)]
                mean = {k: tf.add_n([out[f"{r.name}/{k}"] for r in reconstructions]) /
                        float(len(reconstructions)) for k in names}
                return mean if len(reconstructions) == 1 else {**mean, **out}

            self._step_fn = step_fn
        return self._step_fn(batch)

    def set_progress(self, progress):
        """Set what follows the run's progress (0 to 1): the cosine decay of both learning rates
        from their starting values to ``final_lr_fraction`` of them, and the critic's low-pass."""
        c = self.config
        progress = min(max(float(progress), 0.0), 1.0)
        f = c.final_lr_fraction + (1.0 - c.final_lr_fraction) * 0.5 * (
            1.0 + np.cos(np.pi * progress))
        for r in self.reconstructions:
            r.d_optimizer.learning_rate.assign(c.critic_lr * f)
            r.g_optimizer.learning_rate.assign(c.generator_lr * f)
            r.model.progress.assign(progress)

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
        """An iterator over the distributed input from ``start_step`` on: tuples with one batch
        per reconstruction (its own particles). Each worker's pipeline reads only its replicas'
        slices of the global batch (``data.BatchPlan``), whatever the number of workers and
        devices."""
        c = self.config
        patches = self.noise_images if c.noise == "patches" else None

        def pipeline(r):
            def per_worker(context):
                local = context.num_replicas_in_sync // context.num_input_pipelines
                plan = data_lib.BatchPlan(c.batch_size, c.n_critic, r.seed,
                                          num_replicas=context.num_replicas_in_sync,
                                          first_replica=context.input_pipeline_id * local,
                                          local_replicas=local)
                return data_lib.make_dataset(r.data, plan, start_step, patches)

            return iter(self.strategy.distribute_datasets_from_function(per_worker))

        return zip(*[pipeline(r) for r in self.reconstructions])

    # ------------------------------------------------------------------ outputs
    def volume(self, ema=True, index=0):
        """Reconstruction ``index``'s current map ``[N, N, N]`` float32 (moving-average weights by
        default); for halves, ``index`` 0 is half 1 (see :meth:`gold_standard` for their
        average)."""
        r = self.reconstructions[index]
        generator = r.ema_generator if ema else r.generator
        return generator(tf.zeros([1, self.config.latent_dim]))[0].numpy()

    def spread(self):
        """The output generator's spread over 16 fixed codes
        (:meth:`~tfcryogan.models.generator.ConformationGenerator.spread`)."""
        z = tf.random.stateless_normal([16, self.config.latent_dim], [self.config.seed, 555])
        return float(self.ema_generator.spread(z))

    def learned_scalars(self):
        """Each reconstruction's learned image-formation scalars (``signal_scale``,
        ``noise_scale``, ``shift_std_A``) as floats; prefixed ``half1/``, ``half2/`` with
        halves."""
        out = {}
        for r in self.reconstructions:
            prefix = "" if len(self.reconstructions) == 1 else f"{r.name}/"
            scales = {k: float(v) for k, v in r.image_formation.scales().items()}
            out.update({f"{prefix}signal_scale": scales["signal_scale"],
                        f"{prefix}noise_scale": scales["noise_scale"],
                        f"{prefix}shift_std_A": scales["shift_std_px"] * self.data.pixel_size})
        return out

    def gold_standard(self):
        """The two halves' gold-standard FSC (:func:`tfcryogan.evaluation.gold_standard.
        gold_standard`: half 2 aligned onto half 1, their average, masked and unmasked curves)."""
        from tfcryogan.evaluation import gold_standard  # pylint: disable=import-outside-toplevel
        return gold_standard.gold_standard(self.volume(index=0), self.volume(index=1),
                                           self.data.pixel_size, seed=self.config.seed)

    def initial_model(self, average, resolution):
        """``average`` (training grid) as a RELION initial model: on the particles' own box and
        pixel size (Fourier padding when trained at a smaller ``--box``), low-passed to
        ``resolution`` A with a cosine edge. ``[box_in]^3`` float32 numpy."""
        d = self.data
        full = fourier.resample_volume(average, d.pixel_size, d.pixel_size_in, d.box_in)
        cutoff = d.box_in * d.pixel_size_in / max(resolution, 2.0 * d.pixel_size)
        return fourier.cosine_lowpass(full, cutoff, 2.0, 3).numpy()

    def write_split(self):
        """Write the gold-standard split as ``particles_halves.star`` (the particles with
        ``rlnRandomSubset``; RELION reads it) once; returns its path, or None without halves."""
        if self.split is None:
            return None
        path = self.run_folder.file("particles_halves.star")
        if self.is_chief and not os.path.exists(path):
            table = dataclasses.replace(self.data.table, random_subset=self.split.subset)
            io.write_star(path, table)
        return path

    def write_outputs(self, step, wall, metrics, final=False):
        """Write the maps and ``run.json`` (atomically, chief only); returns the record.

        One reconstruction: ``volume.mrc``. Halves: ``half1.mrc``, ``half2.mrc`` (aligned onto
        half 1), ``volume.mrc`` (their average), ``fsc_gold.csv``/``.png`` and
        ``initial_model.mrc`` (low-passed to the unmasked gold-standard 0.143 resolution). With
        a ground truth, at the end, ``fsc.csv``/``.png`` of ``volume.mrc`` against it."""
        folder, d = self.run_folder, self.data
        record = {
            "settings": self.settings, "step": int(step), "wall_seconds": round(wall, 1),
            "finished": bool(final), "strategy": self.strategy_text,
            "particles": d.path, "n_particles": len(d),
            "figures": {k: float(v) for k, v in metrics.items()},
            "outputs": {"checkpoints": folder.file("checkpoints"), "logs": folder.file("logs")},
        }
        record["figures"].update(self.learned_scalars())
        gold = None
        if self.split is not None and self.is_chief:
            gold = self.gold_standard()
            average = gold.average
            self._last_gold = gold.resolutions()
            record["split"] = {**self.split.record(), "file": self.write_split()}
            record["gold_standard"] = gold.record()
            record["outputs"].update(
                half1=folder.write_map("half1.mrc", gold.half1, d.pixel_size),
                half2=folder.write_map("half2.mrc", gold.half2, d.pixel_size),
                fsc_gold=self.write_gold_fsc(gold),
                initial_model=folder.write_map(
                    "initial_model.mrc", self.initial_model(
                        average, self._last_gold["unmasked"]["resolution_0143_A"]),
                    d.pixel_size_in))
        else:
            average = self.volume()
        record["outputs"]["volume"] = folder.write_map("volume.mrc", average, d.pixel_size)
        if self.config.latent_dim:
            record["figures"]["conformation_spread"] = self.spread()
        if final and self.ground_truth is not None and self.is_chief:
            record["fsc"] = self.write_fsc(average, gold)
        folder.write_record(record)
        return record

    def write_gold_fsc(self, gold):
        """``fsc_gold.csv`` (every curve of ``gold``) and ``fsc_gold.png`` (masked and unmasked);
        returns the CSV's path."""
        from tfcryogan.evaluation import report  # pylint: disable=import-outside-toplevel
        path = self.run_folder.file("fsc_gold.csv")
        report.write_fsc_csv(path, gold.curves(), gold.box, gold.pixel_size)
        report.plot_fsc(self.run_folder.file("fsc_gold.png"),
                        {"half maps, masked": gold.fsc_masked,
                         "half maps, unmasked": gold.fsc_unmasked}, gold.box, gold.pixel_size,
                        title="gold-standard FSC (half 2 aligned onto half 1)")
        return path

    def write_fsc(self, volume, gold=None):
        """FSC of ``volume`` against the ground truth after alignment: ``fsc.csv`` and ``fsc.png``
        (with the gold-standard curves beside it when there are halves); returns the
        resolutions."""
        from tfcryogan.evaluation import report  # pylint: disable=import-outside-toplevel
        result = report.compare_maps(volume, self.ground_truth, self.data.pixel_size, align=True)
        curves = {"against the ground truth": result["fsc"]["fsc"]}
        if gold is not None:
            curves.update({"half maps, masked": gold.fsc_masked,
                           "half maps, unmasked": gold.fsc_unmasked})
        report.write_fsc_csv(self.run_folder.file("fsc.csv"), result)
        report.plot_fsc(self.run_folder.file("fsc.png"), curves, result["box"],
                        result["pixel_size_A"])
        return {k: v for k, v in result.items() if k.startswith("resolution_")
                or k.startswith("fraction_")}

    def summaries(self, step, metrics, images=None):
        """TensorBoard scalars (metrics, learned scalars, spread, gold-standard resolution) and,
        with ``images``, the map's central slices and real vs simulated critic inputs."""
        with self.summary_writer.as_default(step=step):
            for k, v in metrics.items():
                tf.summary.scalar(k, v)
            for k, v in self.learned_scalars().items():
                tf.summary.scalar(k, v)
            if self._last_gold:
                for kind, values in self._last_gold.items():
                    tf.summary.scalar(f"gold_standard/{kind}_0143_A",
                                      values["resolution_0143_A"])
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
        """A grid of 8 real (top) and 8 simulated (bottom) critic inputs of the first
        reconstruction, ``[1, 2N, 8N, 1]``."""
        local = self.strategy.experimental_local_results
        batch = batch[0]
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
        what = f"{len(self.data)} particles"
        if self.split is not None:
            what = (f"two independent halves of {len(self.data)} particles "
                    f"({len(self.reconstructions[0].data)} + {len(self.reconstructions[1].data)}, "
                    f"split: {self.split.origin})")
        self.log(f"training on {what} ({self.data.box} px, {self.data.pixel_size:.3f} A/px), "
                 f"{self.strategy_text}, batch {c.batch_size}, {c.n_critic} critic steps per "
                 "volume step")
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
            if self._last_gold:
                extra += (f" gold FSC 0.143: "
                          f"{self._last_gold['masked']['resolution_0143_A']:.1f} A")
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
