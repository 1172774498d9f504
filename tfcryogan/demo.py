"""The built-in demo data set: ``bin/train --particles=demo`` (``configs/demo.flags``).

The phantom (:mod:`tfcryogan.phantoms`) at 32 px and 4 A/px, 8,000 particles at uniform random
poses with 4 A shifts, CTFs (1-2.5 um defocus, 300 A of astigmatism, B 50 A^2) and white noise at
0 dB: made in seconds, reconstructed without poses in a few minutes on a laptop CPU, with the
phantom as the ground truth. No download.
"""

import os

from tfcryogan import io, phantoms, synthesis

BOX = 32
PIXEL_SIZE = 4.0
N_PARTICLES = 8000
SNR_DB = 0.0


def demo_particles(folder, seed=0, log=None):
    """Make the demo data set in ``folder`` (once; later calls reuse it).

    Returns:
      ``(star_path, truth_path)``: the RELION 3.1 STAR file of the particles and the phantom's map.
    """
    star = os.path.join(folder, "particles.star")
    truth = os.path.join(folder, "truth.mrc")
    if os.path.exists(star) and os.path.exists(truth):
        return star, truth
    if log:
        log(f"making the demo data set: {N_PARTICLES} particles of the built-in phantom in "
            f"{folder}")
    volume = phantoms.phantom(BOX)
    io.write_volume(truth, volume, PIXEL_SIZE)
    ctf = synthesis.CtfSpec(defocus_min_a=10000, defocus_max_a=25000, astigmatism_a=300,
                            bfactor=50.0)
    particles = synthesis.random_particles(N_PARTICLES, seed, 1, ctf, shift_std_a=4.0)
    synthesis.simulate(volume[None], PIXEL_SIZE, particles,
                       synthesis.NoiseSpec(kind="white", snr_db=SNR_DB), star, seed=seed)
    return star, truth
