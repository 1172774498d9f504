"""The critic (Wasserstein discriminator): images -> one score each."""

import math

import keras
import tensorflow as tf


class GroupFeatureSpread(keras.layers.Layer):
    """Minibatch statistics (StyleGAN's minibatch standard deviation, per learned feature).

    ``[B, F]`` features -> ``[B, F + S]``: ``S`` learned linear features of each image, their
    standard deviation over the image's group (consecutive runs of ``group`` images in the batch;
    a last, shorter run is its own group) appended to every image of the group.

    Why: a critic that scores images one by one learns which single images look real; whether the
    *spread* of a batch of particles is right (too much variation in directions the data do not
    vary in, too little along those they do) it sees only through rare extreme images. With the
    group's spread of some features as an input, a simulated batch whose conformations vary in
    the wrong ways, or too little, is told apart directly (Multi-CryoGAN)."""

    def __init__(self, group, statistics=16, **kwargs):
        super().__init__(**kwargs)
        self.group = int(group)
        self.statistics = int(statistics)
        # No bias: it cannot change a standard deviation, so its gradient is rounding noise,
        # which Adam would turn into full-size updates.
        self.project = keras.layers.Dense(self.statistics, use_bias=False, name="statistics",
                                          dtype="float32")

    def build(self, input_shape):
        self.project.build((None, input_shape[-1]))

    def call(self, features):
        f = tf.cast(features, tf.float32)
        h = self.project(f)
        ids = tf.range(tf.shape(h)[0]) // self.group
        groups = ids[-1] + 1
        mean = tf.math.unsorted_segment_mean(h, ids, groups)
        var = tf.math.unsorted_segment_mean(tf.square(h - tf.gather(mean, ids)), ids, groups)
        spread = tf.gather(tf.sqrt(var + 1e-8), ids)
        return tf.concat([f, spread], axis=-1)

    def get_config(self):
        return {**super().get_config(), "group": self.group, "statistics": self.statistics}


#: Channels of the critic's widest stages (they double per stage up to this).
MAX_CHANNELS = 256


def build_critic(box, base_channels, batch_statistics_group, mixed_precision, name="critic"):
    """A convolutional critic for ``box x box`` images, width and depth scaled with the box.

    ``log2(box / 2)`` stages (at least 2), each a 4x4 stride-2 convolution and LeakyReLU(0.2)
    (DCGAN-style), channels doubling from ``base_channels`` up to :data:`MAX_CHANNELS`, so the
    last feature map is 2x2 whatever the box. No batch normalisation: it couples the images of a
    batch and breaks the per-image gradient penalty. A dense layer gives the score.

    Args:
      box: image size ``N`` (pixels).
      base_channels: channels of the first stage.
      mixed_precision: compute the convolutions in float16 (Keras ``mixed_float16`` policy: float32
        variables, float16 activations); the score stays float32. For GPUs with tensor cores.
      batch_statistics_group: if > 0, the score also sees the spread of learned features over
        groups of this many consecutive images (:class:`GroupFeatureSpread`); the images of a
        group must then come from one source (all real or all simulated), as in the training
        step. 0: each image is scored on its own.
    Returns:
      ``keras.Model``: ``[B, N, N]`` float32 (per-image normalised) -> ``[B]`` scores.
    """
    stages = max(2, int(math.floor(math.log2(box / 2.0))))
    policy = keras.DTypePolicy("mixed_float16" if mixed_precision else "float32")
    images = keras.Input(shape=(box, box), name="images")
    x = keras.layers.Reshape((box, box, 1), dtype=policy)(images)
    channels = base_channels
    for i in range(stages):
        x = keras.layers.Conv2D(channels, 4, strides=2, padding="same", name=f"down{i}",
                                dtype=policy)(x)
        x = keras.layers.LeakyReLU(0.2, dtype=policy)(x)
        channels = min(2 * channels, MAX_CHANNELS)
    x = keras.layers.Flatten(dtype=policy)(x)
    if batch_statistics_group > 0:
        x = GroupFeatureSpread(batch_statistics_group, name="batch_statistics")(x)
    score = keras.layers.Dense(1, name="score", dtype="float32")(x)
    score = keras.layers.Reshape(())(score)
    return keras.Model(images, score, name=name)
