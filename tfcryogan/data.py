"""Training input: a particle set as a ``tf.data`` pipeline.

Images stay on disk (:class:`~tfcryogan.io.image_source.ImageSource` reads them by file offset):
each step reads only its own batch, so peak memory does not grow with the number of particles
(the metadata table, tens of bytes per particle, is what stays in RAM). Every draw comes from a
NumPy generator seeded with ``(seed, step)``: a resumed run continues with exactly the batches it
would have seen, and every worker of a multi-worker run draws the same global batch and reads only
its own slice of it.
"""

import dataclasses
from typing import Optional

import numpy as np
import tensorflow as tf

from tfcryogan import io
from tfcryogan.errors import InputError
from tfcryogan.io.image_source import ImageSource
from tfcryogan.physics import fourier, noise as noise_lib
from tfcryogan.progress import Progress


@dataclasses.dataclass
class ParticleData:
    """A particle set prepared for training at ``box`` pixels.

    Attributes:
      path: the STAR or .cs file.
      table: its :class:`~tfcryogan.io.ParticleTable` (with CTF).
      source: the images (:class:`~tfcryogan.io.image_source.ImageSource`, read on demand).
      box_in, pixel_size_in: the images' own size (px) and pixel size (A).
      box, pixel_size: the training grid (Fourier-cropped from the input: same field of view).
      invert: multiply images by -1 (raw micrograph contrast, protein dark -> bright).
    """

    path: str
    table: io.ParticleTable
    source: ImageSource
    box_in: int
    pixel_size_in: float
    box: int
    pixel_size: float
    invert: bool = False

    def __len__(self):
        return len(self.table)

    def ctf_rows(self):
        """``[n, 9]`` float32 CTF rows of the particles (``CTF_COLUMNS``)."""
        return self.table.ctf_array()

    def read(self, particles):
        """Images of ``particles`` (0-based rows) at the input size, float32 ``[k, N_in, N_in]``."""
        images = self.source.read(particles)
        return -images if self.invert else images

    def read_on_grid(self, particles):
        """Images of ``particles`` on the training grid (``[k, box, box]`` float32 tensor)."""
        return fourier.resample_images(self.read(particles), self.pixel_size_in,
                                       self.pixel_size, self.box)

    def subset(self, rows):
        """The particles at ``rows`` (0-based) as a :class:`ParticleData` of their own."""
        table = self.table.subset(rows)
        return dataclasses.replace(self, table=table, source=ImageSource(table))


@dataclasses.dataclass
class HalfSplit:
    """The two gold-standard halves of a particle set.

    ``subset``: ``[n]`` int, 1 or 2 for each particle (RELION's ``rlnRandomSubset``);
    ``origin``: where it came from (``"rlnRandomSubset"`` of the input, or ``"random, seed S"``).
    """

    subset: np.ndarray
    origin: str

    def rows(self, half):
        """0-based rows of half ``half`` (1 or 2)."""
        return np.flatnonzero(self.subset == half)

    def record(self):
        """JSON-ready summary."""
        return {"origin": self.origin, "half1": int(np.sum(self.subset == 1)),
                "half2": int(np.sum(self.subset == 2))}


