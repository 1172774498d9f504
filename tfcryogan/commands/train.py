"""``bin/train``: flags -> particle data, training run, outputs."""

import os
import sys

from tfcryogan import data as data_lib
from tfcryogan import io, phantoms, synthesis
from tfcryogan.errors import InputError
from tfcryogan.training import loop

DEMO_PIXEL_SIZE = 4.0


def demo_particles(folder, n, box, snr_db, seed, log):
    """The built-in demo data set: the phantom at ``box`` px and 4 A/px, ``n`` particles with
    uniform poses, 4 A shifts, CTFs (1-2.5 um defocus, B 50) and white noise at ``snr_db``.
    Made once in ``folder``; returns ``(star_path, truth_path)``."""
    star = os.path.join(folder, "particles.star")
    truth = os.path.join(folder, "truth.mrc")
    if os.path.exists(star) and os.path.exists(truth):
        return star, truth
    log(f"making the demo data set: {n} particles of the built-in phantom in {folder}")
    volume = phantoms.phantom(box)
    io.write_volume(truth, volume, DEMO_PIXEL_SIZE)
    ctf = synthesis.CtfSpec(defocus_min_a=10000, defocus_max_a=25000, astigmatism_a=300,
                            bfactor=50.0)
    particles = synthesis.random_particles(n, seed, 1, ctf, shift_std_a=4.0)
    synthesis.simulate(volume[None], DEMO_PIXEL_SIZE, particles,
                       synthesis.NoiseSpec(kind="white", snr_db=snr_db), star, seed=seed)
    return star, truth


def run(f):
    """Train as the parsed flags ``f`` say; prints what was written where."""
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    output_dir = os.path.abspath(f.output_dir)
    if f.restart:
        loop.remove_run(output_dir)
    ground_truth_path = f.ground_truth
    particles = f.particles
    if particles == "demo":
        particles, truth = demo_particles(os.path.join(output_dir, "demo_data"),
                                          f.demo_particles, f.demo_box, f.demo_snr_db, f.seed, log)
        ground_truth_path = ground_truth_path or truth
    for name in ("max_steps", "batch_size", "n_critic", "checkpoint_every", "summary_every"):
        if getattr(f, name) < 1:
            raise InputError(f"--{name}={getattr(f, name)}: must be >= 1")
    if f.critic_batch_statistics < -1:
        raise InputError(f"--critic_batch_statistics={f.critic_batch_statistics}: must be >= 0 "
                         "(0: off) or -1 (the default)")
    if f.basis_decay < 0:
        raise InputError(f"--basis_decay={f.basis_decay:g}: must be >= 0 (0: off)")
    if not 0 <= f.basis_warmup <= 1:
        raise InputError(f"--basis_warmup={f.basis_warmup:g}: must be a fraction of the run, "
                         "0 (off) to 1")
    if f.max_minutes < 0:
        raise InputError(f"--max_minutes={f.max_minutes:g}: must be >= 0")
    if f.coefficient_map == "linear" and f.n_basis >= 0 and f.n_basis != f.latent_dim:
        raise InputError(f"--coefficient_map=linear has one basis volume per latent dimension: "
                         f"drop --n_basis={f.n_basis} or set it to --latent_dim={f.latent_dim}")
    data = data_lib.load_particles(particles, box=f.box, invert_contrast=f.invert_contrast)
    patches = None
    if f.noise == "patches":
        if not f.noise_from:
            raise InputError("--noise=patches needs --noise_from=STACK_OR_STAR of noise images")
        patches = data_lib.load_particles_or_stack(f.noise_from, data)
    elif f.noise == "colored" and f.noise_from:
        patches = data_lib.load_particles_or_stack(f.noise_from, data)
    ground_truth = None
    if ground_truth_path:
        truth, truth_px = io.read_volume(ground_truth_path)
        ground_truth = data_lib.match_reference(truth, truth_px, data, ground_truth_path)
    config = loop.TrainConfig(
        output_dir=output_dir, max_steps=f.max_steps, max_minutes=f.max_minutes,
        batch_size=f.batch_size, n_critic=f.n_critic, generator_batches=f.generator_batches,
        gp_weight=f.gp_weight, critic_lr=f.critic_lr, generator_lr=f.generator_lr,
        critic_channels=f.critic_channels, critic_batch_statistics=f.critic_batch_statistics,
        symmetry=f.symmetry, latent_dim=f.latent_dim,
        n_basis=f.n_basis, coefficient_map=f.coefficient_map,
        translation_free_basis=f.translation_free_basis,
        positivity_weight=f.positivity_weight, basis_decay=f.basis_decay,
        basis_warmup=f.basis_warmup,
        basis_start_scale=f.basis_start_scale, mask_radius=f.mask_radius,
        initial_volume=f.initial_volume,
        noise=f.noise, shift_std_A=f.shift_std_A, lowpass_start=f.lowpass_start,
        lowpass_fraction=f.lowpass_fraction, mixed_precision=f.mixed_precision,
        ema_decay=f.ema_decay, final_lr_fraction=f.final_lr_fraction, seed=f.seed,
        strategy=f.strategy, cpu_replicas=f.cpu_replicas, checkpoint_every=f.checkpoint_every,
        summary_every=f.summary_every,
        flags={k: v for k, v in f.flag_values_dict().items() if not k.startswith("help")
               and k in _TRAIN_FLAG_NAMES})
    trainer = loop.Trainer(config, data, ground_truth=ground_truth, patches=patches, log=log)
    record = trainer.run()
    if not trainer.is_chief:
        return
    out = [f"trained {record['step']} steps in {record['wall_seconds']:.0f} s; wrote:",
           f"  {record['outputs']['volume']}  (volume, {data.pixel_size:.3f} A/voxel)",
           f"  {record['outputs']['checkpoints']}/",
           f"  {record['outputs']['logs']}/  (tensorboard --logdir {record['outputs']['logs']})",
           f"  {os.path.join(output_dir, 'run.json')}"]
    if "fsc" in record:
        fsc = record["fsc"]
        out.append(f"  {os.path.join(output_dir, 'fsc.csv')}, fsc.png: FSC 0.5 at "
                   f"{fsc['resolution_0.5_A']:.1f} A ({fsc['fraction_0.5']:.2f} of Nyquist), "
                   f"0.143 at {fsc['resolution_0.143_A']:.1f} A")
    print("\n".join(out), flush=True)


_TRAIN_FLAG_NAMES = {
    "particles", "output_dir", "max_steps", "max_minutes", "batch_size", "n_critic",
    "generator_batches", "gp_weight", "critic_lr", "generator_lr", "critic_channels",
    "critic_batch_statistics", "symmetry", "latent_dim", "n_basis", "coefficient_map",
    "translation_free_basis",
    "positivity_weight", "basis_decay", "basis_warmup", "basis_start_scale", "mask_radius",
    "initial_volume",
    "mixed_precision", "box", "invert_contrast", "shift_std_A", "lowpass_start",
    "lowpass_fraction", "ema_decay", "final_lr_fraction", "ground_truth", "strategy",
    "cpu_replicas", "checkpoint_every", "summary_every", "noise", "noise_from", "seed",
    "demo_particles", "demo_box", "demo_snr_db"}
