"""``bin/evaluate``: compare maps with ground-truth references (alignment, FSC, resolution).

Two modes, chosen by the inputs:

- one map (``--map``) and one reference (``--reference`` or a single ``--references``): align, FSC,
  resolutions at FSC 0.5 and 0.143; writes ``fsc.csv``, ``fsc.png``, ``aligned.mrc`` and
  ``evaluation.json`` in ``--output_dir``;
- several maps and/or several references (``--map`` and ``--references`` as comma-separated lists or
  folders): every map is compared with every reference (resolution at ``--fsc_threshold``); for each
  reference the best map (recall) and for each map the best reference (precision), with
  ``--threshold_A`` the fractions that match; writes ``resolution_matrix.csv``,
  ``precision_recall.csv``, ``precision_recall.png``, ``fsc.csv``, ``fsc.png`` and
  ``evaluation.json``.

All maps are put on the grid of the (first) reference: a map with another voxel size is resampled
(Fourier cropping/padding, then centre crop/pad to the reference box) and a note is printed; maps
with the reference's voxel size but another box are refused.

Flags and input files are checked (headers and data read with :mod:`tfcryogan.io`, which needs no
TensorFlow) before TensorFlow is imported, so that bad input fails in a fraction of a second.
"""

import json
import math
import os
import re
import sys
from dataclasses import dataclass, field

import numpy as np

from tfcryogan import cli, io
from tfcryogan.errors import InputError
from tfcryogan.io._files import atomic_output

reports = None  # tfcryogan.evaluation.report, imported with TensorFlow once the inputs are checked


def _import_evaluation():
    """Import TensorFlow (quietly) and the evaluation modules; returns the report module."""
    global reports  # pylint: disable=global-statement
    if reports is None:
        cli.import_tensorflow_quietly()
        from tfcryogan.evaluation import report  # pylint: disable=import-outside-toplevel
        reports = report
    return reports


@dataclass
class Grid:
    """The comparison grid (the reference's): box and voxel size in A."""

    box: int
    pixel_size: float


@dataclass
class Loaded:
    """A map read from ``path`` and put on the comparison grid; ``notes`` say what was done."""

    path: str
    volume: np.ndarray
    notes: list = field(default_factory=list)
    voxel_size: float = None  # A, when it differs from the grid's: resample_onto() is needed

    @property
    def name(self):
        return os.path.splitext(os.path.basename(self.path))[0]


def _check_density(path, volume):
    if not np.ptp(volume) > 0:
        raise InputError(f"{path}: the map is constant (no density to compare)")


def load_reference(path, pixel_size=None):
    """Read the reference: ``(Loaded, Grid)``; ``pixel_size`` (A) overrides the header."""
    volume, voxel = io.read_volume(path)
    _check_density(path, volume)
    if pixel_size is not None:
        if not (math.isfinite(pixel_size) and pixel_size > 0):
            raise InputError(f"--pixel_size={pixel_size}: must be a positive number of A")
        voxel = float(pixel_size)
    if voxel is None:
        raise InputError(f"{path}: the header has no voxel size (0); give --pixel_size")
    return Loaded(os.path.abspath(path), volume), Grid(volume.shape[0], float(voxel))


def load_on_grid(path, grid, pixel_size=None, reference_path=None):
    """Read a map and put it on ``grid``: resampled when its voxel size differs, refused when only
    its box differs. ``pixel_size`` (A) overrides the header; a header without voxel size (0)
    takes the grid's."""
    volume, voxel = io.read_volume(path)
    _check_density(path, volume)
    loaded = Loaded(os.path.abspath(path), volume)
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


