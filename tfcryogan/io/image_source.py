"""Random access to the particle images of a :class:`ParticleTable`, without mapping the files.

Each image is read with ``os.pread`` at its offset in its stack (the layout comes from the MRC
header), so only the batch being read is ever in this process's memory: a memory map would
instead keep every page it touched resident (and counted in the process's RSS) for as long as the
map is open, which grows with the data set. At most ``max_open`` stacks are open at once (least
recently used are closed), so data sets of one file per particle work too. No TensorFlow here.
"""

import os
from collections import OrderedDict

import numpy as np

from tfcryogan.errors import InputError
from tfcryogan.io.mrc import stack_layout


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
        self._layouts = {}
        _, _, shape = self._layout(table.image_path[0])
        self.box = int(shape[-1])

    def __len__(self):
        return len(self.table)

    def _layout(self, path):
        layout = self._layouts.get(path)
        if layout is None:
            layout = stack_layout(path)
            self._layouts[path] = layout
        return layout

    def _fd(self, path):
        fd = self._open.get(path)
        if fd is None:
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError as err:
                raise InputError(f"{path}: cannot open ({err.strerror})") from None
            self._open[path] = fd
            while len(self._open) > self.max_open:
                os.close(self._open.popitem(last=False)[1])
        else:
            self._open.move_to_end(path)
        return fd

    def read(self, particles):
        """Images of the given particles.

        Args:
          particles: ``[k]`` integer particle numbers (0-based rows of the table).
        Returns:
          ``[k, box, box]`` float32 in the order given.
        """
        particles = np.asarray(particles, dtype=np.int64).reshape(-1)
        out = np.empty((particles.size, self.box, self.box), dtype=np.float32)
        for row, particle in enumerate(particles):
            path = self.table.image_path[particle]
            index = int(self.table.image_index[particle])
            offset, dtype, (n, ny, nx) = self._layout(path)
            if nx != self.box or ny != self.box:
                raise InputError(f"{path}: images are {nx}x{ny} but {self.table.image_path[0]} "
                                 f"has {self.box}x{self.box}: all particles must have the same "
                                 "box")
            if index >= n:
                raise InputError(f"{path}: image {index + 1} requested but the stack has {n} "
                                 "images")
            size = nx * ny * dtype.itemsize
            data = os.pread(self._fd(path), size, offset + index * size)
            if len(data) != size:
                raise InputError(f"{path}: truncated (image {index + 1} is incomplete)")
            out[row] = np.frombuffer(data, dtype=dtype).reshape(ny, nx)
        return out

    def close(self):
        """Close the open stacks."""
        while self._open:
            os.close(self._open.popitem()[1])

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
