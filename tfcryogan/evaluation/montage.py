"""PNG montages of volumes' central slices (matplotlib, Agg canvas; written atomically)."""

import os
import tempfile

import numpy as np


def central_slices(volume):
    """The three central sections of ``[N, N, N]`` (``[z, y, x]``): xy, xz, yz planes."""
    c = volume.shape[0] // 2
    return [volume[c], volume[:, c], volume[:, :, c]]


def slice_montage(path, volumes, labels=None, title=None):
    """Write a PNG: one row per volume, its three central slices (xy, xz, yz), one grey scale
    shared by all volumes so that density changes are visible.

    Args:
      path: output ``.png`` (folders created).
      volumes: sequence of ``[N, N, N]`` arrays; labels: one string per row.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=import-outside-toplevel
    from matplotlib.figure import Figure  # pylint: disable=import-outside-toplevel

    volumes = [np.asarray(v, np.float32) for v in volumes]
    lo = min(float(v.min()) for v in volumes)
    hi = max(float(v.max()) for v in volumes)
    rows = len(volumes)
    fig = Figure(figsize=(6, 2 * rows + (0.4 if title else 0)))
    FigureCanvasAgg(fig)
    for r, volume in enumerate(volumes):
        for c, (plane, name) in enumerate(zip(central_slices(volume), ("xy", "xz", "yz"))):
            ax = fig.add_subplot(rows, 3, 3 * r + c + 1)
            ax.imshow(plane, cmap="gray", vmin=lo, vmax=hi, origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=9)
            if c == 0 and labels:
                ax.set_ylabel(labels[r], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=os.path.dirname(os.path.abspath(path)))
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=80)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path