def resample_onto(loaded, grid):
    """Resample ``loaded`` onto ``grid`` if :func:`load_on_grid` found another voxel size (needs
    TensorFlow: call after :func:`_import_evaluation`)."""
    if loaded.voxel_size is None:
        return loaded
    from tfcryogan.evaluation.align import resample_to_grid  # pylint: disable=C0415
    n = loaded.volume.shape[0]
    resampled, actual = resample_to_grid(loaded.volume, loaded.voxel_size, grid.pixel_size,
                                         grid.box)
    loaded.notes.append(f"{loaded.path}: resampled from {n}^3 voxels of {loaded.voxel_size:g} A "
                        f"to the reference grid, {grid.box}^3 voxels of {actual:.4g} A (Fourier "
                        "cropping/padding, then centre crop/pad)")
    loaded.volume, loaded.voxel_size = resampled, None
    return loaded


def _json_ready(obj):
    """Replace non-finite floats (not valid JSON) by None, recursively."""
    if isinstance(obj, dict):
        return {k: _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path, record):
    """Write ``record`` as indented JSON, atomically."""
    with atomic_output(path, suffix=".json") as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            text = json.dumps(_json_ready(record), indent=1)
            # Lists of numbers on one line each: readable and short.
            text = re.sub(r"\[\s+([-+0-9.eE,\snul]*?)\s+\]",
                          lambda m: "[" + re.sub(r"\s+", " ", m.group(1)) + "]", text)
            handle.write(text + "\n")


def _resolution_line(res):
    return ", ".join(f"FSC {t}: {v['angstrom']:.2f} A ({v['fraction_of_nyquist']:.3f} Nyquist)"
                     for t, v in res.items())


def _alignment_line(a):
    e = a["euler_relion_deg"]
    hand = "mirrored (opposite hand)" if a["flipped"] else "same hand"
    shift = ", ".join(f"{s:.2f}" for s in a["shift_A"])
    return (f"rot {e['rot']:.1f}, tilt {e['tilt']:.1f}, psi {e['psi']:.1f} deg (RELION), {hand}, "
            f"shift ({shift}) A, correlation {a['correlation']:.3f}, {a['seconds']:.1f} s")


def _options(f):
    if f.n_rotations < 100:
        raise InputError(f"--n_rotations={f.n_rotations}: must be >= 100")
    if f.mask_radius_A is not None and not f.mask_radius_A > 0:
        raise InputError(f"--mask_radius_A={f.mask_radius_A}: must be > 0")
    if f.mask_edge_A is not None and not f.mask_edge_A >= 0:
        raise InputError(f"--mask_edge_A={f.mask_edge_A}: must be >= 0")
    return {"n_rotations": int(f.n_rotations)}


def run(f):
    """Run ``bin/evaluate`` with the parsed flags ``f``."""
    if not f.map:
        raise InputError("give the map to evaluate: --map=MAP.mrc")
    if f.reference and f.references:
        raise InputError("give either --reference or --references, not both")
    if not (f.reference or f.references):
        raise InputError("give the ground truth: --reference=REF.mrc (or --references=LIST_OR_DIR)")
    if os.path.exists(f.output_dir) and not os.path.isdir(f.output_dir):
        raise InputError(f"--output_dir={f.output_dir}: exists and is not a folder")
    map_paths = io.list_maps(f.map, "map")
    ref_paths = [f.reference] if f.reference else io.list_maps(f.references, "references")
    do_align = bool(f.align) and not f.no_align
    if len(map_paths) == 1 and len(ref_paths) == 1:
        run_single(f, map_paths[0], ref_paths[0], do_align)
    else:
        run_multi(f, map_paths, ref_paths, do_align)


