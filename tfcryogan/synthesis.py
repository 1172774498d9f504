"""Synthetic particle data sets: the job behind ``bin/simulate``.

Volumes (maps or an atomic model) and imaging parameters (random, or the rows of a STAR file) go
through :func:`tfcryogan.simulator.project` in fixed-size batches (one XLA-compiled function), noise is
added (``physics.noise``), and the images are streamed to a memory-mapped ``.mrcs`` while the next
batch is computed. The RELION 3.1 STAR file (optics block, true angles, origins, CTF, class) is
written after the stack is complete; both appear atomically.
"""

import concurrent.futures
import dataclasses
import os
from typing import Optional

import numpy as np
import tensorflow as tf

from tfcryogan import io
from tfcryogan.errors import InputError
from tfcryogan.physics import noise, projector, rotations
from tfcryogan import simulator
from tfcryogan.progress import Progress



@dataclasses.dataclass
class NoiseSpec:
    """What noise to add.

    ``kind``: ``none``, ``white`` (Gaussian), ``colored`` (Gaussian with the radially averaged power
    spectrum of the background of the images in ``source``) or ``patches`` (real noise images from
    ``source``, resampled to the output pixel size and box). ``snr_db``: the target SNR in dB,
    ``var(clean CTF-modulated images over the box) / var(noise)``. ``source``: a STAR file or an
    ``.mrcs`` stack (its header must give the pixel size). ``max_source_images``: how many source
    images are read for the spectrum.
    """

    kind: str = "white"
    snr_db: float = 0.0
    source: Optional[str] = None
    max_source_images: int = 1000


@dataclasses.dataclass
class CtfSpec:
    """Where CTFs come from when they are not given per particle.

    ``rows_from``: a STAR/.cs particle file or a CTFFIND-style table whose rows are drawn at random
    (with replacement). Otherwise defocus U is uniform in ``[defocus_min_a, defocus_max_a]``,
    ``|U - V|`` uniform in ``[0, astigmatism_a]``, the astigmatism angle uniform in [0, 180) degrees.
    ``voltage_kv``, ``cs_mm``, ``amplitude_contrast`` apply to drawn defocus values and to tables
    that do not give them; ``bfactor`` (A^2) and ``phase_shift`` (degrees) to drawn defocus values.
    ``enabled=False`` simulates without a CTF.
    """

    enabled: bool = True
    rows_from: Optional[str] = None
    defocus_min_a: float = 10000.0
    defocus_max_a: float = 25000.0
    astigmatism_a: float = 0.0
    voltage_kv: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.1
    bfactor: float = 0.0
    phase_shift: float = 0.0


def load_maps(paths, pixel_size=None):
    """Read maps that share one box and voxel size.

    Args:
      paths: map files.
      pixel_size: voxel size in A overriding the headers (needed when a header says 0).
    Returns:
      ``(volumes float32 [V, N, N, N], pixel_size A)``.
    """
    volumes, sizes = [], []
    for path in paths:
        vol, voxel = io.read_volume(path)
        if volumes and vol.shape != volumes[0].shape:
            raise InputError(f"{path}: box {vol.shape[0]} differs from {paths[0]} "
                             f"({volumes[0].shape[0]}); all maps need one box")
        volumes.append(vol)
        sizes.append(voxel)
    if pixel_size is None:
        known = [s for s in sizes if s]
        if not known:
            raise InputError(f"{paths[0]}: the header has no voxel size; give --pixel_size")
        for path, s in zip(paths, sizes):
            if s and abs(s - known[0]) > 1e-3 * known[0]:
                raise InputError(f"{path}: voxel size {s:g} A differs from {known[0]:g} A of the "
                                 "other maps; give --pixel_size to override")
        pixel_size = known[0]
    return np.stack(volumes), float(pixel_size)


