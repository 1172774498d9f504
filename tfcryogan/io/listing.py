"""Inputs named on the command line: lists/folders of maps, and image sets given as a STAR/.cs
file or as a bare stack. No TensorFlow here."""

import glob
import os

import numpy as np

from tfcryogan.errors import InputError
from tfcryogan.io.mrc import stack_shape, stack_voxel_size
from tfcryogan.io.particles import ParticleTable
from tfcryogan.io.particles_io import PARTICLE_SUFFIXES, read_particles


def list_maps(spec, flag):
    """Map paths from a comma-separated list and/or folders (their ``*.mrc``, ``*.map``, sorted).

    Args:
      spec: e.g. ``"a.mrc,frames/"``.
      flag: the flag's name, for the error on an empty list.
    Returns:
      list of paths (as given; folders expanded).
    """
    paths = []
    for item in [s.strip() for s in str(spec or "").split(",") if s.strip()]:
        if os.path.isdir(item):
            found = sorted(glob.glob(os.path.join(item, "*.mrc")) +
                           glob.glob(os.path.join(item, "*.map")))
            if not found:
                raise InputError(f"{item}: folder has no .mrc or .map files")
            paths.extend(found)
        else:
            paths.append(item)
    if not paths:
        raise InputError(f"--{flag}: no map given")
    return paths


def read_image_set(path, check_images=False):
    """The images of a STAR/.cs file (CTF columns optional) or of a bare MRC stack.

    Args:
      path: ``.star``/``.cs`` metadata, or an ``.mrcs``/``.mrc`` stack whose header gives the pixel
        size (Angstrom).
      check_images: for metadata, check that every referenced image exists.
    Returns:
      :class:`ParticleTable` (for a stack: every image, 0-based indices, the header's pixel size).
    """
    path = str(path)
    if path.endswith(tuple(PARTICLE_SUFFIXES)):
        return read_particles(path, require_ctf=False, check_images=check_images)
    n_images = stack_shape(path)[0]
    pixel = stack_voxel_size(path)
    if not pixel:
        raise InputError(f"{path}: the header has no pixel size; give a STAR file that lists "
                         "these images instead")
    return ParticleTable(image_path=[os.path.abspath(path)] * n_images,
                         image_index=np.arange(n_images), pixel_size=pixel, source=path)
