#!/usr/bin/env python3
"""Multi-CryoGAN: cost of the generator designs, and coverage of a continuous motion.

Part 1 (--part=cost): time per training step at one box and batch of
  (a) CryoGAN (one volume),
  (b) Multi-CryoGAN with the basis-volume generator (the package's design: 1 + K 3D transforms per
      batch, O((1 + K) N^2) per image),
  (c) a per-image volume decoder (MLP + 3D transposed convolutions, one volume and one 3D transform
      per image), the design it was measured against,
and prints (b)/(a) and (c)/(a).

Part 2 (--part=coverage): a continuous conformational change with ground truth: adenylate kinase
frames made by interpolating the closed and open structures (../shared/data/adk, same atoms in the
same order), a data set with CTFs and noise (bin/simulate, each particle a random frame), bin/train
--latent_dim, bin/export, bin/sample; the samples' mean is aligned once to the middle frame and
every sample moved by that one transformation, then bin/evaluate --no_align gives each sample's best
frame (precision) and each frame's best sample (recall) at FSC 0.5 within --threshold_A, and a least
squares fit (to the frames blurred as much as fits best) places each sample on the line from the
first frame (0) to the last (1). It also prints the share of the samples' (and the frames')
variance along the motion and in whole-particle translations, rotations and strains of their mean,
and the share and the positions again with the whole particle's shifts and turns taken out: a
turn of the whole particle that comes with the conformation cannot show in images of uniformly
random pose, so no pose-free method can learn it (28% of the adk frames' variance is one).
--dataset=hinge makes the frames from a hinge motion of a larger protein instead: chain A of
beta-galactosidase (../shared/data/betagal/5a1a.cif) with its domain 5 turned 0-60 degrees as a
rigid body (5 A/px; work folder WORK/coverage_hinge).

The discrete rungs of the heterogeneity ladder (two maps, particles drawn 30/70 with bin/simulate
--class_fractions): --dataset=mixture, two very different particles (beta-galactosidase chain A
30%, adenylate kinase 70%; 5 A/px, threshold 25 A, WORK/ladder_mixture) and --dataset=endstates,
adenylate kinase closed 30% and open 70% (3 A/px, 20 A, WORK/ladder_endstates). They print the
share of the samples nearest each state (the proportions must come back), the share near neither
(a continuum between the states), and each state's best sample (both maps must come back).

  python bench/multi.py --part=cost [--box=64] [--batch=32]
  python bench/multi.py --part=coverage --box=32 [--dataset=adk|hinge|mixture|endstates]
      [--minutes=15]
      [--threshold_A=20] [--latent=2]
      [--snr_db=-5] [--work=/tmp/bench_multi] [--train_flags="--generator_batches=5 ..."]
      [--evaluate_only [--samples_dir=DIR]]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SHARED = os.path.join(ROOT, "..", "shared", "data")


# ---------------------------------------------------------------------------------- part 1
def per_image_decoder(box, latent_dim):
    """Design (c): z -> MLP -> 4^3 x 64 -> 3D transposed convolutions -> [B, N, N, N]."""
    import keras
    stages = int(np.log2(box // 4))
    layers = [keras.layers.Dense(4 * 4 * 4 * 64, activation="relu"),
              keras.layers.Reshape((4, 4, 4, 64))]
    channels = 64
    for _ in range(stages):
        channels = max(channels // 2, 8)
        layers += [keras.layers.Conv3DTranspose(channels, 4, strides=2, padding="same",
                                                activation="relu")]
    layers += [keras.layers.Conv3D(1, 3, padding="same", activation="relu"),
               keras.layers.Reshape((box, box, box))]
    model = keras.Sequential(layers)
    model.build((None, latent_dim))
    return model


def time_steps(fn, steps):
    fn()  # compile
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t) / steps


def cost(args):
    from tfcryogan import cli
    tf = cli.import_tensorflow_quietly()

    from tfcryogan import phantoms, synthesis
    from tfcryogan import data as data_lib
    from tfcryogan import simulator
    from tfcryogan.physics import projector, rotations
    from tfcryogan.training import loop
    from tfcryogan.training.config import TrainConfig

    work = os.path.join(args.work, f"cost_{args.box}")
    star = os.path.join(work, "particles.star")
    if not os.path.exists(star):
        vol = phantoms.phantom(args.box)
        particles = synthesis.random_particles(2000, 0, 1, synthesis.CtfSpec(), 2.0)
        synthesis.simulate(vol[None], 3.0, particles, synthesis.NoiseSpec("white", 0.0), star,
                           quiet=True)
    data = data_lib.load_particles(star)
    results = {}
    for name, latent in (("CryoGAN (one volume)", 0),
                         (f"Multi-CryoGAN basis generator, latent {args.latent}", args.latent)):
        config = TrainConfig(particles=star, output_dir=os.path.join(work, f"run{latent}"),
                             max_steps=10 ** 6, batch_size=args.batch, latent_dim=latent,
                             checkpoint_every=10 ** 6, summary_every=10 ** 6, restart=True,
                             half_maps=False)
        trainer = loop.Trainer(config, data, log=lambda line: None)
        batch = next(trainer.batches(0))
        results[name] = time_steps(lambda: trainer.step(batch), args.steps)
    base = results["CryoGAN (one volume)"]

    # Design (c), generator update only (simulate + backward through the decoder), compared with
    # the same update of the basis generator, since a full step differs only there.
    b, n = args.batch, args.box
    rng = np.random.default_rng(0)
    ctf = tf.constant(np.tile([[15000, 14000, 30, 300, 2.7, 0.1, 0, 0, 1]], (b, 1)), tf.float32)
    mats = rotations.random_rotations(b, tf.constant([1, 2], tf.int64))
    origins = tf.zeros([b, 2])
    weights = tf.constant(rng.normal(size=(b, n, n)).astype(np.float32))
    decoder = per_image_decoder(n, args.latent)
    from tfcryogan.models.generator import ConformationGenerator
    basis = ConformationGenerator(n, args.latent, "C1", 0.45)
    basis(tf.zeros([1, args.latent]))
    z = tf.random.normal([b, args.latent])

    @tf.function
    def decoder_update():
        with tf.GradientTape() as tape:
            vols = decoder(z)
            spec = projector.volume_spectrum(vols)
            img = simulator.project(spec, mats, origins, ctf, n, 3.0, volume_index=tf.range(b))
            loss = tf.reduce_sum(img * weights)
        return tape.gradient(loss, decoder.trainable_variables)[0]

    @tf.function
    def basis_update():
        with tf.GradientTape() as tape:
            spec = projector.volume_spectrum(basis.basis_volumes())
            img = simulator.project(spec, mats, origins, ctf, n, 3.0,
                                    coefficients=basis.coefficients(z))
            loss = tf.reduce_sum(img * weights)
        return tape.gradient(loss, basis.trainable_variables)[0]

    t_dec = time_steps(decoder_update, max(3, args.steps // 3))
    t_basis = time_steps(basis_update, args.steps)
    print(f"box {args.box}, batch {args.batch}, {os.cpu_count()} CPU cores")
    for name, t in results.items():
        print(f"  {name:48s} {t * 1000:8.1f} ms/step   {t / base:5.2f} x CryoGAN")
    print(f"  generator update alone: basis generator {t_basis * 1000:.1f} ms, per-image volume "
          f"decoder {t_dec * 1000:.1f} ms ({t_dec / t_basis:.1f} x slower)")
    print(f"  => Multi-CryoGAN step within {results[list(results)[1]] / base:.2f} x CryoGAN's "
          f"(target <= 3); the per-image decoder would add {(t_dec - t_basis) * 1000:.0f} ms "
          "per step")


# ---------------------------------------------------------------------------------- part 2
def adk_structure(state):
    """Adenylate kinase ``state`` ("closed" or "open"; ../shared/data/adk, 3,341 atoms, the same
    atoms in the same order in both) as a gemmi structure, with elements set from the CHARMM atom
    names (the files have no element column: HT1 -> H)."""
    import gemmi
    structure = gemmi.read_structure(os.path.join(SHARED, "adk", f"adk_{state}.pdb"))
    for atom in (a for ch in structure[0] for r in ch for a in r):
        if atom.element.name == "X":
            atom.element = gemmi.Element(atom.name[0])
    return structure


def atom_positions(structure):
    """``[n_atoms, 3]`` coordinates (A) of a gemmi structure's first model, in file order."""
    return np.array([[a.pos.x, a.pos.y, a.pos.z] for ch in structure[0] for r in ch for a in r])