def run_single(f, map_path, ref_path, do_align):
    """One map against one reference: ``fsc.csv``, ``fsc.png``, ``aligned.mrc``,
    ``evaluation.json``."""
    options = _options(f)
    reference, grid = load_reference(ref_path, f.pixel_size)
    loaded = load_on_grid(map_path, grid, f.pixel_size, ref_path)
    _import_evaluation()
    resample_onto(loaded, grid)
    out = sys.stdout
    out.write(f"map:       {loaded.path}\nreference: {reference.path} ({grid.box}^3 voxels, "
              f"{grid.pixel_size:g} A)\n")
    for note in loaded.notes:
        out.write(f"note: {note}\n")
    if do_align:
        out.write(f"aligning (rotation, hand, shift; {options['n_rotations']} rotations per "
                  "hand)...\n")
        out.flush()
    result = reports.compare_maps(loaded.volume, reference.volume, grid.pixel_size,
                                  align=do_align, mask_radius_A=f.mask_radius_A,
                                  mask_edge_A=f.mask_edge_A, align_options=options)
    aligned = result.pop("aligned_volume")
    paths = {k: os.path.join(f.output_dir, v) for k, v in
             (("fsc_csv", "fsc.csv"), ("fsc_png", "fsc.png"), ("aligned", "aligned.mrc"),
              ("json", "evaluation.json"))}
    curves = {"fsc": result["fsc"]["fsc"]}
    labels = {"aligned" if do_align else "as given": result["fsc"]["fsc"]}
    if do_align:
        curves["fsc_unaligned"] = result["fsc_unaligned"]["fsc"]
        labels["before alignment"] = result["fsc_unaligned"]["fsc"]
    reports.write_fsc_csv(paths["fsc_csv"], curves, grid.box, grid.pixel_size)
    reports.plot_fsc(paths["fsc_png"], labels, grid.box, grid.pixel_size,
                     title=f"{loaded.name} vs {reference.name}")
    io.write_volume(paths["aligned"], aligned, grid.pixel_size)
    record = dict(mode="single", map=loaded.path, reference=reference.path, notes=loaded.notes,
                  align=do_align, **result, outputs=paths)
    write_json(paths["json"], record)
    if do_align:
        out.write(f"alignment: {_alignment_line(result['alignment'])}\n")
    for t, v in result["resolution"].items():
        out.write(f"resolution at FSC {t}: {v['angstrom']:.2f} A "
                  f"({v['fraction_of_nyquist']:.3f} of Nyquist, {2 * grid.pixel_size:g} A)\n")
    if do_align:
        out.write(f"before alignment: {_resolution_line(result['resolution_unaligned'])}\n")
    out.write("wrote:\n" + "".join(f"  {p}\n" for p in paths.values()))


def _unique_names(items):
    names = [it.name for it in items]
    if len(set(names)) == len(names):
        return names
    return [f"{i + 1}:{n}" for i, n in enumerate(names)]