def split_halves(data, seed):
    """RELION's gold-standard split of ``data``'s particles: the ``rlnRandomSubset`` column when
    the STAR file has one (values 1 and 2), otherwise a random half of the particles (the same
    for the same seed and particle count: ``numpy`` permutation of ``(seed, 2)``).

    Each half must hold at least one particle; a column with other values than 1 and 2 is an
    :class:`InputError`."""
    given = data.table.random_subset
    n = len(data)
    if given is not None:
        values = set(np.unique(given).tolist())
        if not values <= {1, 2} or len(values) < 2:
            raise InputError(f"{data.path}: rlnRandomSubset holds {sorted(values)}; gold-standard "
                             "halves need the values 1 and 2 (or no such column)")
        return HalfSplit(np.asarray(given, np.int64), "rlnRandomSubset")
    if n < 2:
        raise InputError(f"{data.path}: {n} particle; two halves need at least 2 (or train "
                         "one map with --nohalf_maps)")
    subset = np.ones(n, np.int64)
    subset[np.random.default_rng([seed, 2]).permutation(n)[n // 2:]] = 2
    return HalfSplit(subset, f"random, seed {seed}")


def _finite_only(table, path, skip, log):
    """``table`` without the particles whose image holds NaN or inf values, when ``skip``;
    otherwise an :class:`InputError` naming the first such image. A long check shows progress."""
    source = ImageSource(table)
    bar = None

    def progress(done, total):
        nonlocal bar
        if total >= 100000:
            bar = bar or Progress(total, "checking images", unit="img")
            bar.update(done)

    bad = source.find_nonfinite(progress)
    if bar:
        bar.close()
    if not bad.size:
        return table, source
    first = int(bad[0])
    where = f"{table.image_path[first]}: image {int(table.image_index[first]) + 1}"
    if not skip:
        more = f" (and {bad.size - 1} more)" if bad.size > 1 else ""
        raise InputError(f"{where} holds NaN or inf values (particle {first + 1} of {path}"
                         f"{more}); remove it, or pass --skip_nonfinite to train without such "
                         "images")
    (log or (lambda line: None))(
        f"skipping {bad.size} of {len(table)} particles whose images hold NaN or inf values "
        f"(the first: {where})")
    if bad.size == len(table):
        raise InputError(f"{path}: every image holds NaN or inf values")
    keep = np.ones(len(table), bool)
    keep[bad] = False
    table = table.subset(keep)
    return table, ImageSource(table)


def load_particles(path, box=None, invert_contrast=False, skip_nonfinite=False, log=None):
    """Read a particle set (RELION 3.0/3.1 STAR or cryoSPARC .cs) for training.

    Every image is checked for NaN and inf values first (one sequential read of the stacks): a
    single bad image would otherwise end training with non-finite losses.

    Args:
      path: metadata file; its images must exist and share one box and pixel size.
      box: training box in pixels (Fourier cropping of the images; default: their own box).
      invert_contrast: images have protein dark (raw micrographs): invert them.
      skip_nonfinite: drop particles with NaN or inf values (and say so through ``log``)
        instead of raising an :class:`InputError` naming the first one.
      log: callable for a line to the user.
    Returns:
      :class:`ParticleData`.
    """
    table = io.read_particles(path, require_ctf=True, check_images=True)
    if len(set(np.round(table.pixel_size, 5))) != 1:
        raise InputError(f"{path}: particles have different pixel sizes "
                         f"({sorted(set(table.pixel_size))[:3]}...); train on one at a time")
    if len(set(table.box)) != 1:
        raise InputError(f"{path}: particles have different boxes ({sorted(set(table.box))}); "
                         "re-extract them at one box")
    table, source = _finite_only(table, path, skip_nonfinite, log)
    box_in = source.box
    pixel_in = float(table.pixel_size[0])
    box = int(box or box_in)
    if box > box_in:
        raise InputError(f"--box={box}: larger than the particles' box {box_in} ({path})")
    if box < 8:
        raise InputError(f"--box={box}: must be at least 8")
    return ParticleData(path=str(path), table=table, source=source, box_in=box_in,
                        pixel_size_in=pixel_in, box=box, pixel_size=pixel_in * box_in / box,
                        invert=bool(invert_contrast))


def estimate_noise_psd(data, count=500, seed=0):
    """Radially averaged power spectrum of the background of ``data``'s images on its grid.

    Reads ``count`` random images, resamples them to the grid, normalises each, and averages the
    periodogram outside a disc of 0.4 box (``physics.noise.estimate_radial_psd``).
    Returns ``[radial_bins(box)]`` float32 (the shape of coloured noise; its level is learned or
    set by the SNR).
    """
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(data), min(count, len(data)), replace=False))
    images = fourier.normalize_images(data.read_on_grid(chosen))
    return noise_lib.estimate_radial_psd(images).numpy()


@dataclasses.dataclass
class BatchPlan:
    """What one step reads: ``global_batch`` images for each of ``n_critic`` critic updates, and
    ``n_critic + 1`` CTF rows (and noise patches) per image for the simulated batches.

    The global batch is drawn identically by every worker from ``(seed, step)``; replica ``r`` of
    ``num_replicas`` (numbered across workers) takes rows ``[r * b, (r + 1) * b)`` with
    ``b = global_batch / num_replicas``, the same slice the model takes of its own random draws.
    This worker hosts replicas ``first_replica .. first_replica + local_replicas - 1``.
    """

    global_batch: int
    n_critic: int
    seed: int
    num_replicas: int = 1
    first_replica: int = 0
    local_replicas: int = 1

    @property
    def replica_batch(self):
        return self.global_batch // self.num_replicas

    def draws(self, step, n_particles):
        """``(real [g, n_critic], sim [g, n_critic + 1])`` particle numbers for ``step`` (global
        batch, drawn with replacement)."""
        rng = np.random.default_rng([self.seed, int(step)])
        real = rng.integers(0, n_particles, (self.global_batch, self.n_critic))
        sim = rng.integers(0, n_particles, (self.global_batch, self.n_critic + 1))
        return real, sim

    def rows_of(self, rows, replica):
        """Replica ``replica``'s slice of a global-batch array."""
        b = self.replica_batch
        return rows[replica * b:(replica + 1) * b]


