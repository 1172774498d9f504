"""Fourier shifts against integer rolls."""

import numpy as np

from tfcryogan.physics import fourier, shifts


def test_integer_shift_is_a_roll():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(3, 16, 16)).astype(np.float32)
    spectra = fourier.image_rfft(images)
    move = np.array([[2.0, 0.0], [0.0, -3.0], [1.0, 5.0]], np.float32)
    moved = fourier.image_irfft(spectra * shifts.translation_phase(move, 16), 16).numpy()
    for img, (dx, dy), got in zip(images, move, moved):
        np.testing.assert_allclose(got, np.roll(img, (int(dy), int(dx)), axis=(0, 1)), atol=1e-4)


def test_origin_convention_moves_by_minus_origin():
    # A RELION origin of (+4 A, 0) at 2 A/px moves the image content 2 px to the -x side.
    shift = shifts.origin_to_shift(np.array([[4.0, -2.0]], np.float32), 2.0, 16).numpy()
    np.testing.assert_allclose(shift, [[fourier.image_origin(16) - 2.0, fourier.image_origin(16) + 1.0]])


def test_half_pixel_shift_preserves_power():
    rng = np.random.default_rng(1)
    images = rng.normal(size=(2, 16, 16)).astype(np.float32)
    spectra = fourier.image_rfft(images)
    phase = shifts.translation_phase(np.array([[0.5, 0.25], [-1.5, 0.75]], np.float32), 16)
    np.testing.assert_allclose(np.abs(spectra * phase), np.abs(spectra), rtol=1e-5, atol=1e-5)
