"""MRC volumes and image stacks (``.mrc``, ``.mrcs``, ``.map``) via ``mrcfile``.

Conventions (RELION's):

- volumes are returned and written as float32 arrays indexed ``[z, y, x]`` (the header's
  ``mapc/mapr/maps`` axis order is honoured on reading);
- image stacks are ``[n, y, x]``; a single 2D image file is a stack of one;
- voxel sizes are in Angstrom. On reading, a header voxel size of 0 means "not set" and is
  returned as ``None`` (the caller takes the pixel size from a STAR file or a flag). A header value
  of 1.0 is often a placeholder too, but it cannot be told apart from a real 1 A pixel and is
  returned as is. On writing, the voxel size is always put in the header.

Reading first parses the header with ``mrcfile`` (strict mode). Files without the ``MAP `` ID
string (written by some older programs, e.g. the ``relion31.mrcs`` from cryoDRGN's tests) are
re-read in ``mrcfile``'s permissive mode, but only accepted when the header describes a supported
data mode and the file size is exactly header + extended header + data, so that a random or
damaged file is reported rather than read as garbage. A file shorter than its header promises is
always reported as truncated.
"""

import contextlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import mrcfile.utils
import numpy as np

from tfcryogan.errors import InputError
from tfcryogan.io._files import atomic_output, require_file

__all__ = [
    "read_volume",
    "write_volume",
    "open_stack",
    "stack_shape",
    "stack_voxel_size",
    "StackWriter",
    "write_stack",
]

_HEADER_BYTES = 1024
_SUPPORTED_MODES = {0, 1, 2, 6, 12}  # int8/uint8, int16, float32, uint16, float16


@dataclass(frozen=True)
class _MrcInfo:
    """What the header says: sizes (columns nx, rows ny, sections nz), dtype, data offset."""

    path: Path
    header: np.recarray
    dtype: np.dtype
    nx: int
    ny: int
    nz: int
    data_offset: int
    voxel_size: tuple  # (x, y, z) in A, as in the header


def _read_info(path):
    """Parse and check an MRC header; raise InputError for anything unreadable or truncated."""
    p = require_file(path)
    size = p.stat().st_size
    if size < _HEADER_BYTES:
        raise InputError(f"{p}: not an MRC file (only {size} bytes, an MRC header is 1024)")
    header, lenient = None, False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with mrcfile.open(p, mode="r", header_only=True) as mrc:
                header = mrc.header.copy()
        except ValueError as err:
            msg = str(err)
            if "Map ID" not in msg and "machine stamp" not in msg:
                raise InputError(f"{p}: not a valid MRC file ({msg})") from None
            lenient = True
        except OSError as err:
            raise InputError(f"{p}: cannot read ({err.strerror or err})") from None
        if lenient:
            try:
                with mrcfile.open(p, mode="r", header_only=True, permissive=True) as mrc:
                    header = mrc.header.copy()
            except (ValueError, OSError) as err:
                raise InputError(f"{p}: not a valid MRC file ({err})") from None
    mode = int(header.mode)
    if mode not in _SUPPORTED_MODES:
        kind = "complex" if mode in (3, 4) else "unsupported"
        raise InputError(f"{p}: not a valid MRC file or {kind} data mode {mode} "
                         "(supported: 0, 1, 2, 6, 12)")
    nx, ny, nz = int(header.nx), int(header.ny), int(header.nz)
    if min(nx, ny, nz) <= 0:
        raise InputError(f"{p}: not a valid MRC file (dimensions {nx} x {ny} x {nz})")
    nsymbt = int(header.nsymbt)
    if nsymbt < 0:
        raise InputError(f"{p}: not a valid MRC file (negative extended header size {nsymbt})")
    try:
        dtype = mrcfile.utils.data_dtype_from_header(header)
    except ValueError as err:
        raise InputError(f"{p}: not a valid MRC file ({err})") from None
    offset = _HEADER_BYTES + nsymbt
    expected = offset + nx * ny * nz * dtype.itemsize
    if size < expected:
        raise InputError(f"{p}: truncated MRC file ({size} bytes, the header "
                         f"({nx} x {ny} x {nz}, mode {mode}) needs {expected})")
    if lenient and size != expected:
        raise InputError(f"{p}: not a valid MRC file (no MAP ID string and the file size {size} "
                         f"does not match the header's {expected})")
    with np.errstate(divide="ignore", invalid="ignore"):
        cella = header.cella
        vs = tuple(float(cella[a]) / float(header[m]) if int(header[m]) > 0 else 0.0
                   for a, m in (("x", "mx"), ("y", "my"), ("z", "mz")))
    return _MrcInfo(p, header, dtype, nx, ny, nz, offset, vs)


