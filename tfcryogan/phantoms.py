"""A built-in synthetic molecule for demos and tests (no downloads).

An asymmetric chain of Gaussian "domains" and a few dense rods, defined in units of the box so it
renders at any size; chirality and no symmetry make orientation and hand errors visible.
"""

import numpy as np


def phantom(box, seed=0):
    """The built-in phantom, float32 ``[box, box, box]`` (``[z, y, x]``), non-negative, centred at
    ``box // 2``, fitting inside a sphere of radius ``0.35 * box``; ``seed`` varies the molecule."""
    rng = np.random.default_rng(1234 + seed)
    grid = (np.arange(box, dtype=np.float32) - box // 2) / box
    z, y, x = np.meshgrid(grid, grid, grid, indexing="ij")
    volume = np.zeros((box, box, box), np.float32)
    # A random walk of blobs, kept inside radius 0.25 of the box.
    point = np.zeros(3)
    for i in range(28):
        step = rng.normal(0.0, 0.06, 3)
        point = point + step
        norm = np.linalg.norm(point)
        if norm > 0.25:
            point *= 0.25 / norm
        sigma = rng.uniform(0.025, 0.05) if i % 4 else rng.uniform(0.05, 0.07)
        weight = rng.uniform(0.6, 1.0)
        r2 = (z - point[0]) ** 2 + (y - point[1]) ** 2 + (x - point[2]) ** 2
        volume += weight * np.exp(-r2 / (2 * sigma * sigma))
    # Two thin dense rods with different lengths: sharp, chiral features.
    for start, direction, length in (((0.05, -0.1, 0.12), (0.3, 0.8, 0.5), 0.22),
                                     ((-0.12, 0.1, -0.05), (-0.7, 0.2, 0.7), 0.15)):
        start, direction = np.array(start), np.array(direction) / np.linalg.norm(direction)
        for t in np.linspace(0.0, length, 24):
            c = start + t * direction
            r2 = (z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2
            volume += 0.5 * np.exp(-r2 / (2 * 0.018 ** 2))
    return volume / volume.max()