def adk_frames(folder, count, box, pixel, resolution):
    """Density maps of ``count`` frames interpolated between the closed and open adenylate kinase
    structures (the same 3,341 atoms in the same order)."""
    import gemmi
    os.makedirs(folder, exist_ok=True)
    pos_c = atom_positions(adk_structure("closed"))
    pos_o = atom_positions(adk_structure("open"))
    assert pos_c.shape == pos_o.shape
    paths = []
    for k, t in enumerate(np.linspace(0.0, 1.0, count)):
        frame = adk_structure("closed")
        atoms = [a for ch in frame[0] for r in ch for a in r]
        for atom, p in zip(atoms, (1 - t) * pos_c + t * pos_o):
            atom.pos = gemmi.Position(*p)
        paths.append(frame_map(frame, os.path.join(folder, f"frame_{k:02d}"), box, pixel,
                               resolution))
    return paths


def frame_map(structure, stem, box, pixel, resolution):
    """Write the density map of a gemmi ``structure`` (``io.model_to_density``: centred at its
    centre of mass) to ``stem.mrc`` by way of a temporary ``stem.pdb``; returns the map's path."""
    from tfcryogan import io
    pdb = stem + ".pdb"
    structure.write_pdb(pdb)
    vol = io.model_to_density(pdb, box, pixel, resolution)
    os.remove(pdb)
    io.write_volume(stem + ".mrc", vol, pixel)
    return stem + ".mrc"


