"""WGAN-GP losses against closed forms."""

import numpy as np
import tensorflow as tf

from tfcryogan.training import losses


def test_gradient_penalty_uses_the_per_image_norm():
    # A linear critic D(x) = sum(w * x) has gradient w for every image: the per-image norm is
    # ||w||_2 over all pixels, so the penalty is (||w|| - 1)^2 exactly. A per-pixel norm would
    # give mean((|w_ij| - 1)^2) instead, which differs for this w.
    rng = np.random.default_rng(0)
    w = tf.constant(rng.normal(0, 0.3, (8, 8)).astype(np.float32))

    def critic(x, training=False):
        del training
        return tf.reduce_sum(x * w, axis=[1, 2])

    real = tf.constant(rng.normal(size=(4, 8, 8)).astype(np.float32))
    fake = tf.constant(rng.normal(size=(4, 8, 8)).astype(np.float32))
    gp = float(losses.gradient_penalty(critic, real, fake, tf.constant([0.1, 0.5, 0.7, 1.0]), 4))
    want = (np.linalg.norm(w.numpy()) - 1.0) ** 2
    per_pixel = np.mean((np.abs(w.numpy()) - 1.0) ** 2)
    np.testing.assert_allclose(gp, want, rtol=1e-4)
    assert abs(gp - per_pixel) > 0.1


def test_losses_scale_by_global_batch():
    real = tf.constant([1.0, 2.0])
    fake = tf.constant([0.5, -0.5])
    # A replica holding 2 of 8 images contributes a quarter of its own mean.
    np.testing.assert_allclose(float(losses.critic_loss(real, fake, 8)), (0.0 - 3.0) / 8)
    np.testing.assert_allclose(float(losses.generator_loss(fake, 8)), 0.0)


def test_lazy_penalty_weights_keep_the_total_penalty():
    # Applied on updates 0, every, 2 every, ... and weighted by the updates each stands for: the
    # weights sum to the update count whatever the two numbers, so a step with fewer updates than
    # ``every`` is not over-penalised (n_critic=1, every=4 gives [1], not [4]).
    for n in range(1, 7):
        for every in range(1, 6):
            w = losses.lazy_penalty_weights(n, every)
            assert len(w) == n and sum(w) == n
            assert [i for i, x in enumerate(w) if x] == list(range(0, n, every))
    assert losses.lazy_penalty_weights(4, 4) == [4, 0, 0, 0]
    assert losses.lazy_penalty_weights(5, 4) == [4, 0, 0, 0, 1]
    assert losses.lazy_penalty_weights(1, 4) == [1]
