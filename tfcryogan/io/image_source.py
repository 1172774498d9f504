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

    def find_nonfinite(self, progress=None, chunk_bytes=64 << 20):
        """The particles whose image holds NaN or inf values.

        Each stack the table refers to is read once, front to back, in chunks of about
        ``chunk_bytes`` (integer data cannot hold either and is skipped), so the check costs one
        sequential read of the data set and never holds more than a chunk in memory.

        Args:
          progress: optional callable ``progress(images_checked, images_total)``.
        Returns:
          sorted ``int64`` array of 0-based particle rows (empty when every image is finite).
        """
        paths = self.table.image_path
        rows_of = {}
        for row, path in enumerate(paths):
            rows_of.setdefault(path, []).append(row)
        total = sum(self._layout(p)[2][0] for p in rows_of)
        done, bad_rows = 0, []
        for path, rows in rows_of.items():
            offset, dtype, (n, ny, nx) = self._layout(path)
            if dtype.kind != "f":
                done += n
                continue
            size = ny * nx * dtype.itemsize
            per_chunk = max(1, chunk_bytes // size)
            bad = np.zeros(n, bool)
            for start in range(0, n, per_chunk):
                k = min(per_chunk, n - start)
                data = os.pread(self._fd(path), k * size, offset + start * size)
                if len(data) != k * size:
                    raise InputError(f"{path}: truncated (image {start + len(data) // size + 1} "
                                     "is incomplete)")
                images = np.frombuffer(data, dtype=dtype).reshape(k, ny * nx)
                bad[start:start + k] = ~np.isfinite(images).all(axis=1)
                done += k
                if progress:
                    progress(done, total)
            rows = np.asarray(rows)
            index = self.table.image_index[rows]
            hit = (index < n) & bad[np.minimum(index, n - 1)]
            bad_rows.extend(rows[hit].tolist())
        return np.array(sorted(bad_rows), np.int64)

    def close(self):
        """Close the open stacks."""
        while self._open:
            os.close(self._open.popitem()[1])

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
