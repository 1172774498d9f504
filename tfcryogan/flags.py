"""Command-line flags, defined once here and shared by the ``bin/`` entry points.

Only ``bin/`` scripts call these ``define_*`` functions and read ``FLAGS``; library code receives
plain values.
"""

from absl import flags

FLAGS = flags.FLAGS


def define_noise_flags():
    """``--noise`` and ``--noise_from``: the noise model (simulation and training)."""
    flags.DEFINE_enum("noise", "white", ["none", "white", "colored", "patches"],
                      "Noise model: none; white Gaussian; colored Gaussian with the radially "
                      "averaged power spectrum of the background of --noise_from images; patches: "
                      "real noise images drawn from --noise_from.")
    flags.DEFINE_string("noise_from", None,
                        "STAR file or .mrcs stack of real images for --noise=colored|patches.")


def define_seed_flag():
    flags.DEFINE_integer("seed", 0, "Random seed: the same seed and flags give the same result.")


def define_volume_source_flags():
    """Where the density comes from: maps, an atomic model, or the built-in phantom."""
    flags.DEFINE_string("volume", None,
                        "Map(s) to project: an .mrc file, a comma-separated list, or a folder of "
                        ".mrc/.map files (each particle draws one; its index + 1 is written as "
                        "rlnClassNumber). 'phantom' uses the built-in synthetic molecule at --box "
                        "and --pixel_size.")
    flags.DEFINE_string("atomic_model", None,
                        "Atomic model (.pdb/.cif) to turn into a density map instead of --volume "
                        "(needs --box, --pixel_size, --model_resolution).")
    flags.DEFINE_integer("box", None, "Box size in pixels for --atomic_model or the phantom.")
    flags.DEFINE_float("pixel_size", None,
                       "Pixel size in A. Overrides the map header (required when it says 0).")
    flags.DEFINE_float("model_resolution", 3.0,
                       "Resolution in A of the density computed from --atomic_model.")


def define_ctf_flags():
    """CTF source for simulated particles."""
    flags.DEFINE_bool("ctf", True, "Apply a CTF (--noctf: pure projections).")
    flags.DEFINE_string("ctf_from", None,
                        "Draw CTF rows at random from this STAR/.cs file or CTFFIND-style table "
                        "(micrograph, 1.0, DefocusU, DefocusV, angle, ...).")
    flags.DEFINE_float("defocus_min_A", 10000.0, "Smallest defocus U (A, underfocus positive).")
    flags.DEFINE_float("defocus_max_A", 25000.0, "Largest defocus U (A).")
    flags.DEFINE_float("astigmatism_A", 0.0, "Largest |DefocusU - DefocusV| (A).")
    flags.DEFINE_float("voltage_kv", 300.0, "Acceleration voltage (kV).")
    flags.DEFINE_float("cs_mm", 2.7, "Spherical aberration (mm).")
    flags.DEFINE_float("amplitude_contrast", 0.1, "Amplitude contrast (fraction).")
    flags.DEFINE_float("bfactor", 0.0, "CTF B-factor (A^2) of drawn CTFs.")
    flags.DEFINE_float("phase_shift", 0.0, "Phase shift (degrees) of drawn CTFs.")


def define_simulate_flags():
    """All flags of ``bin/simulate``."""
    define_volume_source_flags()
    define_ctf_flags()
    define_noise_flags()
    define_seed_flag()
    flags.DEFINE_integer("n_particles", 1000, "Number of particles (ignored with --poses_from).")
    flags.DEFINE_float("snr_db", 0.0,
                       "Signal-to-noise ratio in dB: 10 log10(var(clean CTF-modulated images over "
                       "the whole box) / var(noise)).")
    flags.DEFINE_float("shift_std_A", 0.0, "Standard deviation of random origins (A per axis).")
    flags.DEFINE_string("poses_from", None,
                        "STAR file: one image per row with that row's angles, origins and CTF "
                        "(as relion_project --ang).")
    flags.DEFINE_string("output", None, "Output STAR file; the stack is written beside it as "
                                        ".mrcs and a .json records the simulation.")
    flags.DEFINE_integer("batch_size", 256, "Images per batch.")
    flags.mark_flag_as_required("output")
