"""Several maps against several references (e.g. sampled conformations against ground-truth
frames): the resolution of every pair, each reference's best map (recall) and each map's best
reference (precision), as CryoBench scores heterogeneous reconstructions.

A map and a reference *match* when their FSC resolution at ``fsc_threshold`` is at most
``threshold_A``; precision is the fraction of maps that match their best reference, recall the
fraction of references that match their best map.
"""

import csv
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from tfcryogan.evaluation import report
from tfcryogan.io._files import atomic_output


@dataclass
class SetComparison:
    """What :func:`compare_sets` found (plain values; :meth:`record` is JSON-ready).

    Attributes:
      resolution_A: ``[n_maps, n_refs]`` resolution (A) at ``fsc_threshold`` of every pair.
      map_names, ref_names: labels (unique).
      best_map: ``[n_refs]`` index of each reference's best map; best_ref: ``[n_maps]``.
      per_reference, per_map: one dict per reference / map: its best match, the resolution (A),
        the fraction of Nyquist and, with a threshold, ``matched``.
      precision, recall: fractions, or None without ``threshold_A``.
      curves: ``{(i, j): FSC curve}``; pairs: one dict per pair (resolutions, alignment).
    """

    resolution_A: np.ndarray
    map_names: list
    ref_names: list
    best_map: np.ndarray
    best_ref: np.ndarray
    per_reference: list
    per_map: list
    box: int
    pixel_size: float
    fsc_threshold: float
    threshold_A: Optional[float] = None
    precision: Optional[float] = None
    recall: Optional[float] = None
    curves: dict = field(default_factory=dict)
    pairs: list = field(default_factory=list)

    def best_curves(self):
        """``{"reference <- its best map": FSC curve}``, one per reference."""
        return {f"{self.ref_names[j]} <- {self.map_names[self.best_map[j]]}":
                self.curves[(int(self.best_map[j]), j)] for j in range(len(self.ref_names))}

    def record(self):
        """A JSON-ready dict of the comparison (no curves)."""
        return {"box": self.box, "pixel_size_A": self.pixel_size,
                "nyquist_A": 2.0 * self.pixel_size, "fsc_threshold": self.fsc_threshold,
                "threshold_A": self.threshold_A,
                "resolution_matrix_A": [[float(x) for x in row] for row in self.resolution_A],
                "per_reference": self.per_reference, "per_map": self.per_map,
                "precision": self.precision, "recall": self.recall, "pairs": self.pairs}


def _unique(names):
    if len(set(names)) == len(names):
        return list(names)
    return [f"{i + 1}:{n}" for i, n in enumerate(names)]


def compare_sets(maps, references, pixel_size, map_names=None, ref_names=None,
                 fsc_threshold=0.5, threshold_A=None, align=True, mask_radius_A=None,
                 mask_edge_A=None, align_options=None, progress=None):
    """Compare every map with every reference (:func:`~tfcryogan.evaluation.report.compare_maps`).

    Args:
      maps, references: lists of ``[N, N, N]`` float32 maps on one grid of ``pixel_size`` A.
      map_names, ref_names: labels (default ``map_1..``, ``reference_1..``).
      fsc_threshold: FSC value that defines a pair's resolution.
      threshold_A: a pair matches at a resolution of at most this (A); None: no matching.
      align: superpose each map on each reference (rotation, hand, shift) first; False compares
        them as they are (maps already in the references' frame).
      mask_radius_A, mask_edge_A, align_options: as for ``compare_maps``.
      progress: optional callable ``progress(i, j, resolution_A, result)`` after each pair.
    Returns:
      :class:`SetComparison`.
    """
    map_names = _unique(map_names or [f"map_{i + 1}" for i in range(len(maps))])
    ref_names = _unique(ref_names or [f"reference_{j + 1}" for j in range(len(references))])
    box = int(np.shape(references[0])[0])
    key = f"{fsc_threshold:g}"
    thresholds = tuple(sorted({fsc_threshold, *report.THRESHOLDS}, reverse=True))
    res = np.zeros((len(maps), len(references)))
    curves, pairs = {}, []
    for i, volume in enumerate(maps):
        for j, reference in enumerate(references):
            result = report.compare_maps(volume, reference, pixel_size, align=align,
                                         mask_radius_A=mask_radius_A, mask_edge_A=mask_edge_A,
                                         align_options=align_options)
            result.pop("aligned_volume")
            curve = result["fsc"]["fsc"]
            resolutions = report.resolutions(curve, box, pixel_size, thresholds)
            res[i, j] = resolutions[key]["angstrom"]
            curves[(i, j)] = curve
            pairs.append({"map": map_names[i], "reference": ref_names[j],
                          "resolution": resolutions, "alignment": result["alignment"]})
            if progress:
                progress(i, j, res[i, j], result)
    best_map, best_ref = res.argmin(axis=0), res.argmin(axis=1)
    nyquist = 2.0 * pixel_size
    per_ref = [{"name": ref_names[j], "best_map": map_names[best_map[j]],
                "resolution_A": float(res[best_map[j], j]),
                "fraction_of_nyquist": nyquist / float(res[best_map[j], j])}
               for j in range(len(references))]
    per_map = [{"name": map_names[i], "best_reference": ref_names[best_ref[i]],
                "resolution_A": float(res[i, best_ref[i]]),
                "fraction_of_nyquist": nyquist / float(res[i, best_ref[i]])}
               for i in range(len(maps))]
    precision = recall = None
    if threshold_A is not None:
        for row in per_ref + per_map:
            row["matched"] = bool(row["resolution_A"] <= threshold_A)
        recall = float(np.mean([r["matched"] for r in per_ref]))
        precision = float(np.mean([m["matched"] for m in per_map]))
    return SetComparison(res, map_names, ref_names, best_map, best_ref, per_ref, per_map, box,
                         float(pixel_size), float(fsc_threshold), threshold_A, precision, recall,
                         curves, pairs)


