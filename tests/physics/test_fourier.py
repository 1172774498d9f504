"""The image and volume operations of physics/fourier.py against closed forms: Fourier
resampling keeps positions (in A) and values, crop/pad keeps RELION's centre, the Gaussian
low-pass is the Gaussian convolution, normalisation is per image."""

import numpy as np
import pytest

from tfcryogan.physics import fourier


def blobs(box, centres, sigma, ndim=3, origin=None):
    """Gaussian blobs at ``centres`` (pixels from the centre, (x, y[, z])), ``[(z,) y, x]``."""
    origin = fourier.origin(box, ndim) if origin is None else origin
    c = np.arange(box) - origin
    grids = np.meshgrid(*([c] * ndim), indexing="ij")[::-1]  # x, y(, z)
    out = np.zeros((box,) * ndim)
    for k, centre in enumerate(centres):
        r2 = sum((g - p) ** 2 for g, p in zip(grids, centre))
        out += (1.0 + 0.3 * k) * np.exp(-r2 / (2 * sigma * sigma))
    return out.astype(np.float32)


CENTRES_3D = np.array([(4.0, -2.0, 3.0), (-3.0, 4.0, -1.0), (0.5, 1.0, -5.0)])
CENTRES_2D = CENTRES_3D[:, :2]


def test_fourier_crop_keeps_positions_and_values_of_volumes():
    vol = blobs(32, CENTRES_3D, 2.5)
    small = fourier.fourier_crop(vol, 16, 3).numpy()
    np.testing.assert_allclose(small, blobs(16, CENTRES_3D / 2, 1.25), atol=0.02)
    back = fourier.fourier_crop(small, 32, 3).numpy()
    np.testing.assert_allclose(back, vol, atol=0.03)
    np.testing.assert_allclose(fourier.fourier_crop(np.ones((20,) * 3, np.float32), 13, 3),
                               1.0, atol=1e-5)


@pytest.mark.parametrize("box_in, box_out", [(64, 24), (63, 21), (32, 48)])
def test_fourier_crop_keeps_the_image_centre_of_odd_and_even_boxes(box_in, box_out):
    """Images are centred at (N + 1) // 2 (RELION's projections), volumes at N // 2: a blob at
    the centre of one box must land at the centre of the other."""
    img = blobs(box_in, CENTRES_2D, 3.0, ndim=2)[None]
    out = fourier.fourier_crop(img, box_out, 2).numpy()[0]
    s = box_out / box_in
    np.testing.assert_allclose(out, blobs(box_out, CENTRES_2D * s, 3.0 * s, ndim=2), atol=0.02)


def test_resample_keeps_angstrom_positions_and_reports_the_pixel_size():
    # Blobs at CENTRES * 3 A on a 3 A grid land at the same A positions on a 2 A grid.
    vol = blobs(24, CENTRES_3D, 2.0)
    out, px = fourier.resample(vol, 3.0, 2.0, 40, ndim=3)
    assert out.shape == (40, 40, 40) and abs(px - 2.0) < 1e-6
    np.testing.assert_allclose(out, blobs(40, CENTRES_3D * 1.5, 3.0), atol=0.02)
    # A ratio that no box up to N + 64 makes whole: the closest grid, and its true pixel size.
    _, px = fourier.resample(vol, 3.0, 2.0 * (1 + 1e-3) * np.pi / 3, 24, ndim=3)
    assert abs(px - 2.0 * (1 + 1e-3) * np.pi / 3) < 0.02 * px


def test_resample_images_downsamples_a_gaussian():
    img = blobs(64, [(0.0, 0.0)], 6.0, ndim=2)[None]
    out = fourier.resample_images(img, 1.0, 2.0, 24).numpy()[0]
    np.testing.assert_allclose(out, blobs(24, [(0.0, 0.0)], 3.0, ndim=2), atol=0.01)


@pytest.mark.parametrize("box, ndim", [(16, 2), (17, 2), (12, 3), (13, 3)])
def test_crop_or_pad_keeps_the_centre(box, ndim):
    x = np.zeros((box,) * ndim, np.float32)
    c = fourier.origin(box, ndim)
    x[(c,) * ndim] = 1.0
    for out_box in (box - 5, box + 6):
        out = fourier.crop_or_pad(x, out_box, ndim).numpy()
        assert out.shape == (out_box,) * ndim
        assert out[(fourier.origin(out_box, ndim),) * ndim] == 1.0 and out.sum() == 1.0


@pytest.mark.parametrize("ndim", [2, 3])
def test_gaussian_blur_is_the_gaussian_convolution(ndim):
    """A Gaussian of width s blurred by b is a Gaussian of width sqrt(s^2 + b^2), with the same
    integral; sigma <= 0 leaves the input as it is."""
    box = 32
    x = blobs(box, [(0.0,) * ndim], 2.0, ndim)
    out = fourier.gaussian_blur(x, 1.5, ndim).numpy()
    width = np.hypot(2.0, 1.5)
    want = blobs(box, [(0.0,) * ndim], width, ndim) * (2.0 / width) ** ndim
    np.testing.assert_allclose(out, want, atol=2e-3 * want.max())
    np.testing.assert_allclose(fourier.gaussian_lowpass(x, 0.0, ndim), x, atol=1e-6)


def test_normalize_images_is_per_image():
    rng = np.random.default_rng(2)
    images = rng.normal(5.0, 3.0, (4, 16, 16)).astype(np.float32) * np.arange(1, 5)[:, None, None]
    out = fourier.normalize_images(images).numpy()
    np.testing.assert_allclose(out.mean(axis=(1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(1, 2)), 1.0, rtol=1e-3)


@pytest.mark.parametrize("box", [16, 15])
def test_disc_lowpass_keeps_the_open_nyquist_disc_only(box):
    rng = np.random.default_rng(box)
    x = rng.normal(size=(3, box, box)).astype(np.float32)
    k = np.fft.fftfreq(box) * box
    inside = k[:, None] ** 2 + k[None, :] ** 2 < (box / 2.0) ** 2
    for sigma in (0.0, 3.0):
        gauss = np.exp(-(k[:, None] ** 2 + k[None, :] ** 2) / (2 * sigma ** 2)) if sigma else 1.0
        expected = np.real(np.fft.ifft2(np.fft.fft2(x) * inside * gauss))
        np.testing.assert_allclose(fourier.disc_lowpass(x, sigma).numpy(), expected, atol=1e-5)
