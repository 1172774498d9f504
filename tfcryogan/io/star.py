"""RELION STAR particle files (3.0 and 3.1+) <-> :class:`ParticleTable`.

Parsing uses the ``starfile`` package (teamtomo): it implements the STAR grammar that RELION
writes (loop and single-row blocks, ``data_`` blocks with any name, comments, ``# version`` lines,
quoted strings) and returns pandas DataFrames, so the code here only deals with RELION's
*semantics* (optics groups, 1-based ``N@stack`` names, pixel versus Angstrom origins), which is
where hand-written parsers in other packages have gone wrong. Writing also goes through
``starfile`` (to a temporary file that is then renamed).

Relative stack paths in ``rlnImageName`` are resolved against the STAR file's folder (cryoDRGN's
rule), then against the current directory (RELION's rule: paths relative to the project folder);
absolute paths are kept. ``write_star`` writes absolute paths, which mean the same file to RELION,
cryoDRGN and us whatever folder each runs in.
"""

import math
import os
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import starfile

from tfcryogan.errors import InputError
from tfcryogan.io._files import atomic_output, require_file
from tfcryogan.io.mrc import stack_shape
from tfcryogan.io.particles import ParticleTable

__all__ = ["read_star", "write_star"]

_NAME_RE = re.compile(r"^(\d+)@(.+)$")
_CTF_REQUIRED = {
    "defocus_u": "rlnDefocusU",
    "defocus_v": "rlnDefocusV",
    "defocus_angle": "rlnDefocusAngle",
    "voltage": "rlnVoltage",
    "cs": "rlnSphericalAberration",
    "amplitude_contrast": "rlnAmplitudeContrast",
}
_CTF_OPTIONAL = {"phase_shift": "rlnPhaseShift", "bfactor": "rlnCtfBfactor",
                 "ctf_scale": "rlnCtfScalefactor"}
# Columns never copied from the source optics table: written per particle, or superseded by
# rlnImagePixelSize.
_NOT_OPTICS = {"rlnMagnification", "rlnDetectorPixelSize", "rlnPixelSize", "rlnDefocusU",
               "rlnDefocusV", "rlnDefocusAngle", "rlnPhaseShift", "rlnCtfBfactor",
               "rlnCtfScalefactor"}
_STRING_COLUMNS = ["rlnImageName", "rlnMicrographName", "rlnOpticsGroupName",
                   "rlnImageOriginalName", "rlnMtfFileName"]


def _one_line(text):
    return " ".join(str(text).split())


def _as_frame(block):
    if isinstance(block, pd.DataFrame):
        return block
    if isinstance(block, dict):  # a single-row block written without loop_
        return pd.DataFrame([block])
    return None


class _Columns:
    """Look up a column in the particle block, else in the optics block through rlnOpticsGroup."""

    def __init__(self, path, particles, pblock, optics, group_rows):
        self.path, self.particles, self.pblock = path, particles, pblock
        self.optics, self.group_rows = optics, group_rows

    def has(self, name):
        return name in self.particles.columns or (self.optics is not None
                                                  and name in self.optics.columns)

    def _numeric(self, frame, name, block, rows):
        raw = frame[name]
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            text = _one_line(raw.iloc[i])
            if text.lower().lstrip("+-") in ("nan", "inf", "infinity", "<na>", "none", ""):
                what = f"is {text or 'empty'} (not a finite number)"
            else:
                what = f"is not a number: {text!r}"
            raise InputError(f"{self.path}: {rows} {i + 1} of block {block}: column {name} {what}")
        return values

    def get(self, name):
        """Float64 array per particle, or None when the column is in neither block."""
        if name in self.particles.columns:
            return self._numeric(self.particles, name, self.pblock, "row")
        if self.optics is not None and name in self.optics.columns:
            values = self._numeric(self.optics, name, "data_optics", "row")
            return values[self.group_rows]
        return None

    def get_int(self, name):
        values = self.get(name)
        if values is None:
            return None
        bad = values != np.round(values)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(f"{self.path}: column {name} must hold integers, found {values[i]:g}")
        return values.astype(np.int64)

    def require(self, name, why=""):
        values = self.get(name)
        if values is None:
            where = f"block {self.pblock}" + (" or data_optics" if self.optics is not None else "")
            raise InputError(f"{self.path}: column {name} is missing in {where}{why}")
        return values


