"""Atomic models (``.pdb``, ``.cif``, ``.mmcif``, ``.ent``) -> cryo-EM density maps, via gemmi."""

import math

import gemmi
import numpy as np

from tfcryogan.errors import InputError
from tfcryogan.io._files import require_file

__all__ = ["model_to_density"]


def _positive(name, value):
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if not (math.isfinite(v) and v > 0):
        raise InputError(f"{name} must be a positive number, got {value!r}")
    return v


def _atoms(model):
    return [cra.atom for cra in model.all()]


# Residue names of force-field files (CHARMM, AMBER, GROMACS) that gemmi's table does not know.
_FF_AMINO_ACIDS = {"HSD", "HSE", "HSP", "HID", "HIE", "HIP", "CYX", "CYM", "ASH", "GLH", "LYN"}
# gemmi keeps 3 characters of a residue name: CHARMM's TIP3 is read as TIP.
_FF_WATERS = {"TIP", "TIP3", "TIP4", "TIP5", "T3P", "T4P", "SPC", "SOL", "WAT", "H2O"}


def _pdb_lacks_elements(path):
    """True if a PDB-format file has ATOM/HETATM records without the element column (77-78)."""
    if path.suffix.lower() in (".cif", ".mmcif") or path.name.lower().endswith(".cif.gz"):
        return False
    with open(path, "rb") as fh:
        head = fh.read(2)
    if head == b"\x1f\x8b":  # gzipped: let gemmi's own inference stand
        return False
    with open(path, errors="replace") as fh:
        for line in fh:
            if line.startswith(("ATOM  ", "HETATM")) and not line[76:78].strip():
                return True
    return False


def _fix_polymer_elements(st):
    """Element from the first letter of the atom name in amino-acid and nucleotide residues.

    PDB files written by MD programs often have no element column and names starting in column 13
    (``CA``, ``HG1``), which the PDB rules read as calcium or mercury. In polymer residues every
    atom's element is the first letter of its name (C, N, O, S, P, H), except selenium in MSE.
    """
    for model in st:
        for chain in model:
            for res in chain:
                info = gemmi.find_tabulated_residue(res.name)
                polymer = res.name in _FF_AMINO_ACIDS or (
                    info is not None and (info.is_amino_acid() or info.is_nucleic_acid()))
                if not polymer:
                    continue
                for atom in res:
                    name = atom.name.strip().lstrip("0123456789")
                    if res.name == "MSE" and name.upper().startswith("SE"):
                        atom.element = gemmi.Element("Se")
                    elif name[:1].upper() in "CNOSPH":
                        atom.element = gemmi.Element(name[:1].upper())