def betagal_chain_a():
    """Chain A of E. coli beta-galactosidase (PDB 5A1A, ../shared/data/betagal; waters, ligands
    and hydrogens removed): a gemmi structure of one model and one chain, 8,206 atoms, 116 kDa."""
    import gemmi
    structure = gemmi.read_structure(os.path.join(SHARED, "betagal", "5a1a.cif"))
    structure.remove_ligands_and_waters()
    structure.remove_hydrogens()
    model = structure[0]
    for name in [ch.name for ch in model][1:]:
        model.remove_chain(name)
    return structure


def mixture_maps(folder, count, box, pixel, resolution):
    """Two very different particles (``count`` is ignored): ``frame_00`` beta-galactosidase
    chain A (:func:`betagal_chain_a`, 116 kDa, 62 A from its centre to its farthest atom) and
    ``frame_01`` adenylate kinase, closed (../shared/data/adk, 24 kDa, 27 A), each centred at its
    centre of mass."""
    os.makedirs(folder, exist_ok=True)
    return [frame_map(structure, os.path.join(folder, f"frame_{k:02d}"), box, pixel, resolution)
            for k, structure in enumerate((betagal_chain_a(), adk_structure("closed")))]


def adk_end_states(folder, count, box, pixel, resolution):
    """The closed (``frame_00``) and open (``frame_01``) adenylate kinase maps (``count`` is
    ignored): :func:`adk_frames` with two frames."""
    return adk_frames(folder, 2, box, pixel, resolution)


HINGE_DOMAIN = (737, 1023)  # beta-galactosidase domain 5 (residues), the one that swings


def hinge_frames(folder, count, box, pixel, resolution, max_angle_deg=60.0):
    """Density maps of ``count`` frames of a hinge motion made from a real protein: chain A of
    E. coli beta-galactosidase (PDB 5A1A, ../shared/data/betagal; waters and ligands removed) with
    its C-terminal domain 5 (residues 737-1023, 2,308 of its 8,206 atoms) turned as a rigid body
    by 0 to ``max_angle_deg`` degrees about an axis through the centre of its interface with the
    rest (its atoms within 6 A of another domain) and perpendicular to the line between the two
    parts' centroids. A larger particle (116 kDa) and a larger moving mass than adenylate kinase's
    lid (the ``adk`` data set); each frame is centred at its own centre of mass, as adk's are."""
    import gemmi
    os.makedirs(folder, exist_ok=True)
    structure = betagal_chain_a()
    atoms = [(r.seqid.num, a) for r in structure[0][0] for a in r]
    pos = np.array([[a.pos.x, a.pos.y, a.pos.z] for _, a in atoms])
    moving = np.array([HINGE_DOMAIN[0] <= num <= HINGE_DOMAIN[1] for num, _ in atoms])
    rest = pos[~moving]
    near = np.array([np.min(np.sum((rest - p) ** 2, axis=1)) < 36.0 for p in pos[moving]])
    hinge = pos[moving][near].mean(axis=0)
    axis = np.cross(pos[moving].mean(axis=0) - hinge, rest.mean(axis=0) - hinge)
    axis /= np.linalg.norm(axis)
    paths = []
    for k, angle in enumerate(np.radians(np.linspace(0.0, max_angle_deg, count))):
        c, s = np.cos(angle), np.sin(angle)  # Rodrigues' rotation about `axis` through `hinge`
        cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        rotation = c * np.eye(3) + s * cross + (1 - c) * np.outer(axis, axis)
        turned = np.where(moving[:, None], (pos - hinge) @ rotation.T + hinge, pos)
        for (_, atom), p in zip(atoms, turned):
            atom.pos = gemmi.Position(*p)
        paths.append(frame_map(structure, os.path.join(folder, f"frame_{k:02d}"), box, pixel,
                               resolution))
    return paths


# The coverage bench's data sets: frame maker, pixel (A), recall threshold (A), work sub-folder.
DATASETS = {
    "adk": {"make": adk_frames, "pixel": 3.0, "threshold_A": 20.0, "folder": "coverage",
            "title": "adenylate kinase closed -> open"},
    "hinge": {"make": hinge_frames, "pixel": 5.0,
              "threshold_A": 12.0, "folder": "coverage_hinge",
              "title": "beta-galactosidase chain A, domain 5 turned 0 -> 60 degrees"},
    # Discrete rungs of the ladder: two maps drawn 30/70 (``fractions``); scored by
    # evaluate_states. ``align_each``: the two are different particles, whose relative pose a
    # pose-free method cannot know, so each sample is aligned to each state on its own.
    "mixture": {"make": mixture_maps, "pixel": 5.0, "threshold_A": 25.0,
                "folder": "ladder_mixture", "fractions": (0.3, 0.7), "align_each": True,
                "title": "30% beta-galactosidase chain A + 70% adenylate kinase"},
    "endstates": {"make": adk_end_states, "pixel": 3.0, "threshold_A": 20.0,
                  "folder": "ladder_endstates", "fractions": (0.3, 0.7), "align_each": False,
                  "title": "adenylate kinase, 30% closed + 70% open"},
}


