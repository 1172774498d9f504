"""cryoSPARC particle files (``.cs``, a numpy structured array) -> :class:`ParticleTable`."""

import os

import numpy as np

from tfcryogan.errors import InputError
from tfcryogan.io._files import require_file
from tfcryogan.io.particles import ParticleTable
from tfcryogan.io.star import check_image_refs

__all__ = ["read_cs"]

_REQUIRED = ("blob/path", "blob/idx", "blob/psize_A")
_CTF_FIELDS = ("ctf/df1_A", "ctf/df2_A", "ctf/df_angle_rad", "ctf/accel_kv", "ctf/cs_mm",
               "ctf/amp_contrast")


def _resolve(raw, cs_dir, stack_root):
    """First existing candidate for a ``blob/path`` value, else the most likely one."""
    rel = raw[1:] if raw.startswith(">") else raw  # '>' marks imported files in cryoSPARC
    base = os.path.basename(rel)
    candidates = []
    if os.path.isabs(rel):
        candidates.append(rel)
    else:
        if stack_root is not None:
            candidates.append(os.path.join(stack_root, rel))
        candidates.append(os.path.join(cs_dir, rel))
    candidates.append(os.path.join(cs_dir, base))
    if stack_root is not None:
        candidates.append(os.path.join(stack_root, base))
    candidates = [os.path.normpath(os.path.abspath(c)) for c in candidates]
    for c in candidates:
        if os.path.isfile(c):
            return c
    return candidates[0]