def model_to_density(path, box, pixel_size_A, resolution_A, center=True, remove_waters=True,
                     remove_hydrogens=False):
    """Density map of an atomic model on a ``box^3`` grid: float32 ``[z, y, x]``.

    - Scattering: gemmi's ``DensityCalculatorE`` (electron scattering factors, International
      Tables C 4.3.2.2, 5 Gaussians per element), each atom with its own B-factor and occupancy,
      all convolved with a Gaussian of sigma ``d / (pi * sqrt(2))`` A, i.e. ``blur = 4 d^2`` A^2
      (Chimera ``molmap``'s convention: the Fourier amplitude falls to 1/e at ``1/d``), with
      ``d = resolution_A``. The values are in A^-2: ``volume.sum() * pixel_size_A**3`` equals the
      sum over atoms of ``occupancy * f_e(0)`` (f_e in A), minus any tails cut off by the box.
      ``resolution_A`` must be at least ``2 * pixel_size_A`` (Nyquist), else InputError.
    - Geometry: voxel ``[k, j, i]`` is at ``(x, y, z) = (i, j, k) * pixel_size_A`` A. With
      ``center=True`` the model is first translated so that its centre of mass (gemmi's
      ``calculate_center_of_mass``: atomic masses times occupancies) lies at voxel
      ``(box//2, box//2, box//2)``, RELION's box centre. With ``center=False`` the model's
      coordinates are used as they are. The density is computed on a padded grid and cropped, so
      nothing wraps around periodically.
    - Model: the first model of the file; waters (``remove_waters``, including force-field names
      such as TIP3) and hydrogens (``remove_hydrogens``) can be stripped. In PDB files without the
      element column (MD output, e.g. CHARMM), the element of atoms in amino-acid and nucleotide
      residues is taken from the first letter of the atom name (gemmi would read ``CA`` in column
      13 as calcium); other atoms of unknown element raise InputError.

    Raises InputError for an unreadable file, an empty model, bad sizes, or atoms outside the box.
    """
    p = require_file(path)
    try:
        box_i = int(box) if float(box) == int(box) else -1
    except (TypeError, ValueError):
        box_i = -1
    if box_i < 2:
        raise InputError(f"box must be an integer >= 2, got {box!r}")
    px = _positive("pixel size (A)", pixel_size_A)
    d = _positive("resolution (A)", resolution_A)
    if d < 2 * px * (1 - 1e-9):
        raise InputError(f"resolution {d:g} A is finer than Nyquist (2 x {px:g} A pixel): "
                         "use a smaller pixel size or a larger resolution")
    try:
        st = gemmi.read_structure(str(p))
    except Exception as err:  # noqa: BLE001 - any parser failure is bad input
        raise InputError(f"{p}: cannot read as an atomic model ({type(err).__name__}: "
                         f"{' '.join(str(err).split())})") from None
    if len(st) == 0:
        raise InputError(f"{p}: no models in the file")
    if _pdb_lacks_elements(p):
        _fix_polymer_elements(st)
    if remove_waters:
        st.remove_waters()
        for model in st:
            for chain in model:
                for i in reversed(range(len(chain))):
                    if chain[i].name in _FF_WATERS:
                        del chain[i]
    if remove_hydrogens:
        st.remove_hydrogens()
    st.remove_empty_chains()
    model = st[0]
    atoms = _atoms(model)
    if not atoms:
        raise InputError(f"{p}: no atoms in the first model")
    unknown = [a.name for a in atoms if a.element.name == "X"]
    if unknown:
        raise InputError(f"{p}: {len(unknown)} atoms of unknown element (e.g. {unknown[0]!r})")

    dc = gemmi.DensityCalculatorE()
    dc.d_min = 0.0  # 0: keep the grid size we set (gemmi would otherwise pick one from d_min)
    dc.blur = 4.0 * d * d
    radius = max(dc.estimate_radius(a) for a in atoms)
    pad = int(math.ceil(radius / px)) + 1
    n = box_i + 2 * pad

    c = box_i // 2
    if center:
        com = model.calculate_center_of_mass()
        shift = gemmi.Vec3(c * px - com.x, c * px - com.y, c * px - com.z)
    else:
        shift = gemmi.Vec3(0.0, 0.0, 0.0)
    xyz = np.array([[a.pos.x, a.pos.y, a.pos.z] for a in atoms]) + [shift.x, shift.y, shift.z]
    low, high = xyz.min(axis=0) / px, xyz.max(axis=0) / px
    if (low < -0.5).any() or (high > box_i - 0.5).any():
        span = ", ".join(f"{ax} {lo:.1f}..{hi:.1f}" for ax, lo, hi in zip("xyz", low, high))
        raise InputError(f"{p}: the model does not fit in the box of {box_i} voxels "
                         f"({box_i * px:g} A): atoms span voxels {span}"
                         f"{' after centring' if center else ''}")
    shift = gemmi.Vec3(shift.x + pad * px, shift.y + pad * px, shift.z + pad * px)
    model.transform_pos_and_adp(gemmi.Transform(gemmi.Mat33(), shift))

    grid = dc.grid
    grid.set_unit_cell(gemmi.UnitCell(n * px, n * px, n * px, 90, 90, 90))
    grid.spacegroup = gemmi.SpaceGroup("P 1")
    grid.set_size(n, n, n)
    dc.initialize_grid()
    dc.add_model_density_to_grid(model)
    dens = np.array(grid.array, copy=True)  # indexed [u, v, w] = [x, y, z]
    dens = dens[pad:pad + box_i, pad:pad + box_i, pad:pad + box_i]
    return np.ascontiguousarray(dens.transpose(2, 1, 0), dtype=np.float32)