def run_multi(f, map_paths, ref_paths, do_align):
    """Every map against every reference; precision (per map) and recall (per reference)."""
    options = _options(f)
    if not 0 < f.fsc_threshold < 1:
        raise InputError(f"--fsc_threshold={f.fsc_threshold}: must be between 0 and 1")
    if f.threshold_A is not None and not f.threshold_A > 0:
        raise InputError(f"--threshold_A={f.threshold_A}: must be > 0")
    first, grid = load_reference(ref_paths[0], f.pixel_size)
    refs = [first] + [load_on_grid(p, grid, f.pixel_size, ref_paths[0]) for p in ref_paths[1:]]
    maps = [load_on_grid(p, grid, f.pixel_size, ref_paths[0]) for p in map_paths]
    _import_evaluation()
    for item in refs + maps:
        resample_onto(item, grid)
    map_names, ref_names = _unique_names(maps), _unique_names(refs)
    out = sys.stdout
    out.write(f"{len(maps)} maps x {len(refs)} references ({grid.box}^3 voxels, "
              f"{grid.pixel_size:g} A); resolution at FSC {f.fsc_threshold:g}\n")
    for item in refs + maps:
        for note in item.notes:
            out.write(f"note: {note}\n")
    key = f"{f.fsc_threshold:g}"
    thresholds = tuple(sorted({f.fsc_threshold, *reports.THRESHOLDS}, reverse=True))
    res = np.zeros((len(maps), len(refs)))
    pairs, curves = [], {}
    for i, m in enumerate(maps):
        for j, r in enumerate(refs):
            result = reports.compare_maps(m.volume, r.volume, grid.pixel_size, align=do_align,
                                          mask_radius_A=f.mask_radius_A,
                                          mask_edge_A=f.mask_edge_A, align_options=options)
            result.pop("aligned_volume")
            curve = result["fsc"]["fsc"]
            result["resolution"] = reports.resolutions(curve, grid.box, grid.pixel_size,
                                                       thresholds)
            res[i, j] = result["resolution"][key]["angstrom"]
            curves[(i, j)] = curve
            pair = {"map": m.path, "reference": r.path, "resolution": result["resolution"],
                    "alignment": result["alignment"]}
            pairs.append(pair)
            out.write(f"  {map_names[i]} vs {ref_names[j]}: {res[i, j]:.2f} A"
                      + (f" (correlation {result['alignment']['correlation']:.3f})"
                         if do_align else "") + "\n")
            out.flush()
    best_map = res.argmin(axis=0)  # per reference
    best_ref = res.argmin(axis=1)  # per map
    nyq = 2.0 * grid.pixel_size
    per_ref = [{"reference": refs[j].path, "name": ref_names[j], "best_map": maps[best_map[j]].path,
                "best_map_name": map_names[best_map[j]], "resolution_A": float(res[best_map[j], j]),
                "fraction_of_nyquist": nyq / float(res[best_map[j], j])}
               for j in range(len(refs))]
    per_map = [{"map": maps[i].path, "name": map_names[i], "best_reference": refs[best_ref[i]].path,
                "best_reference_name": ref_names[best_ref[i]],
                "resolution_A": float(res[i, best_ref[i]]),
                "fraction_of_nyquist": nyq / float(res[i, best_ref[i]])}
               for i in range(len(maps))]
    precision = recall = None
    if f.threshold_A is not None:
        for row in per_ref + per_map:
            row["matched"] = bool(row["resolution_A"] <= f.threshold_A)
        recall = float(np.mean([r["matched"] for r in per_ref]))
        precision = float(np.mean([m["matched"] for m in per_map]))

    d = f.output_dir
    paths = {k: os.path.join(d, v) for k, v in
             (("matrix_csv", "resolution_matrix.csv"), ("pr_csv", "precision_recall.csv"),
              ("pr_png", "precision_recall.png"), ("fsc_csv", "fsc.csv"), ("fsc_png", "fsc.png"),
              ("json", "evaluation.json"))}
    _write_matrix_csv(paths["matrix_csv"], res, map_names, ref_names)
    _write_pr_csv(paths["pr_csv"], per_map, per_ref)
    _plot_precision_recall(paths["pr_png"], res, map_names, ref_names, best_map, best_ref,
                           f.threshold_A, key, precision, recall)
    best_curves = {f"{ref_names[j]} <- {map_names[best_map[j]]}": curves[(best_map[j], j)]
                   for j in range(len(refs))}
    reports.write_fsc_csv(paths["fsc_csv"], best_curves, grid.box, grid.pixel_size)
    reports.plot_fsc(paths["fsc_png"], best_curves, grid.box, grid.pixel_size,
                     title="each reference with its best map")
    record = dict(mode="multi", maps=[m.path for m in maps], references=[r.path for r in refs],
                  notes=[n for it in refs + maps for n in it.notes], align=do_align,
                  box=grid.box, pixel_size_A=grid.pixel_size, nyquist_A=nyq,
                  fsc_threshold=f.fsc_threshold, threshold_A=f.threshold_A,
                  mask_radius_A=f.mask_radius_A,
                  resolution_matrix_A=[[float(x) for x in row] for row in res],
                  per_reference=per_ref, per_map=per_map, precision=precision, recall=recall,
                  pairs=pairs, outputs=paths)
    write_json(paths["json"], record)
    out.write("recall (each reference's best map):\n")
    for row in per_ref:
        out.write(f"  {row['name']}: {row['best_map_name']} at {row['resolution_A']:.2f} A"
                  + (f" ({'match' if row['matched'] else 'no match'})" if precision is not None
                     else "") + "\n")
    out.write("precision (each map's best reference):\n")
    for row in per_map:
        out.write(f"  {row['name']}: {row['best_reference_name']} at {row['resolution_A']:.2f} A"
                  + (f" ({'match' if row['matched'] else 'no match'})" if precision is not None
                     else "") + "\n")
    if precision is not None:
        out.write(f"precision {precision:.3f}, recall {recall:.3f} "
                  f"(match: resolution <= {f.threshold_A:g} A at FSC {key})\n")
    out.write("wrote:\n" + "".join(f"  {p}\n" for p in paths.values()))


