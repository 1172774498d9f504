"""Tests for tfcryogan.io.atomic.model_to_density."""

import gemmi
import numpy as np
import pytest

from tfcryogan.errors import InputError
from tfcryogan.io import model_to_density


def f0(element):
    """Electron scattering factor at s = 0 (A): the integral of the atom's density."""
    return float(sum(gemmi.Element(element).c4322.a))


def pdb_line(serial, name, resname, resseq, xyz, element="", occ=1.0, b=0.0, record="ATOM"):
    """One fixed-column PDB record; ``name`` is the 4-character atom-name field (columns 13-16)."""
    x, y, z = xyz
    return (f"{record:<6s}{serial:5d} {name:<4s} {resname:<4s}A{resseq:4d}    "
            f"{x:8.3f}{y:8.3f}{z:8.3f}{occ:6.2f}{b:6.2f}          {element:>2s}")


def write_pdb(path, lines):
    path.write_text("\n".join(lines) + "\nEND\n")
    return path


def carbons(path, positions):
    return write_pdb(path, [pdb_line(i + 1, " C  ", "GLY", i + 1, p, "C")
                            for i, p in enumerate(positions)])


def moments(vol, pixel):
    """Centre of mass (voxels) and variances (A^2) along array axes 0, 1, 2 (z, y, x)."""
    grids = np.meshgrid(*[np.arange(n) for n in vol.shape], indexing="ij")
    total = vol.sum(dtype=np.float64)
    com = np.array([(vol * g).sum(dtype=np.float64) / total for g in grids])
    var = np.array([(vol * (g - c) ** 2).sum(dtype=np.float64) / total * pixel ** 2
                    for g, c in zip(grids, com)])
    return com, var


def test_axis_order_single_atom(tmp_path):
    path = carbons(tmp_path / "c.pdb", [(10.0, 20.0, 30.0)])  # x, y, z in A
    vol = model_to_density(path, box=48, pixel_size_A=1.0, resolution_A=3.0, center=False)
    assert vol.dtype == np.float32 and vol.shape == (48, 48, 48)
    assert tuple(np.unravel_index(vol.argmax(), vol.shape)) == (30, 20, 10)  # [z, y, x]
    com, _ = moments(vol, 1.0)
    np.testing.assert_allclose(com, [30, 20, 10], atol=1e-3)
    # Integral = f_e(0) of carbon (no B-factor, the blur keeps the sum): units A^-2.
    assert vol.sum() * 1.0 ** 3 == pytest.approx(f0("C"), rel=1e-3)