def read_cs(path, stack_root=None, require_ctf=True, check_images=False, pixel_size=None):
    """Read a cryoSPARC ``.cs`` particle file into a :class:`ParticleTable`.

    Fields used: ``blob/path`` (stack path, bytes; a leading ``>`` is dropped), ``blob/idx``
    (0-based index), ``blob/psize_A`` (A/px), ``blob/shape`` (box, when present), ``ctf/df1_A``,
    ``ctf/df2_A`` (A), ``ctf/df_angle_rad`` (converted to degrees), ``ctf/accel_kv`` (kV),
    ``ctf/cs_mm`` (mm), ``ctf/amp_contrast``, ``ctf/phase_shift_rad`` (converted to degrees,
    0 if absent), ``ctf/bfactor`` (A^2, 0 if absent), ``ctf/scale`` (1 if absent),
    ``ctf/exp_group_id`` (optics group, 1 if absent).

    Stack paths in ``.cs`` files are relative to the cryoSPARC project folder. Each is resolved to
    the first existing file among: ``stack_root/path``, ``<.cs folder>/path``,
    ``<.cs folder>/basename``, ``stack_root/basename`` (absolute paths are tried first as they are).
    If none exists the first candidate is kept (``check_images=True`` then reports it).

    Poses are NOT read: ``alignments3D/pose`` is an axis-angle vector whose rotation direction
    (and the sign convention of ``alignments3D/shift``) relative to RELION's ZYZ angles has not been
    verified here against a reference, so ``rot/tilt/psi/origin_x/origin_y`` are None. Convert with
    pyem's ``csparc2star.py`` if poses are needed.

    ``pixel_size`` (A), if given, must agree with ``blob/psize_A`` within 0.1% (a check, never an
    override), as in :func:`read_star`.

    Raises InputError for a file that is not a structured numpy array, missing fields, or bad
    values.
    """
    p = require_file(path)
    try:
        data = np.load(p, allow_pickle=False)
    except Exception as err:  # noqa: BLE001 - any loader failure is bad input
        raise InputError(f"{p}: not a cryoSPARC .cs file (cannot load as a numpy array: "
                         f"{type(err).__name__})") from None
    if not isinstance(data, np.ndarray) or data.dtype.names is None:
        raise InputError(f"{p}: not a cryoSPARC .cs file (not a numpy structured array)")
    data = data.reshape(-1)
    fields = set(data.dtype.names)
    required = _REQUIRED + (_CTF_FIELDS if require_ctf else ())
    for f in required:
        if f not in fields:
            raise InputError(f"{p}: field {f} is missing")
    if data.shape[0] == 0:
        raise InputError(f"{p}: no particles")

    def num(f):
        values = np.asarray(data[f], dtype=np.float64)
        if values.ndim != 1:
            raise InputError(f"{p}: field {f} has shape {data[f].shape}, expected one value per "
                             "particle")
        bad = ~np.isfinite(values)
        if bad.any():
            raise InputError(f"{p}: particle {int(np.flatnonzero(bad)[0]) + 1}: field {f} is "
                             "NaN or infinite")
        return values

    cs_dir = os.path.abspath(p.parent)
    root = None if stack_root is None else os.path.abspath(os.fspath(stack_root))
    cache = {}
    paths = np.empty(data.shape[0], dtype=object)
    for i, raw in enumerate(data["blob/path"]):
        if raw not in cache:
            text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
            text = text.strip()
            if not text or text == ">":
                raise InputError(f"{p}: particle {i + 1}: field blob/path is empty")
            cache[raw] = _resolve(text, cs_dir, root)
        paths[i] = cache[raw]

    idx = num("blob/idx")
    if (idx < 0).any() or (idx != np.round(idx)).any():
        i = int(np.flatnonzero((idx < 0) | (idx != np.round(idx)))[0])
        raise InputError(f"{p}: particle {i + 1}: field blob/idx is {idx[i]:g}, expected an "
                         "integer >= 0")
    names = {"pixel_size": "blob/psize_A", "image_index": "blob/idx", "image_path": "blob/path"}
    psize = num("blob/psize_A")
    if pixel_size is not None and not np.allclose(psize, float(pixel_size), rtol=1e-3, atol=0):
        raise InputError(f"{p}: pixel size {psize[0]:g} A in the file (blob/psize_A) differs "
                         f"from the given {float(pixel_size):g} A")
    kw = {"image_path": paths, "image_index": idx.astype(np.int64), "pixel_size": psize}
    if "blob/shape" in fields:
        shape = np.asarray(data["blob/shape"]).reshape(data.shape[0], -1)
        if shape.shape[1] != 2 or (shape[:, 0] != shape[:, 1]).any():
            raise InputError(f"{p}: field blob/shape: images are not square "
                             f"({shape[0].tolist()})")
        kw["box"], names["box"] = shape[:, 0].astype(np.int64), "blob/shape"
    if all(f in fields for f in _CTF_FIELDS):
        kw["defocus_u"], kw["defocus_v"] = num("ctf/df1_A"), num("ctf/df2_A")
        kw["defocus_angle"] = np.degrees(num("ctf/df_angle_rad"))
        kw["voltage"], kw["cs"] = num("ctf/accel_kv"), num("ctf/cs_mm")
        kw["amplitude_contrast"] = num("ctf/amp_contrast")
        names.update({"defocus_u": "ctf/df1_A", "defocus_v": "ctf/df2_A",
                      "defocus_angle": "ctf/df_angle_rad", "voltage": "ctf/accel_kv",
                      "cs": "ctf/cs_mm", "amplitude_contrast": "ctf/amp_contrast"})
        if "ctf/phase_shift_rad" in fields:
            kw["phase_shift"] = np.degrees(num("ctf/phase_shift_rad"))
            names["phase_shift"] = "ctf/phase_shift_rad"
        if "ctf/bfactor" in fields:
            kw["bfactor"], names["bfactor"] = num("ctf/bfactor"), "ctf/bfactor"
        if "ctf/scale" in fields:
            kw["ctf_scale"], names["ctf_scale"] = num("ctf/scale"), "ctf/scale"
        if "ctf/exp_group_id" in fields:
            kw["optics_group"] = num("ctf/exp_group_id").astype(np.int64)
    table = ParticleTable(**kw, source=str(p), column_names=names)
    table.check()
    if check_images:
        check_image_refs(table)
    return table