def ctf_rows(spec, n, rng):
    """``[n, 9]`` float32 CTF rows (``CTF_COLUMNS``) drawn as ``spec`` says, or None (no CTF)."""
    if not spec.enabled:
        return None
    if spec.rows_from:
        table = io.read_ctf_table(spec.rows_from, spec.voltage_kv, spec.cs_mm,
                                  spec.amplitude_contrast)
        return table[rng.integers(0, table.shape[0], n)].astype(np.float32)
    if not 0 <= spec.defocus_min_a <= spec.defocus_max_a:
        raise InputError(f"--defocus_min_A={spec.defocus_min_a:g} and --defocus_max_A="
                         f"{spec.defocus_max_a:g}: need 0 <= min <= max")
    du = rng.uniform(spec.defocus_min_a, spec.defocus_max_a, n)
    dv = du - rng.uniform(0.0, spec.astigmatism_a, n)
    rows = np.zeros((n, 9), np.float32)
    rows[:, 0], rows[:, 1] = du, dv
    rows[:, 2] = rng.uniform(0.0, 180.0, n)
    rows[:, 3], rows[:, 4], rows[:, 5] = spec.voltage_kv, spec.cs_mm, spec.amplitude_contrast
    rows[:, 6], rows[:, 7], rows[:, 8] = spec.phase_shift, spec.bfactor, 1.0
    return rows


@dataclasses.dataclass
class Particles:
    """Imaging parameters of ``n`` particles to simulate (numpy, RELION units).

    ``angles`` ``[n, 3]`` (rot, tilt, psi, degrees), ``origins`` ``[n, 2]`` (A), ``ctf`` ``[n, 9]``
    or None, ``volume_index`` ``[n]`` int (which map; written as ``rlnClassNumber`` = index + 1).
    """

    angles: np.ndarray
    origins: np.ndarray
    ctf: Optional[np.ndarray]
    volume_index: np.ndarray

    def __len__(self):
        return self.angles.shape[0]


def class_probabilities(fractions, n_volumes):
    """``[n_volumes]`` probabilities from ``fractions`` (strings or numbers, one per map, >= 0,
    not all 0; normalised to sum 1); None: None (equal shares)."""
    if fractions is None:
        return None
    given = ",".join(str(x) for x in fractions)
    try:
        values = np.array([float(x) for x in fractions], np.float64)
    except ValueError:
        raise InputError(f"--class_fractions={given}: give numbers, e.g. 0.3,0.7") from None
    if len(values) != n_volumes:
        raise InputError(f"--class_fractions={given}: {len(values)} numbers for {n_volumes} "
                         f"map(s); give one per map")
    if not np.all(np.isfinite(values)) or values.min() < 0 or values.sum() <= 0:
        raise InputError(f"--class_fractions={given}: need numbers >= 0, not all 0")
    return values / values.sum()


def random_particles(n, seed, n_volumes, ctf_spec, shift_std_a, probabilities=None):
    """Uniform SO(3) poses, Gaussian origins (``shift_std_a`` A per axis), CTFs as ``ctf_spec``,
    and a map per particle, drawn with ``probabilities`` (``[n_volumes]``, summing to 1, from
    :func:`class_probabilities`; None: equal)."""
    if n < 1:
        raise InputError(f"--n_particles={n}: need at least 1")
    if shift_std_a < 0:
        raise InputError(f"--shift_std_A={shift_std_a:g}: must be >= 0")
    rng = np.random.default_rng(seed)
    matrices = rotations.random_rotations(n, tf.constant([seed, 1], tf.int64))
    rot, tilt, psi = rotations.matrix_to_euler(matrices)
    angles = np.stack([rot.numpy(), tilt.numpy(), psi.numpy()], axis=1).astype(np.float64)
    origins = rng.normal(0.0, shift_std_a, (n, 2)) if shift_std_a > 0 else np.zeros((n, 2))
    ctf = ctf_rows(ctf_spec, n, rng)
    index = (rng.integers(0, n_volumes, n) if probabilities is None
             else rng.choice(n_volumes, n, p=probabilities))
    return Particles(angles=angles, origins=origins, ctf=ctf, volume_index=index)


