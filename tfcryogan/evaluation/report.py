"""Compare a map with a reference: alignment, FSC curve, resolutions, CSV and plot.

Units: Angstrom, degrees; frequencies in 1/A. FSC shells are those of
:mod:`tfcryogan.evaluation.fsc` (integer radii ``0 .. N // 2``; shell ``r`` is
``r / (N * pixel_size)`` 1/A).

Masking: by default (``mask_radius_A=None``) the FSC is computed over the whole box, without a mask.
With ``mask_radius_A`` both maps (the reference and the aligned map) are multiplied by the same soft
spherical mask, centred in the box, equal to 1 up to ``mask_radius_A`` and falling to 0 over a
raised-cosine edge of ``mask_edge_A`` (default 3 voxels), before the FSC; the alignment then uses
that radius for its correlation mask too.
"""

import csv

import numpy as np

from tfcryogan.evaluation import fsc as fsc_module
from tfcryogan.evaluation.align import align as align_maps
from tfcryogan.evaluation.align import soft_sphere_mask
from tfcryogan.io._files import atomic_output
from tfcryogan.physics import rotations

__all__ = ["THRESHOLDS", "compare_maps", "fsc_shells", "plot_fsc", "resolutions",
           "write_fsc_csv"]

#: FSC thresholds reported: 0.5 (the usual criterion against a ground-truth map) and 0.143.
THRESHOLDS = (0.5, 0.143)


def fsc_shells(curve, box, pixel_size):
    """The FSC curve per shell as plain lists (JSON-ready).

    Args:
      curve: ``[N // 2 + 1]`` FSC values; box: ``N``; pixel_size: A/voxel.
    Returns:
      dict of equal-length lists: ``shell`` (int), ``frequency_per_A`` (1/A), ``resolution_A`` (A;
      None for shell 0), ``fsc``.
    """
    c = np.asarray(curve, np.float64)
    shells = np.arange(len(c))
    freq = shells / (box * pixel_size)
    return {
        "shell": [int(s) for s in shells],
        "frequency_per_A": [float(f) for f in freq],
        "resolution_A": [None if f == 0 else float(1.0 / f) for f in freq],
        "fsc": [float(v) for v in c],
    }


def resolutions(curve, box, pixel_size, thresholds=THRESHOLDS):
    """Resolutions where ``curve`` first falls below each threshold.

    Returns:
      ``{"0.5": {"angstrom": A, "fraction_of_nyquist": f}, "0.143": {...}}`` (keys ``f"{t:g}"``);
      a curve that never falls below gives Nyquist (``2 * pixel_size``, fraction 1).
    """
    out = {}
    for t in thresholds:
        res, frac = fsc_module.resolution(curve, box, pixel_size, t)
        out[f"{t:g}"] = {"angstrom": float(res), "fraction_of_nyquist": float(frac)}
    return out