def _voxel_size_or_none(info, dims):
    """Voxel size (A) over the given header axes (0=x, 1=y, 2=z); None if the header says 0."""
    values = [info.voxel_size[d] for d in dims]
    if not all(np.isfinite(values)) or min(values) < 0:
        raise InputError(f"{info.path}: invalid voxel size {values} in the header")
    if max(values) == 0:
        return None
    values = [float(f"{v:.7g}") for v in values]  # the header holds float32: 5.7, not 5.6999998
    if min(values) == 0 or not np.allclose(values, values[0], rtol=1e-3, atol=0):
        raise InputError(f"{info.path}: anisotropic voxel size {tuple(values)} A is not supported")
    return float(values[0])


def _check_finite(path, array):
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise InputError(f"{path}: {bad} voxel values are NaN or infinite")


def read_volume(path):
    """Read a cubic 3D map.

    Returns ``(volume, voxel_size_A)``: ``volume`` is a float32 array ``[z, y, x]`` of shape
    ``(N, N, N)`` (any ``mapc/mapr/maps`` axis order in the header is undone); ``voxel_size_A`` is
    the header voxel size in Angstrom, or ``None`` when the header says 0 (a placeholder; the
    caller decides, e.g. from a flag). A 1.0 is returned as is even though it is often a
    placeholder.

    Raises InputError for a missing, non-MRC or truncated file, a 2D image, a volume stack, a
    non-cubic map, an anisotropic voxel size, or NaN/infinite values.
    """
    info = _read_info(path)
    h = info.header
    if int(h.ispg) >= 401 and int(h.mz) > 0 and info.nz != int(h.mz):
        raise InputError(f"{info.path}: is a stack of volumes (nz {info.nz}, mz {int(h.mz)}), "
                         "expected one volume")
    if info.nz == 1:
        raise InputError(f"{info.path}: is a 2D image ({info.ny} x {info.nx}), expected a volume")
    # Axis (1=x, 2=y, 3=z) of the columns, rows and sections.
    axes = [int(h.mapc), int(h.mapr), int(h.maps)]
    if axes == [0, 0, 0]:
        axes = [1, 2, 3]
    if sorted(axes) != [1, 2, 3]:
        raise InputError(f"{info.path}: invalid axis order mapc/mapr/maps = {axes}")
    shape_srx = (info.nz, info.ny, info.nx)  # array dims: sections, rows, columns
    if len(set(shape_srx)) != 1:
        raise InputError(f"{info.path}: volume is not cubic ({info.nx} x {info.ny} x {info.nz} "
                         "columns x rows x sections)")
    try:
        raw = np.fromfile(info.path, dtype=info.dtype, count=int(np.prod(shape_srx)),
                          offset=info.data_offset).reshape(shape_srx)
    except (OSError, ValueError) as err:
        raise InputError(f"{info.path}: cannot read the data block ({err})") from None
    dim_axes = [axes[2], axes[1], axes[0]]  # header axis held by array dims 0, 1, 2
    perm = [dim_axes.index(a) for a in (3, 2, 1)]  # output dims z, y, x
    volume = np.ascontiguousarray(raw.transpose(perm), dtype=np.float32)
    _check_finite(info.path, volume)
    voxel = _voxel_size_or_none(info, (0, 1, 2))
    return volume, voxel


def _check_voxel_size(voxel_size_A, what):
    try:
        v = float(voxel_size_A)
    except (TypeError, ValueError):
        v = float("nan")
    if not (np.isfinite(v) and v > 0):
        raise InputError(f"{what}: voxel size must be a positive number of Angstrom, "
                         f"got {voxel_size_A!r}")
    return v


