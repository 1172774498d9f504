"""Read a particle metadata file of any supported format by its extension."""

from pathlib import Path

from tfcryogan.errors import InputError
from tfcryogan.io.cryosparc import read_cs
from tfcryogan.io.star import read_star

__all__ = ["PARTICLE_SUFFIXES", "read_particles"]

#: Extensions read_particles understands (lower case).
PARTICLE_SUFFIXES = (".star", ".cs")


def read_particles(path, **kw):
    """Read particle metadata into a :class:`ParticleTable`, by extension:
    ``.star`` -> :func:`read_star`, ``.cs`` -> :func:`read_cs`. Keyword arguments go to that reader
    (both take ``require_ctf``, ``check_images`` and ``pixel_size``; ``read_cs`` also takes
    ``stack_root``). Other extensions raise InputError.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".star":
        return read_star(path, **kw)
    if suffix == ".cs":
        return read_cs(path, **kw)
    raise InputError(f"{path}: unsupported particle file type {suffix or '(no extension)'!r} "
                     f"(supported: {', '.join(PARTICLE_SUFFIXES)})")