def compare_maps(volume, reference, pixel_size, align=True, mask_radius_A=None, mask_edge_A=None,
                 align_options=None):
    """Align ``volume`` onto ``reference`` (rotation, hand, shift) and measure their FSC.

    Args:
      volume, reference: ``[N, N, N]`` float32 maps ``[z, y, x]`` on the same grid.
      pixel_size: A/voxel of both.
      align: search rotation, mirror and shift (:func:`tfcryogan.evaluation.align.align`); False
        compares the maps as they are.
      mask_radius_A, mask_edge_A: optional soft spherical mask (A) applied to both maps before the
        FSC (see the module docstring; default: no mask).
      align_options: extra keyword arguments for ``align`` (e.g. ``n_rotations``).
    Returns:
      dict (JSON-ready except ``aligned_volume``): ``box``, ``pixel_size_A``, ``nyquist_A``,
      ``mask`` (None or ``{"radius_A", "edge_A"}``), ``fsc`` (:func:`fsc_shells` of the aligned
      map), ``resolution`` (:func:`resolutions`: FSC 0.5 and 0.143 in A and fraction of Nyquist;
      also flat as ``resolution_0.5_A``, ``fraction_0.5``, ``resolution_0.143_A``,
      ``fraction_0.143``),
      ``alignment`` (None without ``align``, else ``matrix`` [3][3] (proper rotation acting on
      (x, y, z)), ``euler_relion_deg`` ``{rot, tilt, psi}`` of that matrix, ``flipped`` (the map
      was mirrored z -> -z first: opposite hand), ``shift_A`` and ``shift_voxels`` (x, y, z, applied
      after the rotation), ``correlation``, ``seconds``), ``fsc_unaligned`` and
      ``resolution_unaligned`` (the same before alignment, with ``align``), and ``aligned_volume``
      (``[N, N, N]`` float32 numpy; the input itself without ``align``).
    """
    vol = np.asarray(volume, np.float32)
    ref = np.asarray(reference, np.float32)
    if vol.ndim != 3 or vol.shape != ref.shape or len(set(vol.shape)) != 1:
        raise ValueError(f"compare_maps needs two cubic maps of one box, got {vol.shape} and "
                         f"{ref.shape}")
    n = vol.shape[0]
    pixel_size = float(pixel_size)
    mask = None
    mask_info = None
    options = dict(align_options or {})
    if mask_radius_A is not None:
        edge_a = 3.0 * pixel_size if mask_edge_A is None else float(mask_edge_A)
        mask = soft_sphere_mask(n, mask_radius_A / pixel_size, edge_a / pixel_size).numpy()
        mask_info = {"radius_A": float(mask_radius_A), "edge_A": edge_a}
        options.setdefault("mask_radius", mask_radius_A / pixel_size)

    def curve_of(a):
        if mask is not None:
            return fsc_module.fsc(a * mask, ref * mask).numpy()
        return fsc_module.fsc(a, ref).numpy()

    report = {"box": n, "pixel_size_A": pixel_size, "nyquist_A": 2.0 * pixel_size,
              "mask": mask_info}
    if align:
        result = align_maps(vol, ref, **options)
        aligned = result.aligned_volume
        rot, tilt, psi = (float(a) for a in rotations.matrix_to_euler(result.matrix))
        shift = [float(s) for s in result.shift_voxels]
        report["alignment"] = {
            "matrix": [[float(x) for x in row] for row in result.matrix],
            "euler_relion_deg": {"rot": rot, "tilt": tilt, "psi": psi},
            "flipped": bool(result.flipped),
            "shift_A": [s * pixel_size for s in shift],
            "shift_voxels": shift,
            "correlation": float(result.correlation),
            "seconds": float(result.seconds),
            "convention": ("aligned(r) = map(M^T (r - shift)) with M = matrix @ diag(1, 1, -1) "
                           "if flipped else matrix; r = (x, y, z) from the box centre N // 2"),
        }
    else:
        aligned = vol
        report["alignment"] = None
    curve = curve_of(aligned)
    report["fsc"] = fsc_shells(curve, n, pixel_size)
    report["resolution"] = resolutions(curve, n, pixel_size)
    for t, r in report["resolution"].items():  # flat copies, handy for one-line summaries
        report[f"resolution_{t}_A"] = r["angstrom"]
        report[f"fraction_{t}"] = r["fraction_of_nyquist"]
    if align:
        before = curve_of(vol)
        report["fsc_unaligned"] = fsc_shells(before, n, pixel_size)
        report["resolution_unaligned"] = resolutions(before, n, pixel_size)
    report["aligned_volume"] = aligned
    return report


def _format(value):
    if value is None:
        return "inf"
    return f"{value:.6g}"


def _is_result(obj):
    return isinstance(obj, dict) and isinstance(obj.get("fsc"), dict) and "box" in obj


def _curves_and_grid(curves, box, pixel_size, result_labels):
    """Normalise the accepted ``curves`` forms to ``({label: values}, box, pixel_size)``."""
    if _is_result(curves):
        curves = [(result_labels[0], curves)]
        if curves[0][1].get("fsc_unaligned"):
            curves.append((result_labels[1], {"box": curves[0][1]["box"],
                                              "pixel_size_A": curves[0][1]["pixel_size_A"],
                                              "fsc": curves[0][1]["fsc_unaligned"]}))
    elif not isinstance(curves, (dict, list, tuple)) or (
            isinstance(curves, (list, tuple)) and curves and not isinstance(curves[0], tuple)):
        curves = [(result_labels[0], curves)]
    items = list(curves.items()) if isinstance(curves, dict) else list(curves)
    out = {}
    for label, value in items:
        if _is_result(value):
            box = value["box"] if box is None else box
            pixel_size = value["pixel_size_A"] if pixel_size is None else pixel_size
            value = value["fsc"]["fsc"]
        out[label] = np.asarray(value, np.float64)
    if box is None or pixel_size is None:
        raise ValueError("box and pixel_size are needed unless compare_maps results are given")
    return out, int(box), float(pixel_size)