def gaussian_blur(volume, sigma):
    """``volume`` convolved with a Gaussian of ``sigma`` voxels (periodic, by FFT), float64."""
    from tfcryogan.physics import fourier
    return np.asarray(fourier.gaussian_blur(np.asarray(volume, np.float32), sigma, 3),
                      np.float64)


def motion_coordinate(volume, start, end, blurs=np.arange(0.0, 3.01, 0.25), rigid_free=False):
    """Where ``volume`` lies on the line from ``start`` (0) to ``end`` (1).

    Least squares ``volume ~ a * G(start + t * (end - start)) + b`` (any density scale and offset),
    where ``G`` is the Gaussian blur (sigma in ``blurs``, voxels) that fits best: a reconstruction
    is blurrier than the frames, and fitting it to sharp frames pulls ``t`` towards the middle
    (frames 0 and 9 themselves, blurred by 1.5 voxels, land at 0.20 and 0.74).

    ``rigid_free``: the fit also has free small shifts and turns of the whole particle (the six
    :func:`whole_particle_directions` of the line's blurred middle), so ``t`` measures only the
    part of the motion that images can show (see :func:`motion_variance_fraction`)."""
    y = np.asarray(volume, np.float64).ravel()
    best = None
    for sigma in blurs:
        s0, d = gaussian_blur(start, sigma).ravel(), gaussian_blur(end - start, sigma).ravel()
        columns = [s0, d, np.ones_like(d)]
        if rigid_free:
            middle = (s0 + 0.5 * d).reshape(np.shape(start))
            directions = whole_particle_directions(middle)
            columns += [v.ravel() for v in directions["translations"] + directions["rotations"]]
        design = np.stack(columns, axis=1)
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        residual = float(np.sum((design @ coef - y) ** 2))
        if best is None or residual < best[0]:
            best = (residual, float(coef[1] / coef[0]))
    return best[1]


def motion_variance_fraction(volumes, start, end, sigma=1.5, rigid_free=False):
    """Share of the variance of ``[B, N, N, N]`` volumes (about their mean) that lies along the
    direction ``end - start``, all blurred by ``sigma`` voxels (the resolution the maps reach):
    near 1 when the volumes differ by the motion, near 0 when they differ in other ways.

    ``rigid_free``: first remove from the variance and from the direction their parts in the six
    shifts and turns of the whole particle (:func:`whole_particle_directions` of the volumes'
    mean). A conformation-dependent turn of the whole particle cannot be seen in images of
    uniformly random pose (the pose absorbs it), so no pose-free method can recover it; 28% of
    the adk frames' own variance is such a turn."""
    blurred = np.stack([gaussian_blur(v, sigma) for v in volumes])
    direction = gaussian_blur(end - start, sigma).ravel()
    deviations = (blurred - blurred.mean(axis=0)).reshape(len(blurred), -1)
    if rigid_free:
        q = whole_particle_basis(blurred.mean(axis=0), ("translations", "rotations"))
        deviations = deviations - (deviations @ q) @ q.T
        direction = direction - q @ (q.T @ direction)
    direction /= np.linalg.norm(direction)
    return float(np.sum((deviations @ direction) ** 2) / np.sum(deviations ** 2))


def whole_particle_directions(mean):
    """The infinitesimal whole-particle motions of an ``[N, N, N]`` density: a dict of lists of
    ``[N, N, N]`` arrays, ``translations`` (its 3 gradients), ``rotations`` (3, about the box
    centre) and ``strains`` (the 6 stretches and shears)."""
    grad = np.gradient(mean)
    c = np.arange(mean.shape[0]) - mean.shape[0] // 2
    x = np.meshgrid(c, c, c, indexing="ij")
    pairs = ((1, 2), (2, 0), (0, 1))
    return {"translations": list(grad),
            "rotations": [x[j] * grad[k] - x[k] * grad[j] for j, k in pairs],
            "strains": [x[i] * grad[i] for i in range(3)] +
                       [x[j] * grad[k] + x[k] * grad[j] for j, k in pairs]}


def whole_particle_basis(mean, kinds=("translations", "rotations", "strains")):
    """``[N^3, D]`` orthonormal columns spanning the ``kinds`` of :func:`whole_particle_directions`
    of ``mean``, in that order (QR: column ``k`` spans directions ``0..k``)."""
    directions = whole_particle_directions(mean)
    q, _ = np.linalg.qr(np.stack([d.ravel() for kind in kinds for d in directions[kind]], axis=1))
    return q