def write_matrix_csv(path, comparison):
    """``path``: the resolution matrix, one row per map, one column per reference (atomic)."""
    with atomic_output(path, suffix=".csv") as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["map", *comparison.ref_names])
            for name, row in zip(comparison.map_names, comparison.resolution_A):
                writer.writerow([name, *(f"{x:.4g}" for x in row)])


def write_precision_recall_csv(path, comparison):
    """``path``: each reference's best map and each map's best reference, with the resolution,
    the fraction of Nyquist and whether they match (atomic)."""
    with atomic_output(path, suffix=".csv") as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["kind", "name", "best_match", "resolution_A", "fraction_of_nyquist",
                             "matched"])
            for kind, rows, best in (("reference", comparison.per_reference, "best_map"),
                                     ("map", comparison.per_map, "best_reference")):
                for row in rows:
                    writer.writerow([kind, row["name"], row[best], f"{row['resolution_A']:.4g}",
                                     f"{row['fraction_of_nyquist']:.4g}", row.get("matched", "")])


def plot_precision_recall(path, comparison):
    """A heat map of the resolution matrix, and bars of the best resolution per reference
    (recall) and per map (precision) with the match threshold (PNG, atomic)."""
    # pylint: disable=import-outside-toplevel
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    c = comparison
    res = c.resolution_A
    fig = Figure(figsize=(11, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax0, ax1, ax2 = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.3, 1, 1]})
    image = ax0.imshow(res, cmap="viridis_r", aspect="auto")
    fig.colorbar(image, ax=ax0, label=f"resolution at FSC {c.fsc_threshold:g} (\u00c5)")
    ax0.set_xticks(range(len(c.ref_names)))
    ax0.set_xticklabels(c.ref_names, rotation=60, ha="right", fontsize=7)
    ax0.set_yticks(range(len(c.map_names)))
    ax0.set_yticklabels(c.map_names, fontsize=7)
    ax0.set_xlabel("reference")
    ax0.set_ylabel("map")
    ax0.set_title("resolution per pair (red: best map of each reference)", fontsize=9)
    if res.size <= 144:
        for i in range(res.shape[0]):
            for j in range(res.shape[1]):
                best = c.best_map[j] == i
                ax0.text(j, i, f"{res[i, j]:.3g}", ha="center", va="center", fontsize=7,
                         color="red" if best else "white", fontweight="bold" if best else None)
    for ax, values, names, title, share, label in (
            (ax1, [res[c.best_map[j], j] for j in range(len(c.ref_names))], c.ref_names,
             "recall: best map per reference", c.recall, "recall"),
            (ax2, [res[i, c.best_ref[i]] for i in range(len(c.map_names))], c.map_names,
             "precision: best reference per map", c.precision, "precision")):
        ax.bar(range(len(values)), values, color="tab:blue")
        ax.set_xticks(range(len(values)))
        ax.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("resolution (\u00c5)")
        if c.threshold_A is not None:
            ax.axhline(c.threshold_A, color="tab:red", linestyle="--",
                       label=f"threshold {c.threshold_A:g} \u00c5")
            ax.legend(fontsize=7, loc="best")
            title = f"{title}\n{label} = {share:.2f}"
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_output(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