def _pick_particle_block(path, blocks):
    frames = {name: _as_frame(b) for name, b in blocks.items()}
    if "particles" in frames and frames["particles"] is not None:
        return "particles", frames["particles"]
    with_names = [n for n, f in frames.items() if f is not None and "rlnImageName" in f.columns]
    if len(with_names) == 1:
        return with_names[0], frames[with_names[0]]
    names = ", ".join(f"data_{n}" for n in frames) or "none"
    if not with_names:
        raise InputError(f"{path}: no block with column rlnImageName (blocks: {names})")
    raise InputError(f"{path}: several blocks have particles ({names}); expected one")


def _optics_rows(path, particles, pblock, optics):
    """Row of the optics table for each particle (or None if there is no optics table)."""
    if optics is None:
        return None
    if "rlnOpticsGroup" not in optics.columns:
        raise InputError(f"{path}: column rlnOpticsGroup is missing in block data_optics")
    groups = pd.to_numeric(optics["rlnOpticsGroup"], errors="coerce").to_numpy()
    if not np.isfinite(groups).all() or (groups != np.round(groups)).any():
        raise InputError(f"{path}: data_optics: rlnOpticsGroup must hold integers")
    groups = groups.astype(np.int64)
    if len(set(groups.tolist())) != len(groups):
        raise InputError(f"{path}: data_optics: optics groups are not unique: {groups.tolist()}")
    if "rlnOpticsGroup" not in particles.columns:
        if len(groups) != 1:
            raise InputError(f"{path}: column rlnOpticsGroup is missing in block {pblock} "
                             f"and data_optics has {len(groups)} groups")
        return np.zeros(len(particles), dtype=np.int64)
    pg = pd.to_numeric(particles["rlnOpticsGroup"], errors="coerce").to_numpy()
    lookup = {g: i for i, g in enumerate(groups.tolist())}
    rows = np.empty(len(pg), dtype=np.int64)
    for i, g in enumerate(pg):
        if not np.isfinite(g) or g != round(g) or int(g) not in lookup:
            raise InputError(f"{path}: row {i + 1} of block {pblock}: optics group "
                             f"{_one_line(particles['rlnOpticsGroup'].iloc[i])} is not defined "
                             "in data_optics")
        rows[i] = lookup[int(g)]
    return rows


def _resolve_stack(stack, folder):
    """Absolute path of a stack named in a STAR file: relative names are looked up in the STAR
    file's folder first, then (RELION's convention: paths relative to the project folder) in the
    current directory; if neither exists the STAR-relative path is returned (and reported later)."""
    if os.path.isabs(stack):
        return stack
    beside = os.path.normpath(os.path.join(folder, stack))
    if not os.path.exists(beside) and os.path.exists(stack):
        return os.path.abspath(stack)
    return beside


def _parse_image_names(path, names, pblock):
    """Split ``N@stack`` names into absolute stack paths and 0-based indices."""
    folder = os.path.abspath(os.path.dirname(os.fspath(path)))
    paths = np.empty(len(names), dtype=object)
    index = np.empty(len(names), dtype=np.int64)
    cache = {}
    for i, raw in enumerate(names):
        name = "" if raw is None or (isinstance(raw, float) and math.isnan(raw)) else str(raw)
        name = name.strip()
        if not name:
            raise InputError(f"{path}: row {i + 1} of block {pblock}: rlnImageName is empty")
        if "@" in name:
            m = _NAME_RE.match(name)
            if m is None:
                raise InputError(f"{path}: row {i + 1} of block {pblock}: bad rlnImageName "
                                 f"{name!r} (expected N@stack with N a positive integer)")
            number, stack = int(m.group(1)), m.group(2)
            if number < 1:
                raise InputError(f"{path}: row {i + 1} of block {pblock}: image number {number} "
                                 f"in {name!r} (STAR image numbers start at 1)")
            index[i] = number - 1
        else:
            stack, index[i] = name, 0  # a single-image file
        for suffix in (":mrcs", ":mrc"):  # RELION's explicit file-type suffix
            if stack.endswith(suffix):
                stack = stack[: -len(suffix)]
        if stack not in cache:
            cache[stack] = _resolve_stack(stack, folder)
        paths[i] = cache[stack]
    return paths, index


