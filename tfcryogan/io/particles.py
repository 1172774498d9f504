"""In-memory metadata of a particle set (no image data): :class:`ParticleTable`.

Readers (``read_star``, ``read_cs``) fill it; ``write_star`` writes it back. Units and conventions
are RELION's and are the same whatever the file format was:

- ``image_path``: absolute path of the image stack holding each particle (str);
  ``image_index``: 0-based index into that stack (STAR's ``N@stack`` is 1-based: index = N - 1);
- ``pixel_size``: Angstrom per pixel, per particle;
- ``box``: image size in pixels, per particle; 0 means not known yet (a STAR file without
  ``rlnImageSize`` read without ``check_images=True``); never None;
- CTF: defocus U/V in Angstrom, defocus angle in degrees, voltage in kV, Cs in mm, amplitude
  contrast as a fraction, phase shift in degrees, B-factor in A^2, scale factor. All None when the
  file has no CTF (read with ``require_ctf=False``); phase shift, B-factor and scale default to 0,
  0 and 1;
- poses: ``rot``, ``tilt``, ``psi`` are RELION ZYZ Euler angles in degrees
  (``rlnAngleRot/Tilt/Psi``);
  ``origin_x``, ``origin_y`` are ALWAYS in Angstrom (``rlnOriginXAngst/YAngst``; RELION 3.0's pixel
  origins are converted on reading). The simulated image is the projection moved by minus the
  origin (RELION's convention). All five are None when the file has no angles; when it has angles
  but no origins, the origins are 0;
- ``class_number``: int or None; ``optics_group``: int (1-based, as RELION).
- ``random_subset``: int or None, RELION's ``rlnRandomSubset`` (1 or 2: the gold-standard half).
"""

from dataclasses import dataclass, field, fields, replace
from typing import Optional

import numpy as np

from tfcryogan.errors import InputError

__all__ = ["CTF_COLUMNS", "ParticleTable"]

#: Column order of :meth:`ParticleTable.ctf_array` rows (float32 ``[n, 9]``), consumed by the
#: physics code. Units: A, A, degrees, kV, mm, fraction, degrees, A^2, unitless.
CTF_COLUMNS = (
    "defocus_u",           # A  (rlnDefocusU)
    "defocus_v",           # A  (rlnDefocusV)
    "defocus_angle",       # degrees (rlnDefocusAngle)
    "voltage",             # kV (rlnVoltage)
    "cs",                  # mm (rlnSphericalAberration)
    "amplitude_contrast",  # fraction in [0, 1) (rlnAmplitudeContrast)
    "phase_shift",         # degrees (rlnPhaseShift)
    "bfactor",             # A^2 (rlnCtfBfactor)
    "ctf_scale",           # unitless (rlnCtfScalefactor)
)

_REQUIRED_CTF = CTF_COLUMNS[:6]
_FLOAT_FIELDS = ("pixel_size",) + CTF_COLUMNS + ("rot", "tilt", "psi", "origin_x", "origin_y")
_INT_FIELDS = ("image_index", "box", "class_number", "optics_group", "random_subset")
_POSE_FIELDS = ("rot", "tilt", "psi", "origin_x", "origin_y")