def set_linear_model(generator, template, basis):
    """Load ``template + z @ basis`` (``[N^3]`` and ``[K, N^3]``, any float type) into a package
    :class:`~tfcryogan.models.generator.ConformationGenerator` of box ``N``."""
    import tensorflow as tf
    n = generator.box
    generator.template.assign(tf.constant(np.reshape(template, [n] * 3), tf.float32))
    generator.basis.assign(tf.constant(np.reshape(basis, [len(basis)] + [n] * 3), tf.float32))


def whole_particle_shares(volumes, sigma=1.5):
    """Shares of the variance of ``[B, N, N, N]`` volumes (about their mean, all blurred by
    ``sigma`` voxels) that lie in the span of the mean's infinitesimal whole-particle motions:
    ``translations`` (its 3 gradients), then ``rotations`` (3, about the box centre) and
    ``strains`` (the 6 stretches and shears), each group orthogonalised against the ones before.
    Returns a dict of floats. A shift or turn of the whole particle that varies with ``z`` is
    (nearly) invisible in images of random pose and shift, so a critic barely removes it."""
    blurred = np.stack([gaussian_blur(v, sigma) for v in volumes])
    mean = blurred.mean(axis=0)
    deviations = (blurred - mean).reshape(len(blurred), -1)
    groups = whole_particle_directions(mean)
    q = whole_particle_basis(mean)  # column k spans directions 0..k
    projected = (deviations @ q) ** 2  # [B, 12]
    total, shares, first = float(np.sum(deviations ** 2)), {}, 0
    for name, directions in groups.items():
        shares[name] = float(np.sum(projected[:, first:first + len(directions)]) / total)
        first += len(directions)
    return shares


def frames_linear_model(frames, k):
    """The frames' own linear model: their mean ``[N^3]`` and ``k`` principal components scaled by
    their standard deviations ``[k, N^3]``, so that ``mean + z @ scaled`` with ``z ~ N(0, I)``
    has the frames' variance in those components (float64, flattened)."""
    flat = np.stack([np.asarray(f, np.float64).ravel() for f in frames])
    mean = flat.mean(axis=0)
    _, s, vt = np.linalg.svd(flat - mean, full_matrices=False)
    return mean, (s[:k] / np.sqrt(len(flat)))[:, None] * vt[:k]


def linear_model_ceiling(frames, z):
    """The best the linear map can do on these frames: :func:`frames_linear_model` evaluated at
    the samples' own codes ``z`` ``[B, K]``; returns ``[B, N, N, N]``."""
    mean, scaled = frames_linear_model(frames, z.shape[1])
    return (mean + z @ scaled).reshape((len(z),) + np.shape(frames[0]))


def align_samples(sample_dir, reference, out_dir, pixel):
    """Align the samples' mean volume to ``reference`` and move every sample by that one rigid
    transformation (rotation, hand, shift), writing them to ``out_dir``; returns their names.

    The samples share the generator's frame of reference as the frames share theirs: one
    transformation relates the two. Aligning each sample on its own would rotate open and closed
    samples towards the reference conformation, moving them along the motion."""
    from tfcryogan import io
    from tfcryogan.evaluation import align
    from tfcryogan.physics import fourier
    names = sorted(p for p in os.listdir(sample_dir) if p.startswith("sample_"))
    volumes = [io.read_volume(os.path.join(sample_dir, n))[0] for n in names]
    found = align.align(np.mean(volumes, axis=0), reference)
    matrix = found.matrix @ align.MIRROR if found.flipped else found.matrix
    n = reference.shape[0]
    os.makedirs(out_dir, exist_ok=True)
    for name, vol in zip(names, volumes):  # 2x oversampled rotation, as align() does
        moved = fourier.fourier_crop(align.rotate_volume(fourier.fourier_crop(vol, 2 * n, 3),
                                                         matrix, 2 * found.shift_voxels),
                                     n, 3).numpy()
        io.write_volume(os.path.join(out_dir, name), moved, pixel)
    return names


def read_frames(folder):
    """The ground-truth frames: every ``.mrc`` in ``folder`` in name order, ``[N, N, N]`` arrays."""
    from tfcryogan import io
    return [io.read_volume(os.path.join(folder, p))[0]
            for p in sorted(os.listdir(folder)) if p.endswith(".mrc")]


def newest_export(export_dir):
    """The newest version folder ``export_dir/<version>`` that ``bin/export`` wrote."""
    from tfcryogan import export
    return os.path.join(export_dir, str(export.next_version(export_dir) - 1))


def export_and_sample(run_dir, export_dir, samples_dir, n, *sample_flags):
    """``bin/export`` the run into ``export_dir``, then ``bin/sample --n=n`` from its newest
    version into ``samples_dir`` (emptied first; with ``sample_flags``)."""
    py = sys.executable
    shutil.rmtree(samples_dir, ignore_errors=True)  # no sample of an earlier run is scored
    subprocess.run([py, os.path.join(ROOT, "bin", "export"), f"--run_dir={run_dir}",
                    f"--export_dir={export_dir}"], check=True)
    subprocess.run([py, os.path.join(ROOT, "bin", "sample"),
                    f"--model={newest_export(export_dir)}", f"--n={n}",
                    f"--output_dir={samples_dir}", *sample_flags], check=True)