def write_volume(path, volume, voxel_size_A):
    """Write a 3D map ``volume[z, y, x]`` as a float32 MRC (mode 2, space group 1).

    ``voxel_size_A`` (Angstrom, > 0) is always written to the header; the origin is 0. The file is
    written to a temporary file in the same folder and renamed (atomic); parent folders are made.
    """
    v = _check_voxel_size(voxel_size_A, str(path))
    vol = np.asarray(volume)
    if vol.ndim != 3:
        raise ValueError(f"{path}: write_volume needs a 3D array [z, y, x], got shape {vol.shape}")
    vol = np.ascontiguousarray(vol, dtype=np.float32)
    if not np.isfinite(vol).all():
        raise ValueError(f"{path}: refusing to write a volume with NaN or infinite values")
    with atomic_output(path, suffix=".mrc") as tmp:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(vol)
            mrc.set_volume()
            mrc.voxel_size = v
            mrc.header.origin = (0.0, 0.0, 0.0)
            mrc.header.nxstart = mrc.header.nystart = mrc.header.nzstart = 0


def _stack_info(path):
    info = _read_info(path)
    h = info.header
    if int(h.ispg) >= 401 and int(h.mz) > 0 and info.nz != int(h.mz):
        raise InputError(f"{info.path}: is a stack of volumes, expected 2D images")
    if info.nx != info.ny:
        raise InputError(f"{info.path}: images are not square ({info.ny} x {info.nx})")
    if [int(h.mapc), int(h.mapr)] not in ([1, 2], [0, 0]):
        raise InputError(f"{info.path}: unsupported axis order mapc/mapr = "
                         f"{int(h.mapc)}/{int(h.mapr)} for an image stack (expected 1/2)")
    return info


def open_stack(path):
    """Memory-map an image stack read-only; nothing is read until it is indexed.

    Returns a ``numpy.memmap`` of shape ``[n, y, x]`` (``y == x``, square images) with the file's
    own dtype (usually float32; int8/int16/uint16/float16 stacks are not converted: use
    ``np.asarray(stack[i:j], np.float32)``). A single 2D image file gives ``[1, y, x]``.
    The header's space group is ignored: an ``N``-section file is read as ``N`` images.

    Raises InputError for a missing, non-MRC or truncated file, or non-square images.
    """
    info = _stack_info(path)
    try:
        return np.memmap(info.path, dtype=info.dtype, mode="r", offset=info.data_offset,
                         shape=(info.nz, info.ny, info.nx))
    except (OSError, ValueError) as err:
        raise InputError(f"{info.path}: cannot memory-map the images ({err})") from None


def stack_layout(path):
    """Where an image stack's pixels are: ``(data_offset_bytes, dtype, (n, y, x))``, from its
    header (checked as in :func:`open_stack`). Lets readers fetch single images with ``os.pread``
    instead of mapping the file."""
    info = _stack_info(path)
    return info.data_offset, np.dtype(info.dtype), (info.nz, info.ny, info.nx)


def stack_shape(path):
    """``(n_images, box_y, box_x)`` of an image stack, from its header only (checked as in
    open_stack)."""
    info = _stack_info(path)
    return info.nz, info.ny, info.nx


def stack_voxel_size(path):
    """Pixel size (A) in an image stack's header, or ``None`` when it is 0 (not set)."""
    return _voxel_size_or_none(_stack_info(path), (0, 1))


