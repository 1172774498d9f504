"""CTF against an independent transcription of RELION's CTF::getCTF (K1..K5 form)."""

import numpy as np

from tfcryogan.physics import ctf


def relion_ctf(u, v, angle, kv, cs_mm, q, phase, bfac, box, apix):
    """Straight transcription of RELION 3.1 ctf.h (getCTF) on a full centred grid."""
    volt = kv * 1e3
    lam = 12.2643247 / np.sqrt(volt * (1.0 + volt * 0.978466e-6))
    cs = cs_mm * 1e7
    k1 = np.pi / 2 * 2 * lam
    k2 = np.pi / 2 * cs * lam ** 3
    k3 = np.arctan(q / np.sqrt(1 - q * q))
    k4 = -bfac / 4.0
    k5 = np.radians(phase)
    defocus_average = -(u + v) * 0.5
    defocus_deviation = -(u - v) * 0.5
    rad_azimuth = np.radians(angle)
    out = np.zeros((box, box // 2 + 1))
    for i in range(box):
        ky = i if i < (box + 1) // 2 else i - box
        for j in range(box // 2 + 1):
            x, y = j / (box * apix), ky / (box * apix)
            u2 = x * x + y * y
            deltaf = defocus_average + defocus_deviation * np.cos(2 * (np.arctan2(y, x) - rad_azimuth))
            argument = k1 * deltaf * u2 + k2 * u2 * u2 - k5 - k3
            out[i, j] = -np.sin(argument) * np.exp(k4 * u2)
    return out


def test_matches_relion_formula():
    rng = np.random.default_rng(0)
    box, apix = 24, 1.7
    rows = []
    for _ in range(4):
        rows.append([rng.uniform(5000, 30000), rng.uniform(5000, 30000), rng.uniform(-180, 180),
                     rng.choice([200.0, 300.0]), rng.uniform(0.01, 4), rng.uniform(0.02, 0.2),
                     rng.uniform(0, 90), rng.uniform(0, 200), 1.0])
    got = ctf.ctf_half_plane(np.array(rows, np.float32), box, apix).numpy()
    for r, g in zip(rows, got):
        want = relion_ctf(*r[:8], box, apix)
        np.testing.assert_allclose(g, want, atol=2e-4)


def test_zero_frequency_is_plus_amplitude_contrast_times_scale():
    rows = np.array([[12000, 11000, 10, 300, 2.7, 0.07, 0, 50, 0.8]], np.float32)
    got = ctf.ctf_half_plane(rows, 16, 2.0).numpy()
    np.testing.assert_allclose(got[0, 0, 0], 0.07 * 0.8, rtol=1e-4)


def test_astigmatism_axis_follows_defocus_angle():
    # With defocus U > V at angle 0, the first zero along x (U direction) comes at a lower
    # frequency than along y; rotating the angle by 90 degrees swaps them.
    box, apix = 128, 1.0
    rows = np.array([[30000, 10000, 0, 300, 0, 0.0, 0, 0, 1],
                     [30000, 10000, 90, 300, 0, 0.0, 0, 0, 1]], np.float32)
    c = ctf.ctf_half_plane(rows, box, apix).numpy()
    first_zero = lambda line: int(np.argmax(np.diff(np.sign(line)) != 0))  # noqa: E731
    along_x0, along_y0 = first_zero(c[0, 0, 1:]), first_zero(c[0, 1:box // 2, 0])
    along_x1, along_y1 = first_zero(c[1, 0, 1:]), first_zero(c[1, 1:box // 2, 0])
    assert along_x0 < along_y0
    assert along_x1 > along_y1


def test_wavelength_300kv():
    np.testing.assert_allclose(float(ctf.electron_wavelength(300.0)), 0.019687, atol=1e-5)