def train_and_sample(data, run_dir, export_dir, samples_dir, minutes, latent, n_samples,
                     train_flags=(), sample_flags=()):
    """``bin/train --latent_dim=latent --max_minutes=minutes`` on ``data``'s particles
    (:func:`coverage_data`) in ``run_dir``, then :func:`export_and_sample` of ``n_samples``;
    returns ``(steps trained, minutes bin/train ran)``."""
    t0 = time.time()
    subprocess.run([sys.executable, os.path.join(ROOT, "bin", "train"),
                    f"--particles={data['star']}", f"--output_dir={run_dir}",
                    f"--latent_dim={latent}", f"--max_minutes={minutes}", "--restart",
                    *train_flags], check=True)
    train_minutes = (time.time() - t0) / 60.0
    export_and_sample(run_dir, export_dir, samples_dir, n_samples, *sample_flags)
    with open(os.path.join(run_dir, "run.json"), encoding="utf-8") as f:
        return json.load(f)["step"], train_minutes


def coverage_data(args):
    """The coverage data set of ``args.dataset`` (made on first use in its work folder): frames
    (``--frames`` maps along the motion) and ``bin/simulate``'s particles from them. Returns a
    dict: ``dataset``, ``work``, ``frames`` (folder), ``star``, ``pixel`` (A), ``threshold`` (A)."""
    dataset = DATASETS[args.dataset]
    pixel = args.pixel or dataset["pixel"]
    work = os.path.join(args.work, dataset["folder"])
    frames = os.path.join(work, "frames")
    star = os.path.join(work, "particles.star")
    if not os.path.exists(star):
        dataset["make"](frames, args.frames, args.box, pixel, 2.5 * pixel)
        fractions = ([f"--class_fractions={','.join(map(str, dataset['fractions']))}"]
                     if "fractions" in dataset else [])
        subprocess.run([sys.executable, os.path.join(ROOT, "bin", "simulate"),
                        f"--volume={frames}", f"--n_particles={args.n}", *fractions,
                        f"--snr_db={args.snr_db}", "--shift_std_A=2", "--ctf_from=" + os.path.join(
                            SHARED, "betagal", "empiar10061_ctf_per_micrograph.txt"),
                        f"--output={star}"], check=True)
    return {"dataset": dataset, "work": work, "frames": frames, "star": star, "pixel": pixel,
            "threshold": args.threshold_A or dataset["threshold_A"]}


def coverage(args):
    from tfcryogan import cli
    cli.import_tensorflow_quietly()
    data = coverage_data(args)
    samples = os.path.join(data["work"], "samples")
    if not args.evaluate_only:
        train_and_sample(data, os.path.join(data["work"], "run"),
                         os.path.join(data["work"], "export", "adk"), samples, args.minutes,
                         args.latent, args.samples, args.train_flags.split(), ["--traverse"])
    elif args.samples_dir:
        samples = args.samples_dir
    print(f"{data['dataset']['title']}, box {args.box}, {data['pixel']:g} A/px, {args.n} "
          f"particles at {args.snr_db:g} dB, {args.minutes:g} min of training, latent dim "
          f"{args.latent}")
    evaluate(samples, data)


def evaluate(samples, data, label="", align_each=None):
    """:func:`evaluate_states` for a discrete data set (one with ``fractions``), else
    :func:`evaluate_samples`; returns its figures. ``align_each``: None, the data set's own."""
    if "fractions" in data["dataset"]:
        if align_each is None:
            align_each = data["dataset"]["align_each"]
        return evaluate_states(samples, data, label, align_each)
    return evaluate_samples(samples, data, label)


