"""Maps to compare, put on one grid (the reference's): reading and checking them needs no
TensorFlow, so that bad input fails in a fraction of a second; resampling imports it.

A map with another voxel size than the reference is resampled (Fourier cropping or padding, then
centre crop/pad to the reference box) and a note says so; a map with the reference's voxel size
but another box is refused (the two cannot be on one grid without a guess).
"""

import math
import os
from dataclasses import dataclass, field

import numpy as np

from tfcryogan import io
from tfcryogan.errors import InputError


@dataclass
class Grid:
    """The comparison grid (the reference's): box and voxel size in A."""

    box: int
    pixel_size: float


@dataclass
class LoadedMap:
    """A map read from ``path`` for the comparison grid; ``notes`` say what was done to it.

    ``voxel_size`` is set (A) while the map still has to be resampled (:meth:`on_grid`)."""

    path: str
    volume: np.ndarray
    notes: list = field(default_factory=list)
    voxel_size: float = None

    @property
    def name(self):
        return os.path.splitext(os.path.basename(self.path))[0]

    def on_grid(self, grid):
        """Resample onto ``grid`` when the voxel size differs (imports TensorFlow); returns
        ``self``."""
        if self.voxel_size is None:
            return self
        from tfcryogan.physics import fourier  # pylint: disable=import-outside-toplevel
        n = self.volume.shape[0]
        resampled, actual = fourier.resample(self.volume, self.voxel_size, grid.pixel_size,
                                             grid.box, ndim=3)
        self.notes.append(f"{self.path}: resampled from {n}^3 voxels of {self.voxel_size:g} A "
                          f"to the reference grid, {grid.box}^3 voxels of {actual:.4g} A "
                          "(Fourier cropping/padding, then centre crop/pad)")
        self.volume, self.voxel_size = resampled.numpy(), None
        return self


def _check_density(path, volume):
    if not np.ptp(volume) > 0:
        raise InputError(f"{path}: the map is constant (no density to compare)")


def load_reference(path, pixel_size=None):
    """Read the reference: ``(LoadedMap, Grid)``; ``pixel_size`` (A) overrides the header."""
    volume, voxel = io.read_volume(path)
    _check_density(path, volume)
    if pixel_size is not None:
        if not (math.isfinite(pixel_size) and pixel_size > 0):
            raise InputError(f"--pixel_size={pixel_size}: must be a positive number of A")
        voxel = float(pixel_size)
    if voxel is None:
        raise InputError(f"{path}: the header has no voxel size (0); give --pixel_size")
    return LoadedMap(os.path.abspath(path), volume), Grid(volume.shape[0], float(voxel))


def load_for_grid(path, grid, pixel_size=None, reference_path=None):
    """Read a map to compare on ``grid``: marked for resampling when its voxel size differs,
    refused when only its box differs. ``pixel_size`` (A) overrides the header; a header without
    voxel size (0) takes the grid's. Call :meth:`LoadedMap.on_grid` before using the volume."""
    volume, voxel = io.read_volume(path)
    _check_density(path, volume)
    loaded = LoadedMap(os.path.abspath(path), volume)
    if pixel_size is not None:
        voxel = float(pixel_size)
    if voxel is None:
        voxel = grid.pixel_size
        loaded.notes.append(f"{path}: no voxel size in the header; using the reference's "
                            f"{grid.pixel_size:g} A")
    n = volume.shape[0]
    same_voxel = abs(voxel - grid.pixel_size) <= 1e-3 * grid.pixel_size
    ref = reference_path or "the reference"
    if same_voxel and n != grid.box:
        raise InputError(f"{path}: box {n} differs from {ref}'s {grid.box} at the same voxel size "
                         f"{grid.pixel_size:g} A; give maps on one grid")
    if not same_voxel:
        loaded.voxel_size = float(voxel)
    return loaded
