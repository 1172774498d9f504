"""The adversarial model: critic + conformation generator + image formation, and its training step.

``CryoGAN.train_step`` reads top to bottom as the WGAN-GP recipe (keras-io ``wgan_gp.py``):
``n_critic`` critic updates, each on a fresh real batch and a fresh simulated batch, then one
generator update. The simulator is one call in the middle (``self.image_formation``). The step
runs per replica under a ``tf.distribute`` strategy: every random draw is made for the *global*
batch from stateless seeds ``(seed, step)`` and each replica takes its slice, so the result does
not depend on how the batch is split across devices; losses are scaled by the global batch.
"""

import keras
import tensorflow as tf

from tfcryogan.physics import fourier, projector
from tfcryogan.simulator import replica_slice
from tfcryogan.training import losses


class CryoGAN(keras.Model):
    """Critic, generator and image formation, trained adversarially.

    Args:
      generator: :class:`~tfcryogan.models.generator.ConformationGenerator`.
      critic: ``[B, N, N] -> [B]`` Keras model.
      image_formation: :class:`~tfcryogan.simulator.ImageFormation` (holds the learned scalars).
      config: :class:`~tfcryogan.training.config.TrainConfig` (batch, ``n_critic``, gradient
        penalty, low-pass schedule, moving-average decay, positivity weight, seed).
      ema_generator: a copy of ``generator`` holding the exponential moving average of its
        weights (the output map), or None.
    """

    def __init__(self, generator, critic, image_formation, config, ema_generator=None, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.critic = critic
        self.image_formation = image_formation
        self.ema_generator = ema_generator
        self.config = config
        self.box = generator.box
        self.global_batch = int(config.batch_size)
        self.n_critic = int(config.n_critic)
        self.generator_batches = config.generator_batch_count()
        self.step = self.add_weight(shape=(), dtype="int64", initializer="zeros", name="step",
                                    trainable=False)
        # How far the run is (0 to 1, by steps or wall-clock budget), set by the trainer before
        # each step (the same value on every worker); drives the low-pass schedule.
        self.progress = self.add_weight(shape=(), initializer="zeros", name="progress",
                                        trainable=False)

    def compile(self, d_optimizer, g_optimizer):  # pylint: disable=arguments-differ
        super().compile()
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer

    # ------------------------------------------------------------------ pieces of the step
    def generator_variables(self):
        """What the generator update trains: the volume(s) and the image-formation scalars."""
        return self.generator.trainable_variables + self.image_formation.trainable_variables

    def lowpass_sigma(self):
        """Width (cycles per box) of the critic's input low-pass at the current progress: from
        ``lowpass_start`` linearly to ``N / 2`` at progress ``lowpass_fraction``, then no Gaussian
        (0; :meth:`preprocess` keeps the Nyquist disc).

        Coarse to fine over most of the run (not a fixed number of steps): from a random start
        the low-resolution shape is found only slowly, and fine detail is learned well only on
        top of it."""
        start, fraction = self.config.lowpass_start, self.config.lowpass_fraction
        if start <= 0:
            return tf.constant(0.0)
        t = self.progress.value / fraction
        sigma = start + t * (self.box / 2.0 - start)
        return tf.where(t < 1.0, sigma, 0.0)

    def critic_scores(self, images):
        """The critic's scores ``[b]`` of images ``[b, N, N]`` (in training mode)."""
        return self.critic(images, training=True)

    def preprocess(self, images):
        """What the critic sees: images inside the Nyquist disc, low-passed (per the schedule),
        per-image normalised (:func:`~tfcryogan.physics.fourier.disc_lowpass`)."""
        return fourier.normalize_images(fourier.disc_lowpass(images, self.lowpass_sigma()))

    def simulate(self, ctf, seed, patches=None, spectrum=None, global_batch=None):
        """This replica's simulated images of the trained generator
        (:meth:`~tfcryogan.simulator.ImageFormation.simulate`)."""
        return self.image_formation.simulate(self.generator, ctf, seed,
                                             global_batch or self.global_batch, patches=patches,
                                             spectrum=spectrum)

    # ------------------------------------------------------------------ the adversarial step
    def train_step(self, data):
        """One generator step (after ``n_critic`` critic steps) on this replica's share of a batch.

        ``data``: dict with ``real`` ``[b, n_critic, N, N]`` (real images), ``ctf``
        ``[b, n_critic + 1, 9]`` (CTF rows for the simulated images) and, for real noise patches,
        ``patches`` ``[b, n_critic + 1, N, N]``. Returns per-replica metric contributions (sum them
        over replicas).
        """
        g = self.global_batch
        seeds = tf.random.experimental.stateless_split(
            tf.stack([tf.constant(self.config.seed, tf.int64), self.step.value]), self.n_critic + 1)
        patches = data.get("patches")

        def patches_at(i):
            return None if patches is None else patches[:, i]

        # The volumes are fixed during the critic updates: transform them once.
        spectrum = tf.stop_gradient(projector.volume_spectrum(self.generator.basis_volumes()))

        # Critic updates: real vs simulated, with the gradient penalty (lazily).
        penalty_weights = losses.lazy_penalty_weights(self.n_critic,
                                                       self.config.penalty_interval())
        for i in range(self.n_critic):
            draw, mix = tf.unstack(tf.random.experimental.stateless_split(seeds[i], 2))
            real = self.preprocess(data["real"][:, i])
            fake = tf.stop_gradient(self.preprocess(
                self.simulate(data["ctf"][:, i], draw, patches_at(i), spectrum=spectrum)))
            epsilon = replica_slice(tf.random.stateless_uniform([g], mix), g)
            critic = self.critic_scores
            with tf.GradientTape() as tape:
                real_scores = critic(real)
                fake_scores = critic(fake)
                w_loss = losses.critic_loss(real_scores, fake_scores, g)
                d_loss = w_loss
                if penalty_weights[i]:
                    gp = losses.gradient_penalty(critic, real, fake, epsilon, g)
                    d_loss += self.config.gp_weight * penalty_weights[i] * gp
                # The dynamic loss scale with mixed precision, the identity otherwise (inside the
                # tape, so that the product is recorded).
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
            g_loss = losses.generator_loss(self.critic_scores(fake), g * k)
            if self.generator.latent_dim:
                # Keep generated densities non-negative (the template is clipped; its
                # combinations with the basis are penalised).
                z = tf.random.stateless_normal([4, self.generator.latent_dim], seeds[-1])
                g_loss += self.config.positivity_weight * self.generator.negativity(z) / float(
                    tf.distribute.get_strategy().num_replicas_in_sync)
            scaled = self.g_optimizer.scale_loss(g_loss)
        grads = tape.gradient(scaled, variables)
        self.g_optimizer.apply_gradients(zip(grads, variables))
        return {"wasserstein": -w_loss, "gradient_penalty": gp, "critic_loss": d_loss,
                "generator_loss": g_loss}

    def update_ema(self):
        """Move the EMA generator's weights towards the trained generator's (cross-replica)."""
        if self.ema_generator is None:
            return
        d = self.config.ema_decay
        for ema, w in zip(self.ema_generator.weights, self.generator.weights):
            ema.assign(d * ema + (1.0 - d) * w)