def evaluate_states(samples, data, label="", align_each=False):
    """Score the ``sample_*.mrc`` maps in ``samples`` against the two states of a discrete data
    set (``data["dataset"]["fractions"]`` of the particles each), print and return a dict:
    ``fractions`` (the share of the samples whose nearest state, by FSC 0.5 resolution, is each
    state and is within the threshold), ``neither`` (the share near no state), ``best_A`` (each
    state's best sample, A), ``closest`` (the share of the samples nearest each state at any
    resolution) and ``recall`` (the share of the states matched by a sample within
    the threshold: 1 when both maps come back). The shares are printed with their binomial
    standard errors, ``sqrt(p (1 - p) / samples)``.

    A method that learns the mixture draws samples in the data's proportions and every sample
    looks like one state; a continuum between the states shows as ``neither``.
    ``align_each``: superpose every sample on every state on its own (different particles);
    else align the samples' mean once to the second state and move all samples by it (one
    particle in two states: aligning each would pull it towards the state it is compared with).
    """
    from tfcryogan import io
    from tfcryogan.evaluation import fsc
    from tfcryogan.evaluation import precision_recall as pr
    work, pixel, threshold = data["work"], data["pixel"], data["threshold"]
    suffix = f"_{label}" if label else ""
    states = read_frames(data["frames"])
    truth = data["dataset"]["fractions"]
    assert len(states) == len(truth) == 2, (data["frames"], truth)
    box = states[0].shape[0]
    names = sorted(p for p in os.listdir(samples) if p.startswith("sample_"))
    folder = samples
    if not align_each:
        folder = os.path.join(work, "aligned" + suffix)
        shutil.rmtree(folder, ignore_errors=True)
        names = align_samples(samples, states[1], folder, pixel)
    maps = [io.read_volume(os.path.join(folder, n))[0] for n in names]
    result = pr.compare_sets(maps, states, pixel, [os.path.splitext(n)[0] for n in names],
                             [f"state_{k}" for k in range(len(states))], threshold_A=threshold,
                             align=align_each)
    evaluation = os.path.join(work, "evaluation" + suffix)
    pr.write_matrix_csv(os.path.join(evaluation, "resolution_matrix.csv"), result)
    pr.write_precision_recall_csv(os.path.join(evaluation, "precision_recall.csv"), result)
    res = np.asarray(result.resolution_A)  # [samples, states]
    nearest = np.where(res.min(axis=1) <= threshold, res.argmin(axis=1), -1)
    fractions = [float(np.mean(nearest == k)) for k in range(len(states))]
    neither = float(np.mean(nearest < 0))
    best = [float(v) for v in res.min(axis=0)]
    if align_each:
        how = "each sample aligned to each state"
    else:
        apart = fsc.resolution(fsc.fsc(states[0], states[1]).numpy(), box, pixel, 0.5)[0]
        how = f"one alignment of their mean; the states are {apart:.1f} A apart at FSC 0.5"
    print(f"  {len(names)} samples in {samples} against {len(states)} states ({how})")
    print("  each sample's resolution to state 0 / state 1 (A): " +
          " ".join(f"{a:.0f}/{b:.0f}" for a, b in res))
    error = [np.sqrt(p * (1 - p) / len(names)) for p in fractions + [neither]]
    print(f"  samples nearest each state within {threshold:g} A: " +
          ", ".join(f"state {k} {f:.2f} +- {e:.2f}" for k, (f, e) in
                    enumerate(zip(fractions, error))) +
          f", neither {neither:.2f} +- {error[-1]:.2f} (the particles: " +
          " / ".join(f"{t:.2f}" for t in truth) + ")")
    closest = [float(np.mean(res.argmin(axis=1) == k)) for k in range(len(states))]
    print("  ... nearest each state at any resolution: " +
          ", ".join(f"state {k} {f:.2f}" for k, f in enumerate(closest)))
    print("  best sample of each state: " + ", ".join(f"{b:.1f} A" for b in best) +
          f"; recall {result.recall:.2f}; details in {evaluation}", flush=True)
    return {"fractions": fractions, "neither": neither, "closest": closest, "best_A": best,
            "samples": len(names),
            "recall": float(result.recall)}