def particles_from_star(table, n_volumes, ctf_enabled=True):
    """The angles, origins, CTFs and classes of a particle table (``--poses_from``): one image per
    row, as ``relion_project --ang`` does. ``rlnClassNumber`` picks the map when several are given."""
    if not table.has_poses:
        raise InputError(f"{table.source}: no rlnAngleRot/rlnAngleTilt/rlnAnglePsi columns: "
                         "--poses_from needs poses")
    ctf = table.ctf_array() if (ctf_enabled and table.has_ctf) else None
    if n_volumes > 1:
        if table.class_number is None:
            raise InputError(f"{table.source}: several maps given but no rlnClassNumber column "
                             "to say which map each particle shows")
        index = table.class_number - 1
        if index.min() < 0 or index.max() >= n_volumes:
            raise InputError(f"{table.source}: rlnClassNumber must be in 1..{n_volumes} "
                             f"(one per map), found {index.min() + 1}..{index.max() + 1}")
    else:
        index = np.zeros(len(table), np.int64)
    return Particles(angles=np.stack([table.rot, table.tilt, table.psi], 1),
                     origins=np.stack([table.origin_x, table.origin_y], 1), ctf=ctf,
                     volume_index=index)


def noise_model(spec, box, pixel_size, seed):
    """The noise of ``spec`` for a ``box``/``pixel_size`` simulation.

    Returns ``(model, noise_images)``: the :class:`~tfcryogan.physics.noise.NoiseModel` and, for
    ``patches``, the noise images (:class:`~tfcryogan.data.ParticleData` on the output grid) to
    draw from; ``colored`` takes its spectrum from the images of ``spec.source``.
    """
    from tfcryogan import data as data_lib  # pylint: disable=import-outside-toplevel
    if spec.kind not in noise.NOISE_KINDS:
        raise InputError(f"--noise={spec.kind}: must be one of {', '.join(noise.NOISE_KINDS)}")
    if spec.kind in ("none", "white"):
        return noise.make_noise_model(spec.kind), None
    if not spec.source:
        raise InputError(f"--noise={spec.kind} needs --noise_from=STACK_OR_STAR")
    images = data_lib.load_noise_images(spec.source, box, pixel_size)
    if spec.kind == "colored":
        psd = data_lib.estimate_noise_psd(images, spec.max_source_images, seed + 7)
        return noise.ColoredNoise(psd), None
    return noise.PatchNoise(), images


def _batch_function(spectrum, box, pixel_size, with_ctf, model):
    """One compiled function: a fixed-size batch of parameters -> images with noise.

    ``(angles [B, 3], origins [B, 2], ctf [B, 9], volume_index [B], sigma, seed [2], patches)``:
    clean images come from one XLA program; the noise (``model``'s unit-variance draw scaled to
    ``sigma``) is drawn by TensorFlow's own multi-threaded kernels, which generate Gaussian numbers
    several times faster than XLA on CPU. ``sigma = 0`` gives clean images.
    """

    @tf.function(jit_compile=True, autograph=False)
    def clean_images(angles, origins, ctf, volume_index):
        matrices = rotations.euler_to_matrix(angles[:, 0], angles[:, 1], angles[:, 2])
        return simulator.project(spectrum, matrices, origins, ctf if with_ctf else None, box,
                                 pixel_size, volume_index)

    @tf.function(autograph=False)
    def images(angles, origins, ctf, volume_index, sigma, seed, patches):
        clean = clean_images(angles, origins, ctf, volume_index)
        if model.kind == "none":
            return clean
        return clean + sigma * model.sample(clean.shape, seed, patches)

    return images


def _padded(array, start, size):
    """Rows ``start .. start+size`` of ``array``, repeating the last row to fill a short batch."""
    chunk = array[start:start + size]
    if chunk.shape[0] < size:
        chunk = np.concatenate([chunk, np.repeat(chunk[-1:], size - chunk.shape[0], 0)])
    return chunk


