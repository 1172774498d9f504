"""The critic's optional minibatch statistics."""

import numpy as np
import tensorflow as tf

from tfcryogan.models.critic import GroupFeatureSpread, build_critic


def test_batch_statistics_couple_images_only_within_their_group():
    """With groups of 4, changing one image changes the scores of its group's other images and
    of no other group (a last, shorter group included); without them every image is scored on
    its own."""
    rng = np.random.default_rng(0)
    images = rng.normal(size=(10, 16, 16)).astype(np.float32)
    changed = images.copy()
    changed[1] += rng.normal(size=(16, 16)).astype(np.float32)
    changed_last = images.copy()
    changed_last[9] += rng.normal(size=(16, 16)).astype(np.float32)
    grouped = build_critic(16, 16, 4, False)
    plain = build_critic(16, 16, 0, False)
    base, moved = grouped(images).numpy(), grouped(changed).numpy()
    assert np.all(np.abs(moved[[0, 2, 3]] - base[[0, 2, 3]]) > 1e-6)
    np.testing.assert_array_equal(moved[4:], base[4:])
    moved_last = grouped(changed_last).numpy()
    assert abs(moved_last[8] - base[8]) > 1e-6
    np.testing.assert_array_equal(moved_last[:8], base[:8])
    base, moved = plain(images).numpy(), plain(changed).numpy()
    np.testing.assert_allclose(moved[[0, 2, 3, 4]], base[[0, 2, 3, 4]], rtol=1e-6)


def test_group_feature_spread_is_the_standard_deviation_of_learned_features():
    """The appended values are each group's standard deviation of the layer's linear features:
    0 for a group of identical images, the numpy figure otherwise."""
    layer = GroupFeatureSpread(3, statistics=5)
    rng = np.random.default_rng(1)
    features = rng.normal(size=(6, 7)).astype(np.float32)
    features[3:] = features[3]  # second group: three identical images
    out = layer(tf.constant(features)).numpy()
    assert out.shape == (6, 12)
    np.testing.assert_array_equal(out[:, :7], features)
    h = layer.project(tf.constant(features)).numpy()
    np.testing.assert_allclose(out[0, 7:], h[:3].std(axis=0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out[:3, 7:], np.tile(out[:1, 7:], (3, 1)))
    assert np.all(out[3:, 7:] < 1e-3)


def _turned_about_centre(images, quarter_turns):
    """``[B, N, N]`` images turned by ``quarter_turns`` x 90 degrees about the pixel
    ``image_origin(N)`` (their content lies within a disk about it, so nothing is lost)."""
    from tfcryogan.physics.fourier import image_origin
    n = images.shape[-1]
    o = image_origin(n)
    # Move the centre pixel to the array's middle pixel of an odd crop, turn, move it back.
    half = min(o, n - 1 - o)
    out = np.zeros_like(images)
    crop = images[:, o - half:o + half + 1, o - half:o + half + 1]
    out[:, o - half:o + half + 1, o - half:o + half + 1] = np.rot90(crop, quarter_turns,
                                                                   axes=(1, 2))
    return out


def test_rotation_critic_is_invariant_to_turns_and_not_to_other_changes():
    """The rotation-invariant critic scores an image turned by 90, 180 and 270 degrees about the
    image centre as the image itself (exact: a permutation of polar samples), a 30-degree turn
    within interpolation error of it, and a shifted image differently; its gradient penalty
    (second order through the polar resampling) is finite."""
    import scipy.ndimage
    rng = np.random.default_rng(1)
    n = 32
    yy, xx = np.mgrid[:n, :n] - 16
    disk = (yy ** 2 + xx ** 2) < 12 ** 2
    smooth = np.stack([scipy.ndimage.gaussian_filter(rng.normal(size=(n, n)), 1.5)
                       for _ in range(4)]) * disk
    images = smooth.astype(np.float32)
    critic = build_critic(n, 8, 0, False, symmetry="rotation")
    base = critic(images).numpy()
    spread = np.std(base)
    assert spread > 1e-4
    for k in (1, 2, 3):
        np.testing.assert_allclose(critic(_turned_about_centre(images, k)).numpy(), base,
                                   atol=1e-5 * max(1.0, np.abs(base).max()))
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)  # a 30-degree turn about pixel (16, 16)
    coords = np.stack([16 + c * yy - s * xx, 16 + s * yy + c * xx])
    turned = np.stack([scipy.ndimage.map_coordinates(im, coords, order=3) for im in smooth])
    shifted = np.roll(images, 3, axis=2)
    d_turn = np.abs(critic(turned.astype(np.float32)).numpy() - base).mean()
    d_shift = np.abs(critic(shifted).numpy() - base).mean()
    assert d_turn < 0.3 * d_shift
    x = tf.constant(images)
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            inner.watch(x)
            score = tf.reduce_sum(critic(x))
        penalty = tf.reduce_sum(tf.square(inner.gradient(score, x)))
    # The kernels (biases enter the input gradient only through LeakyReLU's piecewise-linear
    # pattern, so the penalty's gradient in them is zero almost everywhere, as in any such critic).
    variables = [v for v in critic.trainable_variables if v.path.endswith("kernel")]
    grads = outer.gradient(penalty, variables)
    assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in grads)
    assert all(np.abs(g.numpy()).max() > 0 for g in grads)
