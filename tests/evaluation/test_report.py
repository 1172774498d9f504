"""compare_maps against known FSC curves; the CSV and plot writers."""

import csv

import numpy as np
import pytest

from tfcryogan.evaluation import align as al
from tfcryogan.evaluation import report
from tfcryogan.phantoms import phantom
from tfcryogan.physics import fourier, rotations


def shell_filter(box, keep):
    """``[N, N, N]`` real mask in rfft-free full-spectrum layout: 1 where round(|k|) satisfies
    ``keep(radius)``."""
    k = np.fft.fftfreq(box) * box
    r = np.round(np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2))
    return keep(r).astype(np.float64)


def band(volume, keep):
    return np.real(np.fft.ifftn(np.fft.fftn(volume) * shell_filter(volume.shape[0], keep))
                   ).astype(np.float32)


def test_identical_maps_reach_nyquist():
    v = phantom(24)
    out = report.compare_maps(v, v, 2.0, align=False)
    assert out["alignment"] is None and out["nyquist_A"] == 4.0
    for t in ("0.5", "0.143"):
        assert out["resolution"][t] == {"angstrom": 4.0, "fraction_of_nyquist": 1.0}
    np.testing.assert_allclose(out["fsc"]["fsc"], 1.0, atol=1e-5)
    np.testing.assert_allclose(out["aligned_volume"], v)


def test_known_cutoff_gives_known_resolution():
    # Reference: white noise. Map: the same up to shell 8, independent noise above: the FSC is 1
    # up to shell 8 and ~0 above, so it crosses 0.5 and 0.143 between shells 8 and 9.
    n, px = 32, 2.0
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(n,) * 3).astype(np.float32)
    other = rng.normal(size=(n,) * 3).astype(np.float32)
    vol = band(ref, lambda r: r <= 8) + band(other, lambda r: r > 8)
    out = report.compare_maps(vol, ref, px, align=False)
    curve = np.array(out["fsc"]["fsc"])
    assert np.all(curve[:9] > 0.999) and np.all(np.abs(curve[9:]) < 0.2)
    for t, thr in (("0.5", 0.5), ("0.143", 0.143)):
        shell = 8 + (1 - thr) / (1 - curve[9])
        res = out["resolution"][t]
        assert res["angstrom"] == pytest.approx(n * px / shell, rel=1e-6)
        assert res["fraction_of_nyquist"] == pytest.approx(shell / (n / 2), rel=1e-6)
        assert 8.4 < shell < 9.0
    # The shells table.
    assert out["fsc"]["shell"][4] == 4 and out["fsc"]["resolution_A"][0] is None
    assert out["fsc"]["frequency_per_A"][4] == pytest.approx(4 / (n * px))
    assert out["fsc"]["resolution_A"][8] == pytest.approx(n * px / 8)


def test_mask_hides_density_outside_its_radius():
    n, px = 32, 3.0
    v = phantom(n)  # inside radius 0.35 n = 11 voxels
    junk = np.zeros_like(v)
    junk[1:5, 1:5, 1:5] = 5.0 * np.random.default_rng(1).random((4, 4, 4))  # in a corner
    unmasked = report.compare_maps(v + junk, v, px, align=False)
    masked = report.compare_maps(v + junk, v, px, align=False, mask_radius_A=12 * px,
                                 mask_edge_A=2 * px)
    assert masked["mask"] == {"radius_A": 36.0, "edge_A": 6.0}
    assert unmasked["resolution"]["0.5"]["fraction_of_nyquist"] < 0.5
    assert masked["resolution"]["0.5"]["fraction_of_nyquist"] == 1.0


def test_compare_maps_with_alignment():
    n, px = 32, 2.5
    big = phantom(2 * n)
    truth = fourier.fourier_crop(big, n, 3).numpy()
    rotation = rotations.euler_to_matrix(30.0, 100.0, -60.0).numpy()
    vol = fourier.fourier_crop(al.rotate_volume(big, rotation, [2.0, 0.0, -3.0]), n, 3).numpy()
    out = report.compare_maps(vol, truth, px, align_options={"n_rotations": 2000})
    a = out["alignment"]
    assert a["flipped"] is False and a["correlation"] > 0.95
    m = np.array(a["matrix"])
    assert al.rotation_angle(m, rotation.T) < 2.0
    e = a["euler_relion_deg"]
    np.testing.assert_allclose(rotations.euler_to_matrix(e["rot"], e["tilt"], e["psi"]).numpy(),
                               m, atol=1e-4)
    np.testing.assert_allclose(a["shift_A"], np.array(a["shift_voxels"]) * px, rtol=1e-6)
    np.testing.assert_allclose(a["shift_A"], -rotation.T @ [1.0, 0.0, -1.5] * px, atol=0.5)
    assert out["resolution"]["0.5"]["fraction_of_nyquist"] > 0.9
    assert out["resolution_unaligned"]["0.5"]["fraction_of_nyquist"] < 0.2
    assert out["aligned_volume"].shape == (n, n, n)


def test_write_fsc_csv_and_plot(tmp_path):
    n, px = 16, 4.0
    curve = np.linspace(1.0, -0.1, n // 2 + 1)
    path = tmp_path / "deep" / "er" / "fsc.csv"
    report.write_fsc_csv(path, {"fsc": curve, "other": curve / 2}, n, px)
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["shell", "frequency_per_A", "resolution_A", "fsc", "other"]
    assert len(rows) == n // 2 + 2 and rows[1][2] == "inf"
    assert float(rows[5][1]) == pytest.approx(4 / (n * px)) and float(rows[5][2]) == 16.0
    assert float(rows[5][3]) == pytest.approx(curve[4], abs=1e-5)
    png = tmp_path / "plots" / "fsc.png"
    report.plot_fsc(png, {"a": curve, "b": curve ** 2}, n, px, title="test")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    leftovers = [p for p in tmp_path.rglob("*") if p.name.startswith(".")]
    assert not leftovers  # temporary files were renamed


def test_writers_accept_compare_maps_results(tmp_path):
    v = phantom(16)
    result = report.compare_maps(v, v + 0.1 * np.random.default_rng(2).random(v.shape), 5.0,
                                 align=False)
    assert result["resolution_0.5_A"] == result["resolution"]["0.5"]["angstrom"]
    assert result["fraction_0.143"] == result["resolution"]["0.143"]["fraction_of_nyquist"]
    report.write_fsc_csv(tmp_path / "a.csv", result)
    rows = list(csv.reader((tmp_path / "a.csv").open()))
    assert rows[0][3:] == ["fsc"] and float(rows[2][2]) == pytest.approx(16 * 5.0 / 1)
    report.plot_fsc(tmp_path / "a.png", [("reconstruction", result), ("twice", result)])
    assert (tmp_path / "a.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="box and pixel_size"):
        report.write_fsc_csv(tmp_path / "b.csv", [1.0, 0.5])
