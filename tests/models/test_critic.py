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


def _turned(images, k, mirror):
    """``images [B, N, N]`` (even ``N``) turned by ``k`` x 90 degrees about the image centre
    (pixel ``N / 2``, RELION's), after a mirror if ``mirror``: pixels 1..N-1 permuted; the first
    row and column (no partner about the centre) are filled with new values."""
    inner = images[:, 1:, 1:]
    if mirror:
        inner = inner[:, :, ::-1]
    out = np.random.default_rng(k + 10 * mirror).normal(size=images.shape).astype(np.float32)
    out[:, 1:, 1:] = np.rot90(inner, k, axes=(1, 2))
    return out


def test_d4_critic_is_invariant_to_turns_and_mirrors_about_the_image_centre():
    """With ``symmetry="d4"`` every turn by 90 degrees and every mirror image (about pixel N/2)
    gets the score of the original image, with and without minibatch statistics; the plain
    critic's scores change (so the check can fail)."""
    rng = np.random.default_rng(2)
    images = rng.normal(size=(8, 16, 16)).astype(np.float32)
    images[:, 4:9, 6:8] += 3.0  # an asymmetric blob, off centre
    for group in (0, 4):
        critic = build_critic(16, 4, group, False, symmetry="d4")
        base = critic(images).numpy()
        for k in range(4):
            for mirror in (False, True):
                np.testing.assert_allclose(critic(_turned(images, k, mirror)).numpy(), base,
                                           rtol=1e-4, atol=1e-5)
    plain = build_critic(16, 4, 0, False)
    base = plain(images).numpy()
    assert np.max(np.abs(plain(_turned(images, 1, True)).numpy() - base)) > 1e-3


def test_unknown_critic_symmetry_is_refused():
    with np.testing.assert_raises(ValueError):
        build_critic(16, 4, 0, False, symmetry="c8")