def test_centering_puts_the_atoms_at_box_half(tmp_path):
    path = carbons(tmp_path / "c.pdb", [(-100.0, 5.0, 7.0), (-96.0, 5.0, 7.0)])
    for box in (32, 33):
        vol = model_to_density(path, box=box, pixel_size_A=1.0, resolution_A=3.0)
        com, _ = moments(vol, 1.0)
        np.testing.assert_allclose(com, [box // 2] * 3, atol=1e-3)


def test_mass_scales_with_number_of_atoms(tmp_path):
    sums = []
    for n in (1, 2, 4):
        path = carbons(tmp_path / f"c{n}.pdb", [(10.0 + 6 * i, 16.0, 16.0) for i in range(n)])
        sums.append(model_to_density(path, 40, 1.0, 4.0, center=False).sum(dtype=np.float64))
    np.testing.assert_allclose(np.array(sums) / sums[0], [1, 2, 4], rtol=1e-4)


def test_waters_hydrogens_and_force_field_names(tmp_path):
    lines = [pdb_line(1, " C  ", "GLY", 1, (16, 16, 16), "C"),
             pdb_line(2, " H  ", "GLY", 1, (17, 16, 16), "H"),
             pdb_line(3, " O  ", "HOH", 2, (12, 16, 16), "O", record="HETATM")]
    path = write_pdb(tmp_path / "w.pdb", lines)

    def total(**kw):
        return model_to_density(path, 32, 1.0, 3.0, center=False, **kw).sum(dtype=np.float64)

    assert total() == pytest.approx(f0("C") + f0("H"), rel=1e-3)  # water removed by default
    assert total(remove_hydrogens=True) == pytest.approx(f0("C"), rel=1e-3)
    assert total(remove_waters=False) == pytest.approx(f0("C") + f0("H") + f0("O"), rel=1e-3)
    # CHARMM-style: no element column, 'CA' and 'HG1' starting in column 13 (gemmi alone would
    # read calcium and mercury), residue HSD; water as TIP3.
    lines = [pdb_line(1, "CA", "HSD", 1, (16, 16, 16))[:76],
             pdb_line(2, "HG1", "HSD", 1, (17, 16, 16))[:76],
             pdb_line(3, "OH2", "TIP3", 2, (12, 16, 16))[:76]]
    path = write_pdb(tmp_path / "charmm.pdb", lines)
    assert total() == pytest.approx(f0("C") + f0("H"), rel=1e-3)


def _weighted_atoms(path, remove_hydrogens=False):
    """Positions and weights (occupancy * f_e(0)) read independently of the code under test."""
    xyz, w = [], []
    for line in open(path):
        if not line.startswith(("ATOM", "HETATM")) or line[17:20] in ("HOH", "TIP"):
            continue
        element = line[76:78].strip() or line[12:16].strip()[0]  # MD files: first letter
        if remove_hydrogens and element == "H":
            continue
        xyz.append([float(line[30:38]), float(line[38:46]), float(line[46:54])])
        w.append(float(line[54:60]) * f0(element))
    return np.array(xyz), np.array(w)


def test_adk_mass_and_centre(data_file):
    path = data_file("adk/adk_closed.pdb")
    vol = model_to_density(path, box=64, pixel_size_A=2.0, resolution_A=6.0)
    com, _ = moments(vol, 2.0)
    np.testing.assert_allclose(com, [32, 32, 32], atol=0.5)
    assert vol.min() >= -1e-6 * vol.max()
    _, w = _weighted_atoms(path)
    assert vol.sum(dtype=np.float64) * 2.0 ** 3 == pytest.approx(w.sum(), rel=0.01)
    heavy = model_to_density(path, 64, 2.0, 6.0, remove_hydrogens=True)
    _, w_heavy = _weighted_atoms(path, remove_hydrogens=True)
    assert heavy.sum(dtype=np.float64) * 8.0 == pytest.approx(w_heavy.sum(), rel=0.01)


def test_betagal_orientation_from_second_moments(data_file):
    """Array axes (z, y, x) carry the atoms' z, y, x spreads: variances differ only by the
    (isotropic) blur. 5A1A is elongated (variances about 1500, 860, 320 A^2 in x, y, z)."""
    path = data_file("betagal/5a1a.cif")
    vol = model_to_density(path, box=64, pixel_size_A=4.0, resolution_A=8.0)
    com, var_zyx = moments(vol, 4.0)
    np.testing.assert_allclose(com, [32, 32, 32], atol=1.0)
    st = gemmi.read_structure(str(path))
    st.remove_waters()
    atoms = [cra.atom for cra in st[0].all()]
    xyz = np.array([[a.pos.x, a.pos.y, a.pos.z] for a in atoms])
    w = np.array([a.occ * f0(a.element.name) for a in atoms])
    mean = (xyz * w[:, None]).sum(0) / w.sum()
    var_xyz = ((xyz - mean) ** 2 * w[:, None]).sum(0) / w.sum()
    excess = var_zyx[::-1] - var_xyz  # blur variance per axis: the same on every axis
    assert (excess > 0).all() and (excess < 20).all(), excess
    assert np.ptp(excess) < 2.0, excess
    assert vol.sum(dtype=np.float64) * 4.0 ** 3 == pytest.approx(w.sum(), rel=0.01)


def test_errors(tmp_path, data_file):
    adk = data_file("adk/adk_closed.pdb")
    with pytest.raises(InputError, match="adk_closed.pdb: the model does not fit in the box"):
        model_to_density(adk, box=16, pixel_size_A=1.0, resolution_A=3.0)
    path = carbons(tmp_path / "c.pdb", [(40.0, 5.0, 5.0)])
    with pytest.raises(InputError, match="c.pdb: the model does not fit"):
        model_to_density(path, box=32, pixel_size_A=1.0, resolution_A=3.0, center=False)
    with pytest.raises(InputError, match="finer than Nyquist"):
        model_to_density(path, box=32, pixel_size_A=2.0, resolution_A=3.0)
    with pytest.raises(InputError, match="none.pdb: file not found"):
        model_to_density(tmp_path / "none.pdb", 32, 1.0, 3.0)
    junk = tmp_path / "junk.cif"
    junk.write_text("this is not a model\n")
    with pytest.raises(InputError, match="junk.cif: "):
        model_to_density(junk, 32, 1.0, 3.0)
    empty = write_pdb(tmp_path / "empty.pdb", ["REMARK nothing"])
    with pytest.raises(InputError, match="empty.pdb: no"):
        model_to_density(empty, 32, 1.0, 3.0)