def write_fsc_csv(path, curves, box=None, pixel_size=None):
    """Write FSC curves as CSV, one row per shell (atomic; parent folders are created).

    Columns: ``shell``, ``frequency_per_A``, ``resolution_A`` (``inf`` for shell 0), then one column
    per curve.

    Args:
      path: output file.
      curves: ``{column_name: [N // 2 + 1] FSC values}``, a list of ``(name, values)``, one array
        (column ``fsc``), or a :func:`compare_maps` result (columns ``fsc`` and, if aligned,
        ``fsc_unaligned``); results may stand for values anywhere and then give box and pixel size.
      box: ``N``; pixel_size: A/voxel (taken from results when not given).
    """
    columns, box, pixel_size = _curves_and_grid(curves, box, pixel_size, ("fsc", "fsc_unaligned"))
    shells = fsc_shells(next(iter(columns.values())), box, pixel_size)
    with atomic_output(path, suffix=".csv") as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["shell", "frequency_per_A", "resolution_A", *columns])
            for i, shell in enumerate(shells["shell"]):
                writer.writerow([shell, _format(shells["frequency_per_A"][i]),
                                 _format(shells["resolution_A"][i]),
                                 *(_format(float(c[i])) for c in columns.values())])


def plot_fsc(path, curves, box=None, pixel_size=None, title=None, thresholds=THRESHOLDS,
             styles=None):
    """Plot FSC curves against spatial frequency (PNG or any format matplotlib knows by suffix).

    The bottom axis is frequency in 1/A, the top axis the corresponding resolution in A; dashed
    lines mark the ``thresholds`` (0.5 and 0.143). Written atomically (parent folders created),
    with matplotlib's Agg canvas (no display needed, no global backend change).

    Args:
      path: output image file.
      curves: ``{label: [N // 2 + 1] FSC values}``, a list of ``(label, values)``, one array, or a
        :func:`compare_maps` result (which may also stand for values), all on the same grid.
      box: ``N``; pixel_size: A/voxel (taken from results when not given).
      title: optional title; styles: optional ``{label: dict of Line2D keywords}``.
    """
    # pylint: disable=import-outside-toplevel
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    curves, box, pixel_size = _curves_and_grid(curves, box, pixel_size,
                                               ("FSC", "before alignment"))
    styles = dict({"before alignment": {"color": "gray", "linestyle": ":"}}, **(styles or {}))
    fig = Figure(figsize=(6.4, 4.4), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    nyquist = 1.0 / (2.0 * pixel_size)
    for label, c in curves.items():
        c = np.asarray(c, np.float64)
        freq = np.arange(len(c)) / (box * pixel_size)
        ax.plot(freq, c, label=label, **styles.get(label, {}))
    for t, color in zip(thresholds, ("tab:red", "tab:purple", "tab:gray")):
        ax.axhline(t, color=color, linestyle="--", linewidth=0.9, label=f"FSC = {t:g}")
    ax.axhline(0.0, color="black", linewidth=0.5)
    ax.set_xlim(0.0, nyquist)
    ax.set_ylim(min(-0.1, ax.get_ylim()[0]), 1.05)
    ax.set_xlabel("spatial frequency (1/\u00c5)")
    ax.set_ylabel("Fourier shell correlation")
    ax.grid(alpha=0.3)

    # Top axis: the same frequencies, labelled with the resolution in A.
    top = ax.twiny()
    top.set_xlim(ax.get_xlim())
    ticks = [r for r in (200, 100, 50, 30, 20, 15, 10, 8, 6, 5, 4, 3, 2.5, 2, 1.5, 1)
             if 0.06 * nyquist <= 1.0 / r <= nyquist * 1.0001]
    top.set_xticks([1.0 / r for r in ticks])
    top.set_xticklabels([f"{r:g}" for r in ticks])
    top.set_xlabel("resolution (\u00c5)")
    if title:
        ax.set_title(title, fontsize=10, pad=28)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fmt = str(path).rsplit(".", 1)[-1].lower() if "." in str(path) else "png"
    with atomic_output(path, suffix=f".{fmt}") as tmp:
        fig.savefig(tmp, format=fmt)

