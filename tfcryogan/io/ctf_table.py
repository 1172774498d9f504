"""CTF parameter tables: the rows the simulator draws CTFs from (float32 ``[n, 9]``)."""

import math

import numpy as np

from tfcryogan.errors import InputError
from tfcryogan.io._files import require_file
from tfcryogan.io.particles import CTF_COLUMNS
from tfcryogan.io.particles_io import PARTICLE_SUFFIXES, read_particles

__all__ = ["read_ctf_table"]


def _float(token):
    try:
        value = float(token)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _check_constant(name, value, low, high, path):
    if value is None:
        raise InputError(f"{path}: a CTFFIND-style table has no {name}: give it as an argument")
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if not (math.isfinite(v) and low <= v < high):
        raise InputError(f"{path}: {name} {value!r} is out of range [{low}, {high})")
    return v


def read_ctf_table(path, voltage_kv=None, cs_mm=None, amplitude_contrast=None):
    """Read CTF parameters as float32 ``[n, 9]`` rows in ``CTF_COLUMNS`` order
    (defocus_u A, defocus_v A, defocus_angle deg, voltage kV, cs mm, amplitude_contrast,
    phase_shift deg, bfactor A^2, ctf_scale).

    - ``.star`` / ``.cs`` particle files: their own per-particle CTF (the arguments are ignored).
    - Anything else: a whitespace table of CTFFIND4 fits, one line per micrograph; ``#`` lines
      and blank lines are skipped. Two layouts, fixed by the first data line:

      * named (e.g. EMPIAR-10061's ``empiar10061_ctf_per_micrograph.txt``): ``micrograph name,
        CTFFIND micrograph number (1.0), DefocusU A, DefocusV A, astigmatism angle deg,
        [phase shift rad, fit score, fit resolution A]``: at least 5 columns;
      * CTFFIND4's own output: 7 numbers ``number, DefocusU, DefocusV, angle, phase shift rad,
        cross-correlation, fit resolution``.

      The phase shift is in radians (CTFFIND4's unit) and converted to degrees. Voltage (kV),
      Cs (mm) and amplitude contrast come from the arguments (required). B-factor 0, scale 1.

    Raises InputError naming the file and line for a malformed row (too few columns, not a number,
    negative defocus), or for a table with no rows.
    """
    suffix = str(path).lower().rsplit(".", 1)[-1]
    if f".{suffix}" in PARTICLE_SUFFIXES:
        return read_particles(path, require_ctf=True).ctf_array()
    p = require_file(path)
    voltage = _check_constant("voltage (kV)", voltage_kv, 1e-9, 1e4, p)
    cs = _check_constant("Cs (mm)", cs_mm, 0, 1e3, p)
    q = _check_constant("amplitude contrast", amplitude_contrast, 0, 1, p)
    try:
        lines = p.read_text(errors="strict").splitlines()
    except (UnicodeDecodeError, OSError) as err:
        raise InputError(f"{p}: cannot read as a text table ({type(err).__name__})") from None
    rows, layout = [], None
    for lineno, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        tokens = text.split()
        if layout is None:
            numeric = all(_float(t) is not None for t in tokens)
            layout = "ctffind" if numeric and len(tokens) == 7 else "named"
        if layout == "ctffind":
            if len(tokens) != 7:
                raise InputError(f"{p}: line {lineno}: expected 7 columns as in the first row "
                                 f"(CTFFIND4 output), found {len(tokens)}")
            fields = tokens[1:5]
        else:
            if len(tokens) < 5:
                raise InputError(f"{p}: line {lineno}: expected at least 5 columns (micrograph, "
                                 f"number, DefocusU, DefocusV, angle), found {len(tokens)}")
            fields = tokens[2:6] if len(tokens) >= 6 else tokens[2:5] + ["0"]
        values = [_float(t) for t in fields]
        for name, token, value in zip(("DefocusU", "DefocusV", "astigmatism angle",
                                       "phase shift"), fields, values):
            if value is None:
                raise InputError(f"{p}: line {lineno}: {name} {token!r} is not a finite number")
        du, dv, angle, phase = values
        if du < 0 or dv < 0:
            raise InputError(f"{p}: line {lineno}: negative defocus ({du:g}, {dv:g} A)")
        rows.append((du, dv, angle, voltage, cs, q, math.degrees(phase), 0.0, 1.0))
    if not rows:
        raise InputError(f"{p}: no CTF rows found")
    out = np.asarray(rows, dtype=np.float32)
    assert out.shape[1] == len(CTF_COLUMNS)
    return out
