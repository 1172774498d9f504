"""``bin/sample``: an exported generator -> sampled volumes, traversals and montages.

Only the SavedModel is used (``tf.saved_model.load``), as any downstream analysis would.
"""

import os

import numpy as np
import tensorflow as tf

from tfcryogan import io
from tfcryogan.errors import InputError
from tfcryogan.evaluation.montage import slice_montage


def load_model(path):
    if not os.path.exists(os.path.join(path, "saved_model.pb")):
        raise InputError(f"{path}: not a SavedModel version folder (no saved_model.pb); give "
                         "export/NAME/<version>")
    return tf.saved_model.load(path)


def principal_directions(volumes, k):
    """Mean and the top ``k`` principal components (unit vectors, with their standard deviations)
    of ``[n, N, N, N]`` volumes."""
    flat = volumes.reshape(volumes.shape[0], -1).astype(np.float64)
    mean = flat.mean(axis=0)
    _, s, vt = np.linalg.svd(flat - mean, full_matrices=False)
    sd = s / np.sqrt(max(flat.shape[0] - 1, 1))
    return mean.reshape(volumes.shape[1:]), vt[:k].reshape((-1,) + volumes.shape[1:]), sd[:k]


def write_series(folder, volumes, voxel_size, labels, title):
    paths = []
    for i, vol in enumerate(volumes):
        path = os.path.join(folder, f"frame_{i:03d}.mrc")
        io.write_volume(path, vol, voxel_size)
        paths.append(path)
    slice_montage(os.path.join(folder, "montage.png"), volumes, labels, title)
    return paths


def run(f):
    if f.n < 1:
        raise InputError(f"--n={f.n}: must be >= 1")
    model = load_model(os.path.abspath(f.model))
    voxel = float(model.voxel_size.numpy())
    d = int(model.latent_dim.numpy())
    out = os.path.abspath(f.output_dir)
    sampled = model.sample(n=tf.constant(f.n, tf.int32), seed=tf.constant(f.seed, tf.int64))
    volumes = sampled["volume"].numpy()
    z = sampled["z"].numpy()
    written = []
    for i, vol in enumerate(volumes):
        path = os.path.join(out, f"sample_{i:03d}.mrc")
        io.write_volume(path, vol, voxel)
        written.append(path)
    np.savetxt(os.path.join(out, "z.txt"), z, fmt="%.6f", header=f"latent codes, {d} columns")
    labels = [f"z{i}" for i in range(len(volumes))]
    slice_montage(os.path.join(out, "samples.png"), volumes[:16], labels[:16],
                  f"{len(volumes)} samples (first 16 shown)")
    lines = [f"wrote {len(volumes)} volumes ({volumes.shape[1]} px, {voxel:g} A/voxel) to {out}/"
             "sample_*.mrc, z.txt and samples.png"]
    if f.traverse:
        steps = np.linspace(-f.traverse_range, f.traverse_range, f.traverse_steps, dtype=np.float32)
        for dim in range(d):
            codes = np.zeros((len(steps), d), np.float32)
            codes[:, dim] = steps
            series = model.generate(z=tf.constant(codes))["volume"].numpy()
            folder = os.path.join(out, f"traverse_z{dim}")
            write_series(folder, series, voxel, [f"{t:+.1f}" for t in steps],
                         f"latent direction {dim}")
            lines.append(f"  {folder}/frame_*.mrc + montage.png (z{dim} from "
                         f"{steps[0]:+.1f} to {steps[-1]:+.1f})")
        if d > 3 or d == 0:
            pool = model.sample(n=tf.constant(max(f.n, 64), tf.int32),
                                seed=tf.constant(f.seed + 1, tf.int64))["volume"].numpy()
            mean, pcs, sd = principal_directions(pool, 3)
            for k in range(len(pcs)):
                series = np.stack([mean + t * sd[k] * pcs[k] for t in steps]).astype(np.float32)
                folder = os.path.join(out, f"traverse_pc{k + 1}")
                write_series(folder, series, voxel, [f"{t:+.1f} sd" for t in steps],
                             f"principal component {k + 1}")
                lines.append(f"  {folder}/frame_*.mrc + montage.png")
    print("\n".join(lines), flush=True)
