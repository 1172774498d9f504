"""Small file helpers shared by the readers and writers (private)."""

import contextlib
import json
import math
import os
import re
import tempfile
from pathlib import Path

from tfcryogan.errors import InputError


def require_file(path):
    """Return ``path`` as a ``Path`` if it is an existing regular file, else raise InputError."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found")
    if not p.is_file():
        raise InputError(f"{p}: not a regular file")
    return p


def _current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path, suffix=""):
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    The temporary file lives in the same folder (so ``os.replace`` is atomic), parent folders are
    created, and on any exception the temporary file is removed and ``path`` is left untouched.
    ``suffix`` is appended to the temporary name (some writers pick the format from it).
    """
    path = Path(path)
    if path.exists() and path.is_dir():
        raise InputError(f"{path}: is a folder, cannot write a file there")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"{path}: cannot create folder {path.parent}: {err.strerror}") from None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    except OSError as err:
        raise InputError(f"{path}: cannot write in {path.parent}: {err.strerror}") from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _json_ready(obj):
    """Replace non-finite floats (not valid JSON) by None, recursively; tuples become lists."""
    if isinstance(obj, dict):
        return {k: _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path, record):
    """Write ``record`` as indented JSON, atomically (lists of numbers on one line each; NaN and
    inf as null, which JSON readers accept). Values JSON cannot hold are written as text."""
    text = json.dumps(_json_ready(record), indent=1, sort_keys=True, default=str)
    text = re.sub(r"\[\s+([-+0-9.eE,\snul]*?)\s+\]",
                  lambda m: "[" + re.sub(r"\s+", " ", m.group(1)) + "]", text)
    with atomic_output(path, suffix=".json") as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    return str(path)
