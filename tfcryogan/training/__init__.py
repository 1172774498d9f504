"""Adversarial training: WGAN-GP losses, the tf.function step, strategies, checkpoints, outputs."""
