"""File input/output: MRC volumes and stacks, particle metadata (STAR, cryoSPARC), CTF tables,
atomic models. No TensorFlow here.

Conventions (RELION's; see the module docstrings): volumes ``[z, y, x]``, stacks ``[n, y, x]``,
lengths in Angstrom, angles in degrees, voltage in kV, Cs in mm, origins in Angstrom, image indices
0-based in memory (1-based ``N@stack`` in STAR files). Bad input raises
``tfcryogan.errors.InputError`` with one line naming the file and the problem.
"""

from tfcryogan.io._files import write_json
from tfcryogan.io.atomic import model_to_density
from tfcryogan.io.cryosparc import read_cs
from tfcryogan.io.ctf_table import read_ctf_table
from tfcryogan.io.listing import list_maps, read_image_set
from tfcryogan.io.mrc import (StackWriter, open_stack, read_volume, stack_shape,
                              stack_voxel_size, write_stack, write_volume)
from tfcryogan.io.particles import CTF_COLUMNS, ParticleTable
from tfcryogan.io.particles_io import PARTICLE_SUFFIXES, read_particles
from tfcryogan.io.star import check_image_refs, read_star, write_star

__all__ = [
    "CTF_COLUMNS",
    "PARTICLE_SUFFIXES",
    "ParticleTable",
    "StackWriter",
    "check_image_refs",
    "list_maps",
    "model_to_density",
    "open_stack",
    "read_cs",
    "read_image_set",
    "read_ctf_table",
    "read_particles",
    "read_star",
    "read_volume",
    "stack_shape",
    "stack_voxel_size",
    "write_json",
    "write_stack",
    "write_star",
    "write_volume",
]
