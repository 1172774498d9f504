"""The adversarial model: critic + conformation generator + simulator, and its training step.

``CryoGAN.train_step`` reads top to bottom as the WGAN-GP recipe (keras-io ``wgan_gp.py``):
``n_critic`` critic updates, each on a fresh real batch and a fresh simulated batch, then one
generator update. The simulator is one call in the middle (:meth:`CryoGAN.simulate`). The step runs
per replica under a ``tf.distribute`` strategy: every random draw is made for the *global* batch from
stateless seeds ``(seed, step)`` and each replica takes its slice, so the result does not depend on
how the batch is split across devices; losses are scaled by the global batch.
"""

import math

import keras
import tensorflow as tf

from tfcryogan import simulator
from tfcryogan.physics import fourier, noise as noise_lib, projector, rotations
from tfcryogan.training import losses


def replica_slice(x, global_batch):
    """This replica's rows ``[r * b, (r + 1) * b)`` of a global-batch tensor ``x``."""
    context = tf.distribute.get_replica_context()
    replicas = context.num_replicas_in_sync if context is not None else 1
    if replicas == 1:
        return x
    b = global_batch // replicas
    start = tf.cast(context.replica_id_in_sync_group, tf.int32) * b
    return x[start:start + b]


def normalize_images(images):
    """Per-image normalisation: zero mean and unit standard deviation over the box, ``[B, N, N]``."""
    mean, var = tf.nn.moments(images, axes=[1, 2], keepdims=True)
    return (images - mean) * tf.math.rsqrt(var + 1e-8)


def gaussian_lowpass(images, sigma_k):
    """Gaussian low-pass ``exp(-k^2 / (2 sigma_k^2))`` (k in cycles per box) of ``[B, N, N]`` images;
    ``sigma_k <= 0`` means no filter."""
    box = images.shape[-1]
    kx, ky = fourier.half_plane_frequencies(box)
    k2 = kx * kx + ky * ky
    safe = tf.maximum(sigma_k, 1e-3)
    filt = tf.where(sigma_k > 0, tf.exp(-k2 / (2.0 * safe * safe)), tf.ones_like(k2))
    spectra = tf.signal.rfft2d(images) * tf.cast(filt, tf.complex64)
    return tf.signal.irfft2d(spectra, fft_length=[box, box])


def generator_batch_count(generator_batches, latent_dim, n_critic):
    """Critic batches' worth of simulated images in each generator update: ``generator_batches``
    clipped to ``[1, n_critic + 1]``, or when it is < 1 the default: 1 for CryoGAN
    (``latent_dim == 0``), ``n_critic + 1`` for Multi-CryoGAN.

    Why Multi-CryoGAN uses them all: the gradient that spreads the conformations is a correlation
    between each image's code and the critic's response to it, a far weaker and noisier signal than
    the one that moves the mean volume. ``bench/multi.py --part=coverage`` (adk, box 32, 15 min):
    with 1 batch the samples' spread was 12% (true frames 36%) and the open frames were missed;
    with 5 it was 29% and every frame had a sample within 20 A. CryoGAN gained nothing from it."""
    if int(generator_batches) < 1:
        return 1 if int(latent_dim) == 0 else int(n_critic) + 1
    return max(1, min(int(generator_batches), int(n_critic) + 1))