@dataclass(eq=False)
class ParticleTable:
    """Metadata of ``n`` particles as numpy arrays of length ``n`` (see the module docstring).

    Scalars given to the constructor are broadcast to length ``n`` (``n`` is ``len(image_path)``).
    ``source`` is the metadata file it came from (used in error messages); ``optics`` is the file's
    optics table (a pandas DataFrame of RELION ``data_optics`` columns, or None), kept so that
    extra optics columns can be written back; ``column_names`` maps field names to the file's own
    column names for error messages.
    """

    image_path: np.ndarray
    image_index: np.ndarray
    pixel_size: np.ndarray
    box: Optional[np.ndarray] = None
    defocus_u: Optional[np.ndarray] = None
    defocus_v: Optional[np.ndarray] = None
    defocus_angle: Optional[np.ndarray] = None
    voltage: Optional[np.ndarray] = None
    cs: Optional[np.ndarray] = None
    amplitude_contrast: Optional[np.ndarray] = None
    phase_shift: Optional[np.ndarray] = None
    bfactor: Optional[np.ndarray] = None
    ctf_scale: Optional[np.ndarray] = None
    rot: Optional[np.ndarray] = None
    tilt: Optional[np.ndarray] = None
    psi: Optional[np.ndarray] = None
    origin_x: Optional[np.ndarray] = None
    origin_y: Optional[np.ndarray] = None
    class_number: Optional[np.ndarray] = None
    optics_group: Optional[np.ndarray] = None
    random_subset: Optional[np.ndarray] = None
    source: str = ""
    optics: object = None
    column_names: dict = field(default_factory=dict)

    def __post_init__(self):
        paths = np.asarray(self.image_path, dtype=object).reshape(-1)
        n = paths.shape[0]
        self.image_path = np.array([str(p) for p in paths], dtype=object)
        self.source = str(self.source)

        def arr(value, dtype):
            a = np.asarray(value, dtype=dtype)
            if a.ndim == 0:
                a = np.full(n, a, dtype=dtype)
            if a.shape != (n,):
                raise ValueError(f"ParticleTable: array of shape {a.shape}, expected ({n},)")
            return a.copy()

        if self.box is None:
            self.box = 0
        if self.optics_group is None:
            self.optics_group = 1
        if all(getattr(self, f) is not None for f in _REQUIRED_CTF):
            if self.phase_shift is None:
                self.phase_shift = 0.0
            if self.bfactor is None:
                self.bfactor = 0.0
            if self.ctf_scale is None:
                self.ctf_scale = 1.0
        if self.rot is not None and self.origin_x is None and self.origin_y is None:
            self.origin_x = self.origin_y = 0.0
        for name in _FLOAT_FIELDS:
            if getattr(self, name) is not None:
                setattr(self, name, arr(getattr(self, name), np.float64))
        for name in _INT_FIELDS:
            if getattr(self, name) is not None:
                setattr(self, name, arr(getattr(self, name), np.int64))
        given = [f for f in ("rot", "tilt", "psi") if getattr(self, f) is not None]
        if given and len(given) != 3:
            raise ValueError("ParticleTable: rot, tilt and psi must be given together")

    def __len__(self):
        return int(self.image_path.shape[0])

    @property
    def has_poses(self):
        """True when Euler angles (and hence origins) are present. A property, not a method."""
        return self.rot is not None

    @property
    def has_ctf(self):
        """True when all CTF parameters are present. A property, not a method."""
        return all(getattr(self, f) is not None for f in _REQUIRED_CTF)

    def subset(self, indices):
        """New table with the particles at ``indices`` (ints, or a boolean mask of length n)."""
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise ValueError(f"subset: mask of shape {idx.shape}, expected ({len(self)},)")
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64).reshape(-1)
        changes = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                changes[f.name] = value[idx]
        changes["column_names"] = dict(self.column_names)
        return replace(self, **changes)

    def ctf_array(self):
        """CTF parameters as float32 ``[n, 9]``, columns in :data:`CTF_COLUMNS` order
        (defocus_u A, defocus_v A, defocus_angle deg, voltage kV, cs mm, amplitude_contrast,
        phase_shift deg, bfactor A^2, ctf_scale)."""
        if not self.has_ctf:
            missing = [f for f in _REQUIRED_CTF if getattr(self, f) is None]
            raise InputError(f"{self.source or 'particle table'}: no CTF parameters "
                             f"({', '.join(self._label(f) for f in missing)} missing)")
        return np.stack([getattr(self, f) for f in CTF_COLUMNS], axis=1).astype(np.float32)

    def _label(self, name):
        col = self.column_names.get(name)
        return f"{name} ({col})" if col and col != name else name

    def _fail(self, row, name, problem):
        where = f"particle {row + 1}" if row is not None else "table"
        src = self.source or "particle table"
        raise InputError(f"{src}: {where}: {self._label(name)} {problem}")

    def check(self):
        """Validate values; raise InputError naming the source file, the particle (1-based row of
        the particle table) and the column. Returns self."""
        src = self.source or "particle table"
        n = len(self)
        if n == 0:
            raise InputError(f"{src}: no particles")
        for name in _FLOAT_FIELDS:
            a = getattr(self, name)
            if a is not None and not np.isfinite(a).all():
                row = int(np.flatnonzero(~np.isfinite(a))[0])
                self._fail(row, name, f"is {a[row]} (not a finite number)")

        def positive(name, strict):
            a = getattr(self, name)
            if a is None:
                return
            bad = (a <= 0) if strict else (a < 0)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                self._fail(row, name, f"is {a[row]:g}, must be {'>' if strict else '>='} 0")

        positive("pixel_size", True)
        positive("voltage", True)
        for name in ("defocus_u", "defocus_v", "cs", "image_index", "box"):
            positive(name, False)
        if self.amplitude_contrast is not None:
            q = self.amplitude_contrast
            bad = (q < 0) | (q >= 1)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                self._fail(row, "amplitude_contrast", f"is {q[row]:g}, must be in [0, 1)")
        empty = np.array([not p for p in self.image_path])
        if empty.any():
            self._fail(int(np.flatnonzero(empty)[0]), "image_path", "is empty")
        return self
