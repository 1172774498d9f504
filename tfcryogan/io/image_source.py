"""Random access to the particle images of a :class:`ParticleTable`, memory-mapped.

Stacks are opened lazily with ``mrcfile.mmap`` (read-only) and at most ``max_open`` at a time
(least recently used are closed), so datasets of one file per particle work and the whole data set
is never read into memory. No TensorFlow here.
"""

from collections import OrderedDict

import numpy as np

from tfcryogan.errors import InputError
from tfcryogan.io.mrc import open_stack


class ImageSource:
    """Read particle images by particle number.

    Args:
      table: a :class:`~tfcryogan.io.particles.ParticleTable` (``image_path``, ``image_index``).
      max_open: how many stacks may be open at once.
    """

    def __init__(self, table, max_open=64):
        self.table = table
        self.max_open = int(max_open)
        self._open = OrderedDict()
        first = self._stack(table.image_path[0])
        self.box = int(first.shape[-1])

    def __len__(self):
        return len(self.table)

    def _stack(self, path):
        stack = self._open.get(path)
        if stack is None:
            stack = open_stack(path)
            self._open[path] = stack
            while len(self._open) > self.max_open:
                self._open.popitem(last=False)
        else:
            self._open.move_to_end(path)
        return stack

    def read(self, particles):
        """Images of the given particles.

        Args:
          particles: ``[k]`` integer particle numbers (0-based rows of the table).
        Returns:
          ``[k, box, box]`` float32 in the order given.
        """
        particles = np.asarray(particles, dtype=np.int64).reshape(-1)
        out = np.empty((particles.size, self.box, self.box), dtype=np.float32)
        paths = self.table.image_path[particles]
        index = self.table.image_index[particles]
        for path in dict.fromkeys(paths):
            rows = np.flatnonzero(paths == path)
            stack = self._stack(path)
            if stack.shape[-1] != self.box or stack.shape[-2] != self.box:
                raise InputError(f"{path}: images are {stack.shape[-1]}x{stack.shape[-2]} but "
                                 f"{self.table.image_path[0]} has {self.box}x{self.box}: all "
                                 "particles must have the same box")
            wanted = index[rows]
            if wanted.max() >= stack.shape[0]:
                raise InputError(f"{path}: image {int(wanted.max()) + 1} requested but the stack "
                                 f"has {stack.shape[0]} images")
            order = np.argsort(wanted, kind="stable")
            out[rows[order]] = stack[wanted[order]]
        return out
