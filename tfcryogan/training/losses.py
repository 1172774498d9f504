"""WGAN-GP losses with the gradient norm taken per image (over all its pixels).

Every function returns a per-replica *sum over its images divided by the global batch*, so that
summing over replicas (what ``tf.distribute`` does with gradients) gives the global mean.
"""

import tensorflow as tf


def critic_loss(real_scores, fake_scores, global_batch):
    """``E[D(fake)] - E[D(real)]`` (the negative Wasserstein estimate), scaled by the global batch.

    ``real_scores``, ``fake_scores``: ``[b]`` float32 for this replica's images."""
    return (tf.reduce_sum(fake_scores) - tf.reduce_sum(real_scores)) / global_batch


def generator_loss(fake_scores, global_batch):
    """``-E[D(fake)]`` scaled by the global batch."""
    return -tf.reduce_sum(fake_scores) / global_batch


def gradient_penalty(critic, real, fake, epsilon, global_batch):
    """``E[(||grad_x D(x)||_2 - 1)^2]`` at random interpolates ``x = e real + (1 - e) fake``.

    The norm is taken per image over all its pixels, not per pixel: the critic must be
    1-Lipschitz as a function of whole images.

    Args:
      critic: callable ``[b, N, N] -> [b]`` (in training mode).
      real, fake: ``[b, N, N]`` float32 images.
      epsilon: ``[b]`` float32 uniform in [0, 1] (drawn by the caller so that it can be the same
        under every distribution strategy).
      global_batch: images over all replicas.
    Returns:
      scalar float32 (this replica's share of the mean penalty).
    """
    e = epsilon[:, None, None]
    mixed = e * real + (1.0 - e) * fake
    with tf.GradientTape() as tape:
        tape.watch(mixed)
        scores = critic(mixed)
    grads = tape.gradient(scores, mixed)
    norms = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2]) + 1e-12)
    return tf.reduce_sum(tf.square(norms - 1.0)) / global_batch


def lazy_penalty_weights(n_updates, every):
    """Weights of the gradient penalty over one step's ``n_updates`` critic updates, applied lazily
    (on updates 0, ``every``, 2 ``every``, ...; 0 elsewhere).

    Each applied penalty is weighted by the number of updates it stands for (``every``, fewer at
    the end of the step), so the weights sum to ``n_updates``: the same expected penalty as on
    every update, at a fraction of the cost (the penalty's double backward pass is the costliest
    part of a critic update). Returns a list of ``n_updates`` ints."""
    return [min(every, n_updates - i) if i % every == 0 else 0 for i in range(n_updates)]
