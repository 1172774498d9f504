"""Gold-standard FSC of two half maps: alignment of half 2 onto half 1, the masked curve's
phase-randomisation correction, and the solvent mask."""

import numpy as np

from tfcryogan.evaluation import align as al
from tfcryogan.evaluation import fsc as fsc_lib
from tfcryogan.evaluation import gold_standard as gs
from tfcryogan.phantoms import phantom
from tfcryogan.physics import fourier, rotations


def noisy(volume, sigma, seed):
    rng = np.random.default_rng(seed)
    return (volume + rng.normal(0.0, sigma, volume.shape)).astype(np.float32)


def test_half2_is_aligned_onto_half1_whatever_its_pose_and_hand():
    """Half 2 is half 1's particle turned, mirrored and shifted, each with its own noise: the
    gold standard finds the mirror, brings half 2 back (its FSC with the clean map rises from
    nothing to near that of half 1) and the average is closer to the truth than either half."""
    n = 32
    truth = fourier.fourier_crop(phantom(2 * n), n, 3).numpy()
    rotation = rotations.euler_to_matrix(40.0, 70.0, -30.0).numpy()
    moved = al.rotate_volume(fourier.fourier_crop(phantom(2 * n), 2 * n, 3),
                             rotation @ al.MIRROR, [2.0, -3.0, 1.0])
    moved = fourier.fourier_crop(moved, n, 3).numpy()
    sigma = 0.5 * truth.std()  # signal-to-noise power 4
    half1, half2 = noisy(truth, sigma, 1), noisy(moved, sigma, 2)
    result = gs.gold_standard(half1, half2, 3.0)
    assert result.alignment["flipped"]
    corr = lambda a, b: float(np.corrcoef(a.ravel(), b.ravel())[0, 1])  # noqa: E731
    assert corr(half2, truth) < 0.6 < 0.85 < corr(result.half2, truth)
    assert corr(result.average, truth) > max(corr(half1, truth), corr(result.half2, truth))
    resolutions = result.resolutions()
    for kind in ("unmasked", "masked"):
        assert 2 * 3.0 <= resolutions[kind]["resolution_0143_A"] < 20.0
        assert resolutions[kind]["resolution_05_A"] >= resolutions[kind]["resolution_0143_A"]
    # The curves are those of the aligned halves.
    np.testing.assert_allclose(result.fsc_unmasked,
                               fsc_lib.fsc(result.half1, result.half2).numpy(), atol=1e-5)


def test_the_mask_does_not_inflate_the_fsc_of_independent_noise():
    """Two halves sharing only a low-resolution blob, with independent noise at higher
    frequencies: the raw masked FSC is lifted by the mask's own correlation, the corrected one
    is not (it stays near zero where the halves share nothing)."""
    n = 32
    blob = fourier.gaussian_blur(phantom(n), 3.0, 3).numpy()
    rng = np.random.default_rng(5)
    high = [fourier.gaussian_lowpass(rng.normal(size=(n,) * 3).astype(np.float32), 8.0, 3)
            .numpy() for _ in range(2)]
    scale = 0.5 * blob.std() / high[0].std()
    half1, half2 = blob + scale * high[0], blob + scale * high[1]
    result = gs.gold_standard(half1, half2, 4.0, align=False)
    shells = np.arange(len(result.fsc_masked))
    outer = shells >= 9
    assert np.abs(result.fsc_masked[outer]).mean() < 0.1
    assert result.fsc_unmasked[1] > 0.8
    mask = result.mask
    assert mask.min() >= 0.0 and mask.max() <= 1.0 + 1e-6
    assert 0.02 < mask.mean() < 0.8  # around the particle, not the whole box


def test_solvent_mask_covers_the_particle_with_a_soft_edge():
    n = 32
    volume = phantom(n)
    mask = gs.solvent_mask(volume, 4.0).numpy()
    assert np.all(mask[volume > 0.3 * volume.max()] == 1.0)
    assert np.any((mask > 0.0) & (mask < 1.0))  # a soft edge
    assert mask[0, 0, 0] == 0.0  # the corner is solvent