class CryoGAN(keras.Model):
    """Critic, generator and the image formation model, trained adversarially.

    Args:
      generator: :class:`~tfcryogan.models.generator.ConformationGenerator`.
      ema_generator: a copy of it holding the exponential moving average of its weights (the
        output volume), or None.
      critic: ``[B, N, N] -> [B]`` Keras model.
      pixel_size: Angstrom per pixel of the training images.
      global_batch: images per critic/generator update over all replicas.
      n_critic: critic updates per generator update.
      gp_weight: gradient penalty weight (lambda).
      noise_kind: ``white``, ``colored`` (with ``noise_psd``) or ``patches`` (real noise patches
        given with each batch).
      noise_psd: ``[R]`` radial noise power spectrum shape for ``colored``.
      shift_std_px: initial standard deviation of the simulated particles' shifts (pixels); it is
        learned (reparametrised draws) when ``learn_shift`` is true.
      lowpass_start: initial Gaussian low-pass width (cycles per box) on the critic's inputs, relaxed
        linearly to no filter when the run's progress (``lowpass_progress``, 0 to 1, set by the
        training loop from its step and time budget) reaches ``lowpass_fraction`` (coarse to
        fine); 0 disables it.
      generator_batches: the generator update uses this many critic batches' worth of simulated
        images (1 to ``n_critic + 1``; each with its own CTF rows), a less noisy gradient for
        the volume at little cost (no gradient penalty there); < 1: the default of
        :func:`generator_batch_count`.
      ema_decay: decay of the moving average of the generator weights.
      positivity_weight: weight of the penalty on negative density of generated volumes
        (Multi-CryoGAN; CryoGAN's single volume is clipped at 0 instead).
      basis_decay: decoupled weight decay of the basis volumes (Multi-CryoGAN): after each
        generator update they shrink by the factor ``1 - learning_rate * basis_decay`` (see
        :meth:`decay_basis`); 0 turns it off.
      basis_warmup: the basis volumes (Multi-CryoGAN) learn at a rate that ramps linearly from 0
        to the full learning rate until the run's progress reaches this fraction (see
        :meth:`gate_basis`); 0 turns it off.
      seed: integer seed of every random draw.
    """

    def __init__(self, generator, critic, pixel_size, global_batch, ema_generator=None,
                 n_critic=4, gp_weight=10.0, noise_kind="white", noise_psd=None,
                 shift_std_px=1.0, learn_shift=True, lowpass_start=4.0, lowpass_fraction=0.8,
                 ema_decay=0.995, positivity_weight=10.0, basis_decay=0.0, basis_warmup=0.0,
                 generator_batches=-1, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.ema_generator = ema_generator
        self.critic = critic
        self.box = generator.box
        self.pixel_size = float(pixel_size)
        self.global_batch = int(global_batch)
        self.n_critic = int(n_critic)
        self.gp_weight = float(gp_weight)
        self.noise_kind = noise_kind
        self.noise_psd = None if noise_psd is None else tf.constant(noise_psd, tf.float32)
        self.lowpass_start = float(lowpass_start)
        self.lowpass_fraction = float(lowpass_fraction)
        self.ema_decay = float(ema_decay)
        self.positivity_weight = float(positivity_weight)
        self.basis_decay = float(basis_decay)
        self.basis_warmup = float(basis_warmup)
        self.generator_batches = generator_batch_count(generator_batches, generator.latent_dim,
                                                       self.n_critic)
        self.seed = int(seed)
        # Image-formation scalars learned with the generator: the signal amplitude, the noise
        # standard deviation and the spread of particle shifts. Each is stored as
        # log(value) / SCALAR_SPEED: Adam moves a parameter by about its learning rate per step,
        # so these few numbers adapt SCALAR_SPEED times faster than the voxels (a volume that
        # waits for a mis-scaled noise level distorts itself to compensate).
        def scalar(name, value, trainable=True):
            return self.add_weight(
                shape=(), name=name, trainable=trainable,
                initializer=keras.initializers.Constant(math.log(value) / self.SCALAR_SPEED))

        self.signal_scale_raw = scalar("log_signal_scale", 1.0 / float(self.box))
        self.noise_scale_raw = scalar("log_noise_scale", 1.0)
        self.shift_std_raw = scalar("log_shift_std", max(float(shift_std_px), 1e-2),
                                    trainable=bool(learn_shift))
        self.step = self.add_weight(shape=(), dtype="int64", initializer="zeros", name="step",
                                    trainable=False)
        # How far the run is (0 to 1, by steps or wall-clock budget), set by the training loop
        # before each step (the same value on every worker); drives the low-pass schedule.
        self.lowpass_progress = self.add_weight(shape=(), initializer="zeros",
                                                name="lowpass_progress", trainable=False)
        # The fraction of each generator update the basis volumes keep (1 after the warm-up);
        # set with the other schedules by the training loop.
        self.basis_rate = self.add_weight(shape=(), initializer="ones", name="basis_rate",
                                          trainable=False)

    SCALAR_SPEED = 10.0

    def scales(self):
        """The learned image-formation scalars: ``signal_scale``, ``noise_scale`` (per-image
        normalised units) and ``shift_std_px`` (pixels)."""
        k = self.SCALAR_SPEED
        return {"signal_scale": tf.exp(k * self.signal_scale_raw),
                "noise_scale": tf.exp(k * self.noise_scale_raw),
                "shift_std_px": tf.exp(k * self.shift_std_raw)}

    def set_scales(self, signal_scale=None, noise_scale=None):
        """Set the signal and/or noise scale (e.g. calibrated from the data before training)."""
        k = self.SCALAR_SPEED
        if signal_scale is not None:
            self.signal_scale_raw.assign(math.log(signal_scale) / k)
        if noise_scale is not None:
            self.noise_scale_raw.assign(math.log(noise_scale) / k)

    def compile(self, d_optimizer, g_optimizer):  # pylint: disable=arguments-differ
        super().compile()
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer

    # ------------------------------------------------------------------ pieces of the step
    def generator_variables(self):
        """What the generator update trains: the volume(s) and the image-formation scalars."""
        extra = [self.signal_scale_raw, self.noise_scale_raw]
        if self.shift_std_raw.trainable:
            extra.append(self.shift_std_raw)
        return self.generator.trainable_variables + extra

    def lowpass_sigma(self):
        """Width (cycles per box) of the critic's input low-pass at the current progress: from
        ``lowpass_start`` linearly to ``N / 2`` at progress ``lowpass_fraction``, then none (0).

        Relaxing it over most of the run (not a fixed number of steps) matters: a random start
        finds the right low-resolution shape only slowly, and the fine details are learned well
        only on top of it (betagal, box 32, 5 minutes: FSC 0.5 at 0.41 of Nyquist with the filter
        gone after 2,000 of 5,100 steps, 0.53 with it gone after 4,000)."""
        if self.lowpass_start <= 0 or self.lowpass_fraction <= 0:
            return tf.constant(0.0)
        t = self.lowpass_progress.value / self.lowpass_fraction
        sigma = self.lowpass_start + t * (self.box / 2.0 - self.lowpass_start)
        return tf.where(t < 1.0, sigma, 0.0)

    def preprocess(self, images):
        """What the critic sees: low-passed (per the schedule), per-image normalised images."""
        return normalize_images(gaussian_lowpass(images, self.lowpass_sigma()))

    def simulate(self, ctf, seed, patches=None, generator=None, spectrum=None,
                 global_batch=None, normalization=None):
        """Simulated particle images for this replica.

        Args:
          ctf: ``[b, 9]`` CTF rows (drawn from the real data set by the input pipeline).
          seed: ``[2]`` int64 stateless seed for this draw (same on every replica).
          patches: ``[b, N, N]`` real noise patches (``noise_kind == "patches"``).
          generator: the generator to use (default: the trained one).
          spectrum: the spectra of ``generator.basis_volumes()``, when already computed.
          global_batch: images over all replicas (default: the critic's batch).
          normalization: the generator's ``coefficient_normalization()``, when already computed.
        Returns:
          ``[b, N, N]`` float32 images (not yet normalised).
        """
        generator = generator or self.generator
        g = global_batch or self.global_batch
        seeds = tf.random.experimental.stateless_split(seed, 5)
        latent = generator.latent_dim
        z = replica_slice(tf.random.stateless_normal([g, latent], seeds[0]), g)
        if spectrum is None:
            spectrum = projector.volume_spectrum(generator.basis_volumes())
        rot = replica_slice(rotations.random_rotations(g, seeds[1]), g)
        unit_shift = replica_slice(tf.random.stateless_normal([g, 2], seeds[2]), g)
        scales = self.scales()
        origins = unit_shift * (scales["shift_std_px"] * self.pixel_size)
        clean = simulator.project(spectrum, rot, origins, ctf, self.box, self.pixel_size,
                                  coefficients=generator.coefficients(z, normalization))
        if self.noise_kind == "patches":
            noise = noise_lib.normalize_patches(patches, 1.0)
        elif self.noise_kind == "colored":
            full = noise_lib.colored_noise([g, self.box, self.box], self.noise_psd, seeds[3],
                                           sigma=1.0)
            noise = replica_slice(full, g)
        else:
            noise = replica_slice(tf.random.stateless_normal([g, self.box, self.box], seeds[3]),
                                  g)
        return scales["signal_scale"] * clean + scales["noise_scale"] * noise

    # ------------------------------------------------------------------ the adversarial step
    def train_step(self, data):
        """One generator step (after ``n_critic`` critic steps) on this replica's share of a batch.

        ``data``: dict with ``real`` ``[b, n_critic, N, N]`` (real images), ``ctf``
        ``[b, n_critic + 1, 9]`` (CTF rows for the simulated images) and, for real noise patches,
        ``patches`` ``[b, n_critic + 1, N, N]``. Returns per-replica metric contributions (sum them
        over replicas).
        """
        g = self.global_batch
        step = self.step.value
        seeds = tf.random.experimental.stateless_split(
            tf.stack([tf.constant(self.seed, tf.int64), step]), self.n_critic + 1)
        patches = data.get("patches")

        def patches_at(i):
            return None if patches is None else patches[:, i]

        # The basis volumes are fixed during the critic updates: transform them once.
        spectrum = tf.stop_gradient(projector.volume_spectrum(self.generator.basis_volumes()))
        normalization = None
        if self.generator.n_basis:  # likewise the coefficients' standardisation
            normalization = tuple(tf.stop_gradient(t)
                                  for t in self.generator.coefficient_normalization())

        # Critic updates: real vs simulated, with the gradient penalty.
        for i in range(self.n_critic):
            draw, mix = tf.unstack(tf.random.experimental.stateless_split(seeds[i], 2))
            real = self.preprocess(data["real"][:, i])
            fake = self.preprocess(
                self.simulate(data["ctf"][:, i], draw, patches_at(i), spectrum=spectrum,
                              normalization=normalization))
            fake = tf.stop_gradient(fake)
            epsilon = replica_slice(tf.random.stateless_uniform([g], mix), g)
            with tf.GradientTape() as tape:
                real_scores = self.critic(real, training=True)
                fake_scores = self.critic(fake, training=True)
                w_loss = losses.critic_loss(real_scores, fake_scores, g)
                gp = losses.gradient_penalty(self.critic, real, fake, epsilon, g)
                d_loss = w_loss + self.gp_weight * gp
                # The dynamic loss scale under --mixed_precision, the identity otherwise (inside
                # the tape, so that the product is recorded).
                scaled = self.d_optimizer.scale_loss(d_loss)
            grads = tape.gradient(scaled, self.critic.trainable_variables)
            self.d_optimizer.apply_gradients(zip(grads, self.critic.trainable_variables))

        # Generator update: gradients reach the volume through projection, CTF and noise scaling.
        variables = self.generator_variables()
        k = self.generator_batches
        ctf = tf.reshape(data["ctf"][:, self.n_critic + 1 - k:], [-1, 9])
        gen_patches = None
        if patches is not None:
            gen_patches = tf.reshape(patches[:, self.n_critic + 1 - k:],
                                     [-1, self.box, self.box])
        with tf.GradientTape() as tape:
            fake = self.preprocess(
                self.simulate(ctf, seeds[self.n_critic], gen_patches, global_batch=g * k))
            g_loss = losses.generator_loss(self.critic(fake, training=True), g * k)
            if self.generator.latent_dim:
                # Keep generated densities non-negative (the template is clipped; its
                # combinations with the basis are penalised).
                z = tf.random.stateless_normal([4, self.generator.latent_dim], seeds[-1])
                g_loss += self.positivity_weight * self.generator.negativity(z) / float(
                    tf.distribute.get_strategy().num_replicas_in_sync)
            scaled = self.g_optimizer.scale_loss(g_loss)
        grads = tape.gradient(scaled, variables)
        self.g_optimizer.apply_gradients(zip(grads, variables))
        return {"wasserstein": -w_loss, "gradient_penalty": gp, "critic_loss": d_loss,
                "generator_loss": g_loss}

    def basis_before_update(self):
        """A copy of the basis volumes ``[K, N, N, N]`` taken before the step (cross-replica), for
        :meth:`gate_basis`; None when they learn at the full rate throughout (no warm-up, or
        CryoGAN)."""
        if not (self.basis_warmup and self.generator.n_basis):
            return None
        return tf.identity(self.generator.basis.value)

    def gate_basis(self, before):
        """Keep only the fraction ``basis_rate`` of the step's change of the basis volumes
        (cross-replica; ``before`` from :meth:`basis_before_update`): their learning rate during
        the warm-up, while the template's is full. Adam's moments see every gradient, so the rate,
        not the direction, is what the warm-up changes.

        Why: the variation is created in the first minute of a run, while the template is still
        a rough blob: started 10 times smaller (``basis_start_scale=0.02``), the spread of the
        samples was back at the usual ~36% within a minute, most of it off the motion, and the
        critic removes such variation only slowly afterwards."""
        if before is None:
            return
        basis = self.generator.basis
        basis.assign(before + self.basis_rate * (basis - before))

    def decay_basis(self):
        """Shrink the basis volumes by ``1 - learning_rate * basis_decay`` (cross-replica; after
        the generator update, as AdamW's decoupled weight decay).

        Why: a direction of variation the critic cannot see in the images (a shift or turn of the
        whole particle, which the random poses and shifts already produce; a slight stretch lost
        in the noise) gets no gradient, so whatever the start and the early steps put there
        stays. The decay removes it at a fixed rate, while the variation the critic asks for is
        renewed by every update. On the adk coverage bench (``bench/multi.py --part=coverage``)
        ``basis_decay=1`` raised the share of the samples' variance along the motion from 0.24 to
        0.39 on seed 0, but on seed 1 it lost the two most open frames, so it is off by
        default."""
        if not (self.basis_decay and self.generator.n_basis):
            return
        lr = tf.cast(self.g_optimizer.learning_rate, tf.float32)
        self.generator.basis.assign(self.generator.basis * (1.0 - lr * self.basis_decay))

    def update_ema(self):
        """Move the EMA generator's weights towards the trained generator's (cross-replica)."""
        if self.ema_generator is None:
            return
        d = self.ema_decay
        for ema, w in zip(self.ema_generator.weights, self.generator.weights):
            ema.assign(d * ema + (1.0 - d) * w)