def make_dataset(data, plan, start_step=0, patches: Optional[ParticleData] = None):
    """The training input pipeline of this worker, from ``start_step`` on.

    Element ``e`` is step ``start_step + e // L`` for local replica ``e % L`` (``L =
    plan.local_replicas``), the order in which ``tf.distribute`` hands elements of a per-worker
    dataset to the worker's replicas (``distribute_datasets_from_function``).

    Args:
      data: :class:`ParticleData`.
      plan: :class:`BatchPlan`.
      start_step: first step (a resumed run starts where it stopped).
      patches: real noise patches (``--noise=patches``): a second :class:`ParticleData`; when it has
        as many images as ``data``, each simulated image takes the patch of the particle whose CTF
        it uses, else random patches.
    Returns:
      ``tf.data.Dataset`` of dicts: ``real`` ``[b, n_critic, N, N]`` float32 (per-image normalised),
      ``ctf`` ``[b, n_critic + 1, 9]`` (CTF rows for the simulated images) and optionally
      ``patches`` ``[b, n_critic + 1, N, N]``, with
      ``b = plan.replica_batch``.
    """
    if plan.global_batch % plan.num_replicas:
        raise InputError(f"--batch_size={plan.global_batch} must be divisible by the number of "
                         f"replicas ({plan.num_replicas})")
    ctf_table = data.ctf_rows()
    n = len(data)
    b, c, box_in = plan.replica_batch, plan.n_critic, data.box_in
    local = plan.local_replicas
    paired = patches is not None and len(patches) == n

    def read(element):
        step, replica = divmod(int(element), local)
        replica += plan.first_replica
        real_rows, sim_rows = plan.draws(step, n)
        real_rows, sim_rows = plan.rows_of(real_rows, replica), plan.rows_of(sim_rows, replica)
        images = data.read(real_rows.reshape(-1)).reshape(b, c, box_in, box_in)
        out = [images, ctf_table[sim_rows]]
        if patches is not None:
            rows = sim_rows if paired else plan.rows_of(np.random.default_rng(
                [plan.seed, step, 7]).integers(0, len(patches), (plan.global_batch, c + 1)),
                replica)
            rows = rows.reshape(-1)
            out.append(patches.read(rows).reshape(b, c + 1, patches.box_in, patches.box_in))
        return tuple(np.asarray(x, np.float32) for x in out)

    def to_training_grid(images, source):
        flat = tf.reshape(images, [-1, source.box_in, source.box_in])
        flat = fourier.resample_images(flat, source.pixel_size_in, data.pixel_size, data.box)
        return tf.reshape(fourier.normalize_images(flat), [b, -1, data.box, data.box])

    def load(element):
        types = [tf.float32] * 2 + ([tf.float32] if patches is not None else [])
        arrays = tf.numpy_function(read, [element], types, stateful=False)
        batch = {"real": to_training_grid(arrays[0], data),
                 "ctf": tf.ensure_shape(arrays[1], [b, c + 1, 9])}
        if patches is not None:
            batch["patches"] = to_training_grid(arrays[2], patches)
        batch["real"] = tf.ensure_shape(batch["real"], [b, c, data.box, data.box])
        return batch

    dataset = tf.data.Dataset.range(int(start_step) * local, 2 ** 62).map(
        load, num_parallel_calls=2, deterministic=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.with_options(options).prefetch(2)


def load_noise_images(path, box, pixel_size, log=None):
    """Pure-noise images (``--noise_from``) prepared for a ``box`` grid of ``pixel_size`` A.

    Args:
      path: a STAR/.cs file (CTF not needed) or an ``.mrcs`` stack with its pixel size in the
        header. Its images must be finite and cover the grid's field of view.
      box, pixel_size: the grid the images are resampled to (:meth:`ParticleData.read_on_grid`).
    Returns:
      :class:`ParticleData`.
    """
    path = str(path)
    table = io.read_image_set(path, check_images=True)
    table, source = _finite_only(table, path, False, log)
    pixel_in = float(table.pixel_size[0])
    if source.box * pixel_in < box * pixel_size * (1 - 1e-3):
        raise InputError(f"{path}: noise images cover {source.box * pixel_in:.1f} A, less than "
                         f"the {box * pixel_size:.1f} A of the {box}-pixel box")
    return ParticleData(path=path, table=table, source=source, box_in=source.box,
                        pixel_size_in=pixel_in, box=int(box), pixel_size=float(pixel_size))


def on_training_grid(volume, voxel_size, like, path):
    """A map (``--ground_truth``, ``--initial_volume``) on the training grid of ``like``
    (:func:`~tfcryogan.physics.fourier.resample_volume`).

    Args:
      volume: ``[M, M, M]`` float32; voxel_size: its A/voxel (None when the header says 0: then
        the map must be on the particles' own grid or on the training grid).
      like: the training :class:`ParticleData`; path: the map's file, for errors.
    Returns:
      ``[box, box, box]`` float32 numpy.
    """
    if voxel_size is None:
        if volume.shape[0] == like.box:
            voxel_size = like.pixel_size
        elif volume.shape[0] == like.box_in:
            voxel_size = like.pixel_size_in
        else:
            raise InputError(f"{path}: the header has no voxel size and the box "
                             f"{volume.shape[0]} matches neither the particles nor the training "
                             "box; set the voxel size in the header")
    return fourier.resample_volume(volume, voxel_size, like.pixel_size, like.box).numpy()
