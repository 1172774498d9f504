"""``bin/simulate``: flags -> volumes, imaging parameters, noise -> STAR + MRCS."""

import os
import sys

import numpy as np

from tfcryogan import io, phantoms, synthesis
from tfcryogan.errors import InputError


def volumes_from_flags(f):
    """``(volumes [V, N, N, N], pixel_size, names)`` from --volume / --atomic_model / phantom."""
    if f.volume and f.atomic_model:
        raise InputError("give either --volume or --atomic_model, not both")
    if f.atomic_model:
        if not f.box or not f.pixel_size:
            raise InputError(f"{f.atomic_model}: --atomic_model needs --box and --pixel_size")
        density = io.model_to_density(f.atomic_model, f.box, f.pixel_size, f.model_resolution)
        return density[None], float(f.pixel_size), [os.path.abspath(f.atomic_model)]
    if not f.volume:
        raise InputError("no density: give --volume=MAP.mrc (or a list/folder), "
                         "--atomic_model=FILE, or --volume=phantom")
    if f.volume == "phantom":
        if not f.box or not f.pixel_size:
            raise InputError("--volume=phantom needs --box and --pixel_size")
        return phantoms.phantom(f.box)[None], float(f.pixel_size), ["phantom"]
    paths = io.list_maps(f.volume, "volume")
    volumes, pixel_size = synthesis.load_maps(paths, f.pixel_size)
    return volumes, pixel_size, [os.path.abspath(p) for p in paths]


def run(f):
    """Run the simulation described by the parsed flags ``f``."""
    volumes, pixel_size, names = volumes_from_flags(f)
    if f.batch_size < 1:
        raise InputError(f"--batch_size={f.batch_size}: must be >= 1")
    ctf_spec = synthesis.CtfSpec(
        enabled=f.ctf, rows_from=f.ctf_from, defocus_min_a=f.defocus_min_A,
        defocus_max_a=f.defocus_max_A, astigmatism_a=f.astigmatism_A, voltage_kv=f.voltage_kv,
        cs_mm=f.cs_mm, amplitude_contrast=f.amplitude_contrast, bfactor=f.bfactor,
        phase_shift=f.phase_shift)
    probabilities = None  # equal shares, or each STAR row's own map
    if f.poses_from:
        if f.class_fractions is not None:
            raise InputError(f"{f.poses_from}: --class_fractions applies to drawn particles; with "
                             "--poses_from each row's rlnClassNumber chooses its map")
        table = io.read_particles(f.poses_from, require_ctf=False, pixel_size=None)
        star_px = float(table.pixel_size[0])
        if f.pixel_size is None and abs(star_px - pixel_size) > 1e-3 * pixel_size:
            raise InputError(f"{f.poses_from}: pixel size {star_px:g} A differs from the map's "
                             f"{pixel_size:g} A; give --pixel_size to choose")
        particles = synthesis.particles_from_star(table, len(volumes), ctf_enabled=f.ctf)
    else:
        probabilities = synthesis.class_probabilities(f.class_fractions, len(volumes))
        particles = synthesis.random_particles(f.n_particles, f.seed, len(volumes), ctf_spec,
                                               f.shift_std_A, probabilities)
    noise_spec = synthesis.NoiseSpec(kind=f.noise, snr_db=f.snr_db, source=f.noise_from)
    if not np.isfinite(f.snr_db):
        raise InputError(f"--snr_db={f.snr_db}: must be a finite number")
    out_dir = os.path.dirname(os.path.abspath(f.output))
    os.makedirs(out_dir, exist_ok=True)
    result = synthesis.simulate(volumes, pixel_size, particles, noise_spec, f.output,
                                seed=f.seed, batch_size=f.batch_size)
    record = dict(result, maps=names, noise=f.noise, snr_db=f.snr_db if f.noise != "none" else None,
                  noise_from=f.noise_from, seed=f.seed, poses_from=f.poses_from,
                  class_fractions=None if probabilities is None else probabilities.tolist(),
                  ctf=particles.ctf is not None, ctf_from=f.ctf_from,
                  snr_definition="var(clean CTF-modulated images over the box) / var(noise)")
    if f.atomic_model:  # the density the particles were made from: the ground truth
        density_path = os.path.splitext(os.path.abspath(f.output))[0] + "_density.mrc"
        io.write_volume(density_path, volumes[0], pixel_size)
        record["density"] = density_path
    record_path = synthesis.write_record(f.output, record)
    sys.stdout.write(f"wrote {result['n']} particles ({result['box']} px, {pixel_size:g} A/px) "
                     f"in {result['seconds']:.1f} s:\n  {result['star']}\n  {result['stack']}\n"
                     f"  {record_path}\n" +
                     (f"  {record['density']}  (the density, ground truth)\n"
                      if f.atomic_model else ""))
