"""The critic (Wasserstein discriminator): images -> one score each."""

import math

import keras


def build_critic(box, base_channels=16, max_channels=256, extra_convs=0, mixed_precision=False,
                 name="critic"):
    """A convolutional critic for ``box x box`` images, width and depth scaled with the box.

    ``log2(box / 2)`` stages (at least 2), each a 4x4 stride-2 convolution and LeakyReLU(0.2)
    (DCGAN-style), channels doubling from ``base_channels`` up to ``max_channels``, so the last
    feature map is 2x2 whatever the box; ``extra_convs`` adds 3x3 stride-1 convolutions after each
    of the deeper stages for capacity. No batch normalisation: it couples the images of a batch and
    breaks the per-image gradient penalty. A dense layer gives the score. The cost per image is
    dominated by the early, full-resolution stages, which are kept narrow (the step is CPU-bound).

    Args:
      box: image size ``N`` (pixels).
      mixed_precision: compute the convolutions in float16 (Keras ``mixed_float16`` policy: float32
        variables, float16 activations); the score stays float32. For GPUs with tensor cores.
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
        if i >= 2:
            for j in range(extra_convs):
                x = keras.layers.Conv2D(channels, 3, padding="same", name=f"conv{i}_{j}",
                                        dtype=policy)(x)
                x = keras.layers.LeakyReLU(0.2, dtype=policy)(x)
        channels = min(2 * channels, max_channels)
    x = keras.layers.Flatten(dtype=policy)(x)
    score = keras.layers.Dense(1, name="score", dtype="float32")(x)
    score = keras.layers.Reshape(())(score)
    return keras.Model(images, score, name=name)