def simulate(volumes, pixel_size, particles, noise_spec, output_star, seed=0, batch_size=256,
             quiet=False):
    """Simulate particle images and write ``output_star`` + the ``.mrcs`` beside it.

    Args:
      volumes: ``[V, N, N, N]`` float32 maps (``[z, y, x]``), ``pixel_size`` A/voxel.
      particles: :class:`Particles` (one image each).
      noise_spec: :class:`NoiseSpec`.
      output_star: path of the RELION 3.1 STAR to write; the stack is ``<stem>.mrcs``, and a
        ``<stem>.json`` records the simulation (maps, SNR, noise sigma, seed).
      seed: random seed (noise draws).
      batch_size: images per compiled batch.
    Returns:
      dict with ``star``, ``stack``, ``n``, ``sigma`` (noise standard deviation) and ``seconds``.
    """
    n = len(particles)
    box = int(volumes.shape[-1])
    batch_size = int(min(batch_size, max(n, 1)))
    stem = os.path.splitext(os.path.abspath(output_star))[0]
    stack_path = stem + ".mrcs"
    model, noise_images = noise_model(noise_spec, box, pixel_size, seed)
    spectrum = projector.volume_spectrum(volumes)
    with_ctf = particles.ctf is not None
    ctf = particles.ctf if with_ctf else np.zeros((n, 9), np.float32)
    make = _batch_function(spectrum, box, pixel_size, with_ctf, model)
    rng = np.random.default_rng(seed + 11)
    no_patches = np.zeros((batch_size, box, box), np.float32)

    def batch(start, sigma):
        k = min(batch_size, n - start)
        patches = no_patches
        if model.needs_patches:
            patches = np.zeros((batch_size, box, box), np.float32)
            patches[:k] = noise_images.read_on_grid(rng.integers(0, len(noise_images), k))
        images = make(_padded(particles.angles, start, batch_size).astype(np.float32),
                      _padded(particles.origins, start, batch_size).astype(np.float32),
                      _padded(ctf, start, batch_size).astype(np.float32),
                      _padded(particles.volume_index, start, batch_size).astype(np.int32),
                      np.float32(sigma), np.array([seed, 1000 + start // batch_size], np.int64),
                      patches)
        return images.numpy()[:k]

    sigma = 0.0
    if model.kind != "none":
        # The signal variance over the box (the SNR's definition), measured on the data set
        # itself: clean images of its first particles (at least 256 of them when there are).
        count = min(n, max(batch_size, 256))
        clean = np.concatenate([batch(s, 0.0) for s in range(0, count, batch_size)])
        sigma = float(noise.sigma_for_snr(float(noise.signal_variance(clean)),
                                          noise_spec.snr_db))
        if not np.isfinite(sigma) or sigma <= 0:
            raise InputError("the simulated images have no signal (an empty map?): cannot set "
                             f"--snr_db={noise_spec.snr_db:g}")

    progress = None if quiet else Progress(n, "simulate", unit="img")
    with io.StackWriter(stack_path, n, box, pixel_size) as writer, \
            concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pending = None
        for start in range(0, n, batch_size):
            images = batch(start, sigma)
            if pending is not None:
                pending.result()
            pending = pool.submit(writer.write, start, images)
            if progress:
                progress.update(min(start + batch_size, n))
        if pending is not None:
            pending.result()
    seconds = progress.close() if progress else 0.0
    _write_metadata(output_star, stack_path, particles, pixel_size, box)
    return {"star": os.path.abspath(output_star), "stack": stack_path, "n": n, "sigma": sigma,
            "seconds": seconds, "box": box, "pixel_size": pixel_size}


def _write_metadata(output_star, stack_path, particles, pixel_size, box):
    n = len(particles)
    kw = {}
    if particles.ctf is not None:
        kw = {name: particles.ctf[:, i] for i, name in enumerate(io.CTF_COLUMNS)}
    table = io.ParticleTable(
        image_path=[stack_path] * n, image_index=np.arange(n), pixel_size=pixel_size, box=box,
        rot=particles.angles[:, 0], tilt=particles.angles[:, 1], psi=particles.angles[:, 2],
        origin_x=particles.origins[:, 0], origin_y=particles.origins[:, 1],
        class_number=particles.volume_index + 1, source=output_star, **kw)
    io.write_star(output_star, table)


def write_record(output_star, record):
    """Write ``<stem>.json`` beside the STAR (atomically): what was simulated and how."""
    path = os.path.splitext(os.path.abspath(output_star))[0] + ".json"
    return io.write_json(path, record)