class StackWriter:
    """Write an image stack ``[n, box, box]`` (float32 ``.mrcs``) piece by piece.

    ::

        with StackWriter("out/particles.mrcs", n_images=1000, box=128, voxel_size_A=1.5) as w:
            for start in range(0, 1000, 100):
                w.write(start, images)  # float32 [b, 128, 128] for indices start .. start+b-1

    The data go to a temporary file in the same folder: its header is made by ``mrcfile`` (mode 2,
    space group 0 = image stack, as RELION writes ``.mrcs``, the voxel size in A), and the images
    are written with ``os.pwrite`` at their offsets (no page faults of a memory map, any order, any
    size). On a clean exit the header statistics are set (from running sums, without re-reading
    the file) and the file is renamed to ``path``; on an exception, or if some images were never
    written, the temporary file is deleted and ``path`` is left untouched. Indices are 0-based.
    ``write`` may be called from another thread than the one that opened the writer (one at a
    time).
    """

    def __init__(self, path, n_images, box, voxel_size_A):
        self.path = Path(path)
        self.n_images = int(n_images)
        self.box = int(box)
        if self.n_images < 1 or self.box < 1 or self.n_images != n_images or self.box != box:
            raise ValueError(f"{path}: need n_images >= 1 and box >= 1, got {n_images}, {box}")
        self.voxel_size_A = _check_voxel_size(voxel_size_A, str(path))
        self._ctx = None
        self._tmp = None
        self._fd = None
        self._offset = 0

    def __enter__(self):
        self._ctx = atomic_output(self.path, suffix=".mrcs")
        self._tmp = self._ctx.__enter__()
        try:
            # A memory map only to make the header and size the (sparse) file: its data pages
            # are never touched.
            with mrcfile.new_mmap(self._tmp, shape=(self.n_images, self.box, self.box),
                                  mrc_mode=2, overwrite=True) as mrc:
                mrc.set_image_stack()
                mrc.voxel_size = self.voxel_size_A
                mrc.header.origin = (0.0, 0.0, 0.0)
                self._offset = mrc.header.nbytes + mrc.extended_header.nbytes
            self._fd = os.open(self._tmp, os.O_RDWR)
        except BaseException as err:
            self._abort(err)
            raise
        self._written = np.zeros(self.n_images, dtype=bool)
        self._stats = [np.inf, -np.inf, 0.0, 0.0]  # min, max, sum, sum of squares
        return self

    def write(self, start_index, images):
        """Write ``images`` (float32 ``[b, box, box]``, or one ``[box, box]``) at 0-based
        indices ``start_index .. start_index + b - 1``."""
        if self._fd is None:
            raise RuntimeError("StackWriter.write() called outside the 'with' block")
        imgs = np.ascontiguousarray(images, dtype=np.float32)
        if imgs.ndim == 2:
            imgs = imgs[None]
        if imgs.ndim != 3 or imgs.shape[1:] != (self.box, self.box):
            raise ValueError(f"{self.path}: images must be [b, {self.box}, {self.box}], "
                             f"got shape {np.shape(images)}")
        start = int(start_index)
        stop = start + imgs.shape[0]
        if start < 0 or stop > self.n_images:
            raise IndexError(f"{self.path}: images {start}..{stop - 1} are outside the stack "
                             f"of {self.n_images}")
        flat = imgs.reshape(-1)
        total = float(flat.sum(dtype=np.float64))
        squares = float(np.dot(flat, flat))
        if not (np.isfinite(total) and np.isfinite(squares)):  # NaN/inf propagate to the sums
            raise ValueError(f"{self.path}: refusing to write NaN or infinite pixel values")
        data = memoryview(flat.view(np.uint8))
        position = self._offset + 4 * start * self.box * self.box
        while data:
            written = os.pwrite(self._fd, data, position)
            data, position = data[written:], position + written
        self._written[start:stop] = True
        s = self._stats
        s[0] = min(s[0], float(flat.min()))
        s[1] = max(s[1], float(flat.max()))
        s[2] += total
        s[3] += squares

    def _abort(self, err):
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        ctx, self._ctx = self._ctx, None
        if ctx is not None:
            try:
                ctx.__exit__(type(err), err, err.__traceback__)  # removes the temporary file
            except BaseException:  # noqa: BLE001 - it re-raises err; the caller raises it
                pass

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None and not self._written.all():
            missing = np.flatnonzero(~self._written)
            exc = RuntimeError(f"{self.path}: {missing.size} of {self.n_images} images were never "
                               f"written (first missing index {missing[0]}); file not created")
            self._abort(exc)
            raise exc
        if exc_type is not None:
            self._abort(exc)
            return False
        try:
            os.close(self._fd)
            self._fd = None
            mn, mx, total, sq = self._stats
            count = self.n_images * self.box * self.box
            mean = total / count
            with mrcfile.mmap(self._tmp, mode="r+") as mrc:  # touches the header page only
                h = mrc.header
                h.dmin, h.dmax, h.dmean = mn, mx, mean
                h.rms = np.sqrt(max(sq / count - mean * mean, 0.0))
        except BaseException as err:
            self._abort(err)
            raise
        ctx, self._ctx = self._ctx, None
        ctx.__exit__(None, None, None)  # renames onto self.path
        return False


def write_stack(path, images, voxel_size_A):
    """Write ``images`` (float32 ``[n, box, box]``, or one ``[box, box]``) as an ``.mrcs`` stack
    with the voxel size (A) in the header; atomic (see StackWriter)."""
    imgs = np.asarray(images)
    if imgs.ndim == 2:
        imgs = imgs[None]
    if imgs.ndim != 3 or imgs.shape[1] != imgs.shape[2]:
        raise ValueError(f"{path}: images must be [n, box, box], got shape {np.shape(images)}")
    with StackWriter(path, imgs.shape[0], imgs.shape[1], voxel_size_A) as writer:
        writer.write(0, imgs)

