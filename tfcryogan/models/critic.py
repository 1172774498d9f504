"""The critic (Wasserstein discriminator): images -> one score each."""

import math

import keras
import numpy as np
import tensorflow as tf

from tfcryogan.physics import fourier


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


class PolarResample(keras.layers.Layer):
    """``[B, N, N]`` -> ``[B, R, T, 1]``: each image bilinearly sampled on a polar grid about the
    image centre (:func:`tfcryogan.physics.fourier.image_origin`), radii ``0 .. R-1`` pixels
    (``R = N - origin``, the largest circle inside the image), ``T`` angles ``2 pi j / T``.

    A turn of the image about its centre by ``2 pi m / T`` is then a cyclic shift of the angle
    axis by ``m`` (exactly for turns by multiples of 90 degrees when ``4 | T``, to interpolation
    error otherwise). Fixed gather indices and weights: no learned parameters, GPU-friendly."""

    def __init__(self, box, angles, **kwargs):
        super().__init__(**kwargs)
        self.box, self.angles = int(box), int(angles)
        origin = fourier.image_origin(self.box)
        self.radii = self.box - origin
        r = np.arange(self.radii, dtype=np.float64)[:, None]
        theta = 2.0 * np.pi * np.arange(self.angles) / self.angles
        y = (origin + r * np.sin(theta)[None]).ravel()
        x = (origin + r * np.cos(theta)[None]).ravel()
        y = np.where(np.abs(y - np.round(y)) < 1e-9, np.round(y), y)
        x = np.where(np.abs(x - np.round(x)) < 1e-9, np.round(x), x)
        y0, x0 = np.floor(y).astype(np.int64), np.floor(x).astype(np.int64)
        fy, fx = y - y0, x - x0
        index, weight = [], []
        for dy, wy in ((0, 1.0 - fy), (1, fy)):
            for dx, wx in ((0, 1.0 - fx), (1, fx)):
                yy, xx = np.clip(y0 + dy, 0, self.box - 1), np.clip(x0 + dx, 0, self.box - 1)
                index.append(yy * self.box + xx)
                weight.append(wy * wx)
        self.index = tf.constant(np.stack(index, -1), tf.int32)  # [R*T, 4]
        self.weight = tf.constant(np.stack(weight, -1), tf.float32)

    def call(self, images):
        flat = tf.reshape(tf.cast(images, tf.float32), [-1, self.box * self.box])
        samples = tf.gather(flat, self.index, axis=1)  # [B, R*T, 4]
        polar = tf.reduce_sum(samples * self.weight, axis=-1)
        return tf.cast(tf.reshape(polar, [-1, self.radii, self.angles, 1]), self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "box": self.box, "angles": self.angles}


class CircularAnglePad(keras.layers.Layer):
    """``[B, R, T, C]`` -> ``[B, R + 2, T + 2, C]``: one zero row at each end of the radius axis and
    one wrapped column at each end of the angle axis, so that a 4x3 stride-(2, 1) convolution
    halves the radii and commutes with cyclic shifts of the angles (turns of the image)."""

    def call(self, x):
        x = tf.concat([x[:, :, -1:], x, x[:, :, :1]], axis=2)
        return tf.pad(x, [[0, 0], [1, 1], [0, 0], [0, 0]])


class AnglePool(keras.layers.Layer):
    """``[B, 1, T, C]`` -> ``[B, 2C]`` float32: the mean and the maximum of each channel over the
    angles, functions of the image invariant to cyclic shifts of the angles (turns)."""

    def call(self, x):
        x = tf.cast(x[:, 0], tf.float32)
        return tf.concat([tf.reduce_mean(x, axis=1), tf.reduce_max(x, axis=1)], axis=-1)


#: Critic symmetries: "none", or "rotation" (invariant to turns about the image centre).
CRITIC_SYMMETRIES = ("none", "rotation")


#: Channels of the critic's widest stages (they double per stage up to this).
MAX_CHANNELS = 256


def build_critic(box, base_channels, batch_statistics_group, mixed_precision, symmetry="none",
                 name="critic"):
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
    if symmetry not in CRITIC_SYMMETRIES:
        raise ValueError(f"critic symmetry {symmetry!r}: expected one of {CRITIC_SYMMETRIES}")
    images = keras.Input(shape=(box, box), name="images")
    if symmetry == "rotation":
        return _rotation_invariant(images, box, base_channels, batch_statistics_group, policy,
                                   name)
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


def _rotation_invariant(images, box, base_channels, batch_statistics_group, policy, name):
    """The critic on the images' polar resampling (:class:`PolarResample`, ``T = 2N`` angles):
    convolutions that halve the radii and wrap the angles (:class:`CircularAnglePad`), down to
    one radius, then the mean and maximum over the angles (:class:`AnglePool`): a score
    invariant to turns of the image about its centre."""
    polar = PolarResample(box, 2 * box, name="polar", dtype=policy)
    x = polar(images)
    radii, channels, i = polar.radii, base_channels, 0
    while radii > 1:
        x = CircularAnglePad(name=f"wrap{i}", dtype=policy)(x)
        x = keras.layers.Conv2D(channels, (4, 3), strides=(2, 1), padding="valid",
                                name=f"down{i}", dtype=policy)(x)
        x = keras.layers.LeakyReLU(0.2, dtype=policy)(x)
        channels, radii, i = min(2 * channels, MAX_CHANNELS), radii // 2, i + 1
    x = AnglePool(name="angle_pool", dtype=policy)(x)
    if batch_statistics_group > 0:
        x = GroupFeatureSpread(batch_statistics_group, name="batch_statistics")(x)
    score = keras.layers.Dense(1, name="score", dtype="float32")(x)
    score = keras.layers.Reshape(())(score)
    return keras.Model(images, score, name=name)
