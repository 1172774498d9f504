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