def evaluate_samples(samples, data, label=""):
    """Score the ``sample_*.mrc`` maps in ``samples`` against the frames of ``data``
    (:func:`coverage_data`), print the figures and return the main ones as a dict:
    ``share`` / ``share_rigid_free`` (samples' variance along the motion, without and with the
    whole-particle shifts and turns removed), ``frames_share_rigid_free``, ``span`` (max - min of
    the rigid-free positions on the closed (0) -> open (1) line), ``precision``, ``recall``.

    A pose-free map is defined up to a rotation, reflection and shift: the samples are aligned
    once to the middle frame (the frames share one frame of reference), then compared with all
    frames. ``label`` names the aligned / evaluation folders (``aligned_<label>``)."""
    from tfcryogan import io
    from tfcryogan.evaluation import fsc
    from tfcryogan.evaluation import precision_recall as pr
    from tfcryogan.models.generator import volume_spread
    work, pixel, threshold = data["work"], data["pixel"], data["threshold"]
    suffix = f"_{label}" if label else ""
    vols = read_frames(data["frames"])
    box = vols[0].shape[0]
    aligned = os.path.join(work, "aligned" + suffix)
    shutil.rmtree(aligned, ignore_errors=True)
    sample_paths = align_samples(samples, vols[len(vols) // 2], aligned, pixel)
    evaluation = os.path.join(work, "evaluation" + suffix)
    aligned_vols = [io.read_volume(os.path.join(aligned, n))[0] for n in sample_paths]
    result = pr.compare_sets(aligned_vols, vols, pixel, [os.path.splitext(n)[0]
                                                          for n in sample_paths],
                             [f"frame_{k:02d}" for k in range(len(vols))],
                             threshold_A=threshold, align=False)
    pr.write_matrix_csv(os.path.join(evaluation, "resolution_matrix.csv"), result)
    pr.write_precision_recall_csv(os.path.join(evaluation, "precision_recall.csv"), result)
    pr.plot_precision_recall(os.path.join(evaluation, "precision_recall.png"), result)
    gaps = []
    for k in range(1, len(vols)):
        curve = fsc.fsc(vols[0], vols[k]).numpy()
        gaps.append(fsc.resolution(curve, box, pixel, 0.5)[0])
    sample_vols = [io.read_volume(os.path.join(samples, n))[0] for n in sample_paths]
    best = sorted(int(np.argmin(row)) for row in result.resolution_A)
    recalled = [j for j, row in enumerate(result.per_reference) if row["matched"]]
    print(f"  {len(sample_paths)} samples in {samples} against {len(vols)} frames")
    print("  how far the frames are from frame 0 (FSC 0.5): " +
          ", ".join(f"{k + 1}: {g:.1f} A" for k, g in enumerate(gaps)))
    print(f"  spread (rms deviation from the mean volume / rms of the mean): samples "
          f"{float(volume_spread(np.stack(sample_vols))):.0%}, "
          f"frames {float(volume_spread(np.stack(vols))):.0%}")
    aligned_vols = np.stack(aligned_vols)
    share = motion_variance_fraction(aligned_vols, vols[0], vols[-1])
    print(f"  share of the variance along the motion (frame 0 -> last, blurred 1.5 voxels): "
          f"samples {share:.2f}, frames "
          f"{motion_variance_fraction(np.stack(vols), vols[0], vols[-1]):.2f}")
    free = [motion_variance_fraction(v, vols[0], vols[-1], rigid_free=True)
            for v in (aligned_vols, np.stack(vols))]
    print(f"  the same without whole-particle shifts and turns (images of random pose cannot "
          f"show them): samples {free[0]:.2f}, frames {free[1]:.2f}")
    for name, volumes in (("samples", aligned_vols), ("frames", np.stack(vols))):
        print(f"  share of the {name}' variance in whole-particle motions of their mean "
              "(blurred 1.5 voxels): " + ", ".join(
                  f"{k} {v:.2f}" for k, v in whole_particle_shares(volumes).items()))
    t = sorted(motion_coordinate(v, vols[0], vols[-1]) for v in aligned_vols)
    print("  the samples' positions on the motion (0 = first frame, 1 = last; least squares "
          "after alignment): " + " ".join(f"{x:.2f}" for x in t))
    t_free = sorted(motion_coordinate(v, vols[0], vols[-1], rigid_free=True) for v in aligned_vols)
    print("  ... each sample also free to shift and turn: " + " ".join(f"{x:.2f}" for x in t_free))
    print(f"  best frame of each of the {len(best)} samples: {best}")
    z_path = os.path.join(samples, "z.txt")
    if os.path.exists(z_path):  # the same codes through the frames' own linear model
        ceiling = linear_model_ceiling(vols, np.loadtxt(z_path, ndmin=2))
        print("  the linear map's best (the frames' mean and principal components at the "
              "samples' z): positions " + " ".join(
                  f"{x:.2f}" for x in sorted(motion_coordinate(v, vols[0], vols[-1])
                                            for v in ceiling)) +
              f"; share along the motion {motion_variance_fraction(ceiling, vols[0], vols[-1]):.2f}")
    print(f"  frames matched (a sample within {threshold:g} A at FSC 0.5): {recalled}")
    print(f"  precision {result.precision:.2f}, recall {result.recall:.2f} "
          f"(threshold {threshold:g} A); details in {evaluation}", flush=True)
    return {"share": share, "share_rigid_free": free[0], "frames_share_rigid_free": free[1],
            "span": t_free[-1] - t_free[0], "precision": float(result.precision),
            "recall": float(result.recall)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["cost", "coverage"], default="cost")
    parser.add_argument("--work", default="/tmp/bench_multi")
    parser.add_argument("--box", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--latent", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="adk",
                        help="coverage: the heterogeneity (adk: adenylate kinase closed -> open; "
                             "hinge: beta-galactosidase chain A, domain 5 turned 0-60 degrees; "
                             "mixture: 30%% beta-galactosidase chain A + 70%% adenylate kinase; "
                             "endstates: 30%% closed + 70%% open adenylate kinase)")
    parser.add_argument("--pixel", type=float, default=0.0,
                        help="0: the data set's (adk, endstates 3; hinge, mixture 5)")
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--snr_db", type=float, default=-5.0)
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--threshold_A", type=float, default=0.0,
                        help="0: the data set's (adk, endstates 20; hinge 12; mixture 25)")
    parser.add_argument("--train_flags", default="")
    parser.add_argument("--evaluate_only", action="store_true",
                        help="coverage: only score the samples already in the data set's work "
                        "folder (WORK/coverage/samples for adk, WORK/coverage_hinge/samples for "
                        "hinge; or --samples_dir)")
    parser.add_argument("--samples_dir", default="")
    args = parser.parse_args()
    (cost if args.part == "cost" else coverage)(args)


if __name__ == "__main__":
    main()