def check_image_refs(table, rows=None):
    """Check that every referenced stack exists and holds the index; fill ``table.box`` (in place).

    Only the particles at ``rows`` (0-based indices; default all) are checked. Opens each distinct
    stack once (header only). Raises InputError naming the metadata file, the particle (1-based)
    and the stack. Returns the table.
    """
    src = table.source or "particle table"
    boxes = np.array(table.box, copy=True)
    chosen = np.arange(len(table)) if rows is None else np.asarray(rows, dtype=np.int64)
    stacks, first, inverse = np.unique(table.image_path[chosen].astype(str), return_index=True,
                                       return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    groups = np.split(chosen[order], np.cumsum(np.bincount(inverse))[:-1])
    label = "particle"
    for k in np.argsort(first):  # stacks in order of first use
        stack, rows = str(stacks[k]), groups[k]
        try:
            n, ny, _ = stack_shape(stack)
        except InputError as err:
            raise InputError(f"{src}: {label} {rows[0] + 1}: {err}") from None
        too_far = rows[table.image_index[rows] >= n]
        if too_far.size:
            i = int(too_far[0])
            raise InputError(f"{src}: {label} {i + 1}: image {table.image_index[i] + 1} of {stack} "
                             f"does not exist (the stack has {n} images)")
        wrong = rows[(boxes[rows] != 0) & (boxes[rows] != ny)]
        if wrong.size:
            i = int(wrong[0])
            raise InputError(f"{src}: {label} {i + 1}: image size {boxes[i]} in the metadata but "
                             f"{ny} in {stack}")
        boxes[rows] = ny
    table.box = boxes
    return table


def read_star(path, require_ctf=True, check_images=False, pixel_size=None):
    """Read a RELION 3.0 or 3.1+ particle STAR file into a :class:`ParticleTable`.

    - 3.1+: ``data_optics`` + ``data_particles``; optics columns (``rlnVoltage``,
      ``rlnSphericalAberration``, ``rlnAmplitudeContrast``, ``rlnImagePixelSize``,
      ``rlnImageSize``...) reach each particle through ``rlnOpticsGroup`` (any number of groups);
      a column present in the particle block takes precedence.
    - 3.0: the one block with ``rlnImageName`` (named ``data_``, ``data_images``,
      ``data_model_class_1``...); CTF constants are particle columns.
    - Pixel size (A): ``rlnImagePixelSize``, else ``rlnPixelSize``, else
      ``rlnDetectorPixelSize * 1e4 / rlnMagnification``, else the ``pixel_size`` argument (which
      must agree within 0.1% when the file has one, it is never a silent override).
    - Origins: ``rlnOriginXAngst/YAngst`` (A), else ``rlnOriginX/Y`` (pixels, times the pixel size).
      Poses are read only when all of ``rlnAngleRot/Tilt/Psi`` are present (a 2D-classification
      file with only ``rlnAnglePsi`` has no poses).
    - ``rlnImageName`` ``N@stack`` is 1-based (index N-1); a name without ``@`` is a single-image
      file (index 0); stack paths are resolved against the STAR file's folder.
    - ``require_ctf``: error when ``rlnDefocusU/V``, ``rlnDefocusAngle``, ``rlnVoltage``,
      ``rlnSphericalAberration`` or ``rlnAmplitudeContrast`` is missing (else the CTF is None).
    - ``check_images``: open each distinct stack once (header only), check the file and index,
      and fill ``box`` from it (and check it against ``rlnImageSize``).

    Raises InputError (one line naming the file, block, row and column) for anything missing,
    malformed, NaN, or out of range.
    """
    p = require_file(path)
    try:
        blocks = starfile.read(p, always_dict=True, parse_as_string=_STRING_COLUMNS)
    except Exception as err:  # noqa: BLE001 - any parser failure is bad input
        raise InputError(f"{p}: cannot parse as a STAR file ({type(err).__name__}: "
                         f"{_one_line(err)})") from None
    if not blocks:
        raise InputError(f"{p}: no data blocks (not a STAR file?)")
    name, particles = _pick_particle_block(p, blocks)
    pblock = f"data_{name}"
    if "rlnImageName" not in particles.columns:
        raise InputError(f"{p}: column rlnImageName is missing in block {pblock}")
    if len(particles) == 0:
        raise InputError(f"{p}: block {pblock} has no particles")
    optics = _as_frame(blocks.get("optics")) if name == "particles" else None
    if optics is not None and len(optics) == 0:
        raise InputError(f"{p}: block data_optics is empty")
    group_rows = _optics_rows(p, particles, pblock, optics)
    cols = _Columns(p, particles, pblock, optics, group_rows)
    names = {}

    # Pixel size (A).
    psize = None
    for col in ("rlnImagePixelSize", "rlnPixelSize"):
        if cols.has(col):
            psize, names["pixel_size"] = cols.get(col), col
            break
    if psize is None and cols.has("rlnDetectorPixelSize") and cols.has("rlnMagnification"):
        det, mag = cols.get("rlnDetectorPixelSize"), cols.get("rlnMagnification")
        if (mag <= 0).any():
            raise InputError(f"{p}: row {int(np.flatnonzero(mag <= 0)[0]) + 1} of block {pblock}: "
                             "rlnMagnification must be > 0")
        psize = det * 1e4 / mag
        names["pixel_size"] = "rlnDetectorPixelSize*1e4/rlnMagnification"
    if psize is None:
        if pixel_size is None:
            raise InputError(f"{p}: no pixel size (need rlnImagePixelSize, rlnPixelSize, or "
                             "rlnDetectorPixelSize and rlnMagnification; or give the pixel size)")
        psize = np.full(len(particles), float(pixel_size))
        names["pixel_size"] = "pixel_size argument"
    elif pixel_size is not None and not np.allclose(psize, float(pixel_size), rtol=1e-3, atol=0):
        raise InputError(f"{p}: pixel size {psize[0]:g} A in the file ({names['pixel_size']}) "
                         f"differs from the given {float(pixel_size):g} A")
    if (psize <= 0).any():
        i = int(np.flatnonzero(psize <= 0)[0])
        raise InputError(f"{p}: particle {i + 1}: pixel size {psize[i]:g} A "
                         f"({names['pixel_size']}) must be > 0")

    image_path, image_index = _parse_image_names(p, particles["rlnImageName"].tolist(), pblock)
    kw = {"image_path": image_path, "image_index": image_index, "pixel_size": psize}

    # CTF.
    if require_ctf:
        for field, col in _CTF_REQUIRED.items():
            kw[field], names[field] = cols.require(col), col
    elif all(cols.has(col) for col in _CTF_REQUIRED.values()):
        for field, col in _CTF_REQUIRED.items():
            kw[field], names[field] = cols.get(col), col
    if "defocus_u" in kw:
        for field, col in _CTF_OPTIONAL.items():
            if cols.has(col):
                kw[field], names[field] = cols.get(col), col

    # Poses.
    if all(cols.has(c) for c in ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")):
        for field, col in (("rot", "rlnAngleRot"), ("tilt", "rlnAngleTilt"),
                           ("psi", "rlnAnglePsi")):
            kw[field], names[field] = cols.get(col), col
    for axis in ("X", "Y"):
        field = f"origin_{axis.lower()}"
        if cols.has(f"rlnOrigin{axis}Angst"):
            kw[field], names[field] = cols.get(f"rlnOrigin{axis}Angst"), f"rlnOrigin{axis}Angst"
        elif cols.has(f"rlnOrigin{axis}"):
            kw[field] = cols.get(f"rlnOrigin{axis}") * psize
            names[field] = f"rlnOrigin{axis} (pixels)"
    if ("origin_x" in kw) != ("origin_y" in kw):
        have, lack = ("X", "Y") if "origin_x" in kw else ("Y", "X")
        raise InputError(f"{p}: block {pblock} has an rlnOrigin{have} column but no "
                         f"rlnOrigin{lack}")
    if "rot" not in kw:  # origins without angles are not a pose
        kw.pop("origin_x", None)
        kw.pop("origin_y", None)

    box = cols.get_int("rlnImageSize")
    if box is not None:
        kw["box"], names["box"] = box, "rlnImageSize"
    if cols.has("rlnClassNumber"):
        kw["class_number"], names["class_number"] = cols.get_int("rlnClassNumber"), "rlnClassNumber"
    if cols.has("rlnRandomSubset"):
        kw["random_subset"] = cols.get_int("rlnRandomSubset")
        names["random_subset"] = "rlnRandomSubset"
    if "rlnOpticsGroup" in particles.columns:
        kw["optics_group"] = cols.get_int("rlnOpticsGroup")
    elif optics is not None:
        kw["optics_group"] = np.asarray(
            pd.to_numeric(optics["rlnOpticsGroup"]), dtype=np.int64)[group_rows]

    table = ParticleTable(**kw, source=str(p), optics=optics, column_names=names)
    table.check()
    if check_images:
        check_image_refs(table)
    return table


def _image_stack_name(stack):
    """The stack path written in ``rlnImageName``: absolute.

    RELION resolves relative names against its working directory (the project folder) while
    cryoDRGN and our reader resolve them against the STAR file's folder; an absolute path means
    the same file to all of them, whichever folder they run in.
    """
    return os.path.abspath(stack)


def _format_number(x):
    return float(f"{x:.6f}")


def write_star(path, table):
    """Write a :class:`ParticleTable` as a RELION 3.1 particle STAR file (atomic).

    ``data_optics``: rlnOpticsGroup, rlnOpticsGroupName, rlnVoltage, rlnSphericalAberration,
    rlnAmplitudeContrast (when the table has a CTF), rlnImagePixelSize, rlnImageSize,
    rlnImageDimensionality = 2, plus any other columns of ``table.optics`` for that group (MTF,
    rlnCtfDataArePhaseFlipped...). One optics group per distinct (optics_group, voltage, Cs, Q,
    pixel size, box): groups whose particles disagree are split, so nothing is averaged away. Groups are numbered 1..k (RELION indexes its
    optics table by ``rlnOpticsGroup - 1``): the table's own numbers (and names, from
    ``table.optics``) are kept when they already are 1..k and consistent, else renumbered in order
    of first appearance.
    ``data_particles``: rlnImageName (``%06d@stack``, 1-based; the stack path absolute),
    rlnDefocusU/V/Angle, rlnPhaseShift,
    rlnCtfBfactor, rlnCtfScalefactor, rlnAngleRot/Tilt/Psi and rlnOriginXAngst/YAngst (when the
    table has poses), rlnClassNumber and rlnRandomSubset (when present), rlnOpticsGroup.
    An unknown box (0) is read from the stack headers (InputError if a stack cannot be read).
    """
    path = Path(path)
    n = len(table)
    if n == 0:
        raise InputError(f"{path}: refusing to write a STAR file with no particles")
    table.check()
    box = np.asarray(table.box)
    if (box == 0).any():
        unknown = np.flatnonzero(box == 0)
        box = check_image_refs(replace(table), rows=unknown).box  # a copy: table is untouched

    # Optics groups: distinct combinations of the per-particle optics values.
    keys = [table.optics_group.astype(np.float64), table.pixel_size, box.astype(np.float64)]
    if table.has_ctf:
        keys += [table.voltage, table.cs, table.amplitude_contrast]
    key_matrix = np.stack([np.round(k, 6) for k in keys], axis=1)
    uniq, first, inverse = np.unique(key_matrix, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    old_ids = table.optics_group
    split = len(uniq) != len(set(old_ids.tolist()))
    if split or sorted(set(old_ids.tolist())) != list(range(1, len(uniq) + 1)):
        # RELION indexes the optics table by rlnOpticsGroup - 1: renumber 1..k (first appearance)
        order = np.argsort(first)
        new_id = np.empty(len(uniq), dtype=np.int64)
        new_id[order] = np.arange(1, len(uniq) + 1)
        group = new_id[inverse]
    else:  # each group is consistent and numbered 1..k: keep its number (and name)
        group = old_ids.copy()
    group_ids = sorted(set(group.tolist()))

    old_optics = table.optics if isinstance(table.optics, pd.DataFrame) else None
    old_rows = {}
    if old_optics is not None and "rlnOpticsGroup" in old_optics.columns:
        for i, g in enumerate(pd.to_numeric(old_optics["rlnOpticsGroup"], errors="coerce")):
            if np.isfinite(g):
                old_rows[int(g)] = old_optics.iloc[i]
    records = []
    for gid in group_ids:
        i = int(np.flatnonzero(group == gid)[0])
        old = old_rows.get(int(table.optics_group[i]))
        rec = {"rlnOpticsGroup": gid}
        name = None if old is None or split else old.get("rlnOpticsGroupName")
        rec["rlnOpticsGroupName"] = str(name) if name is not None and pd.notna(name) \
            else f"opticsGroup{gid}"
        if table.has_ctf:
            rec["rlnVoltage"] = _format_number(table.voltage[i])
            rec["rlnSphericalAberration"] = _format_number(table.cs[i])
            rec["rlnAmplitudeContrast"] = _format_number(table.amplitude_contrast[i])
        rec["rlnImagePixelSize"] = _format_number(table.pixel_size[i])
        rec["rlnImageSize"] = int(box[i])
        rec["rlnImageDimensionality"] = 2
        if old is not None:  # other optics columns (MTF, beam tilt, rlnCtfDataArePhaseFlipped...)
            for col, value in old.items():
                if col not in rec and col not in _NOT_OPTICS:
                    rec[col] = value
        records.append(rec)
    optics = pd.DataFrame.from_records(records).dropna(axis=1)  # extras some groups lack

    names = [f"{int(k) + 1:06d}@{_image_stack_name(s)}"
             for s, k in zip(table.image_path, table.image_index)]
    cols = {"rlnImageName": names}
    if table.has_ctf:
        cols.update({"rlnDefocusU": table.defocus_u, "rlnDefocusV": table.defocus_v,
                     "rlnDefocusAngle": table.defocus_angle, "rlnPhaseShift": table.phase_shift,
                     "rlnCtfBfactor": table.bfactor, "rlnCtfScalefactor": table.ctf_scale})
    if table.has_poses:
        cols.update({"rlnAngleRot": table.rot, "rlnAngleTilt": table.tilt,
                     "rlnAnglePsi": table.psi, "rlnOriginXAngst": table.origin_x,
                     "rlnOriginYAngst": table.origin_y})
    if table.class_number is not None:
        cols["rlnClassNumber"] = table.class_number.astype(np.int64)
    if table.random_subset is not None:
        cols["rlnRandomSubset"] = table.random_subset.astype(np.int64)
    cols["rlnOpticsGroup"] = group
    particles = pd.DataFrame(cols)

    text = starfile.to_string({"optics": optics, "particles": particles}, float_format="%.6f")
    text = text.replace("\ndata_", "\n# version 30001\n\ndata_")  # as RELION 3.1 writes it
    with atomic_output(path, suffix=".star") as tmp:
        try:
            tmp.write_text(text)
        except OSError as err:
            raise InputError(f"{path}: cannot write ({err.strerror or err})") from None