def _write_matrix_csv(path, res, map_names, ref_names):
    import csv  # pylint: disable=import-outside-toplevel
    with atomic_output(path, suffix=".csv") as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["map", *ref_names])
            for name, row in zip(map_names, res):
                writer.writerow([name, *(f"{x:.4g}" for x in row)])


def _write_pr_csv(path, per_map, per_ref):
    import csv  # pylint: disable=import-outside-toplevel
    with atomic_output(path, suffix=".csv") as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["kind", "name", "best_match", "resolution_A", "fraction_of_nyquist",
                             "matched"])
            for row in per_ref:
                writer.writerow(["reference", row["name"], row["best_map_name"],
                                 f"{row['resolution_A']:.4g}", f"{row['fraction_of_nyquist']:.4g}",
                                 row.get("matched", "")])
            for row in per_map:
                writer.writerow(["map", row["name"], row["best_reference_name"],
                                 f"{row['resolution_A']:.4g}", f"{row['fraction_of_nyquist']:.4g}",
                                 row.get("matched", "")])


def _plot_precision_recall(path, res, map_names, ref_names, best_map, best_ref, threshold_a, key,
                           precision, recall):
    """Heat map of the resolution matrix, and bars of the best resolution per reference (recall)
    and per map (precision) with the match threshold."""
    # pylint: disable=import-outside-toplevel
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax0, ax1, ax2 = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.3, 1, 1]})
    image = ax0.imshow(res, cmap="viridis_r", aspect="auto")
    fig.colorbar(image, ax=ax0, label=f"resolution at FSC {key} (\u00c5)")
    ax0.set_xticks(range(len(ref_names)))
    ax0.set_xticklabels(ref_names, rotation=60, ha="right", fontsize=7)
    ax0.set_yticks(range(len(map_names)))
    ax0.set_yticklabels(map_names, fontsize=7)
    ax0.set_xlabel("reference")
    ax0.set_ylabel("map")
    ax0.set_title("resolution per pair (red: best map of each reference)", fontsize=9)
    if res.size <= 144:
        for i in range(res.shape[0]):
            for j in range(res.shape[1]):
                best = best_map[j] == i
                ax0.text(j, i, f"{res[i, j]:.3g}", ha="center", va="center", fontsize=7,
                         color="red" if best else "white", fontweight="bold" if best else None)
    for ax, values, names, title in (
            (ax1, [res[best_map[j], j] for j in range(len(ref_names))], ref_names,
             "recall: best map per reference"),
            (ax2, [res[i, best_ref[i]] for i in range(len(map_names))], map_names,
             "precision: best reference per map")):
        ax.bar(range(len(values)), values, color="tab:blue")
        ax.set_xticks(range(len(values)))
        ax.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("resolution (\u00c5)")
        if threshold_a is not None:
            ax.axhline(threshold_a, color="tab:red", linestyle="--",
                       label=f"threshold {threshold_a:g} \u00c5")
            ax.legend(fontsize=7, loc="best")
            share = recall if ax is ax1 else precision
            title = f"{title}\n{'recall' if ax is ax1 else 'precision'} = {share:.2f}"
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_output(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
