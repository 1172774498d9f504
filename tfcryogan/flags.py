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
    flags.DEFINE_list("class_fractions", None,
                      "Share of the particles drawn from each map, one number per map in the "
                      "order the maps are listed (a folder: by file name), e.g. 0.3,0.7; "
                      "normalised to sum 1. Default: equal shares.")
    flags.DEFINE_string("poses_from", None,
                        "STAR file: one image per row with that row's angles, origins and CTF "
                        "(as relion_project --ang).")
    flags.DEFINE_string("output", None, "Output STAR file; the stack is written beside it as "
                                        ".mrcs and a .json records the simulation.")
    flags.DEFINE_integer("batch_size", 256, "Images per batch.")
    flags.mark_flag_as_required("output")


def define_train_flags():
    """All flags of ``bin/train``: one per :class:`~tfcryogan.training.config.TrainConfig` field
    that is offered as a flag, with that field's default, help and choices."""
    from tfcryogan.training import config  # pylint: disable=import-outside-toplevel
    for field in config.flag_fields():
        meta = field.metadata
        name, default, text = field.name, field.default, meta["help"]
        kind = config.value_type(field)
        if meta["choices"]:
            flags.DEFINE_enum(name, default, list(meta["choices"]), text)
        elif kind is bool:
            flags.DEFINE_bool(name, default, text)
        elif kind is int:
            flags.DEFINE_integer(name, default, text)
        elif kind is float:
            flags.DEFINE_float(name, default, text)
        else:
            flags.DEFINE_string(name, default, text)
    flags.mark_flags_as_required(["particles", "output_dir"])


def define_evaluate_flags():
    """All flags of ``bin/evaluate``."""
    flags.DEFINE_string("map", None,
                        "Map to evaluate (.mrc/.map), e.g. a reconstruction. Several maps (a "
                        "comma-separated list or a folder) with --references: precision/recall "
                        "mode.")
    flags.DEFINE_string("reference", None, "Ground-truth map to compare with.")
    flags.DEFINE_string("references", None,
                        "Several ground-truth maps (comma-separated list or folder, e.g. "
                        "conformations): each map is compared with each reference; writes "
                        "precision (each map's best reference) and recall (each reference's best "
                        "map).")
    flags.DEFINE_string("output_dir", None, "Folder for fsc.csv, fsc.png, aligned.mrc and "
                                            "evaluation.json (created if needed).")
    flags.DEFINE_bool("align", True,
                      "Search the rotation, hand (mirror) and shift that superpose the map on the "
                      "reference before the FSC; --noalign compares the maps as they are (maps "
                      "already in one frame, e.g. RELION refinements against their reference).")
    flags.DEFINE_float("pixel_size", None,
                       "Voxel size in A of all maps, overriding their headers (needed when the "
                       "reference's header says 0).")
    flags.DEFINE_float("mask_radius_A", None,
                       "Radius in A of a soft spherical mask applied to both maps before the FSC "
                       "(and used for the alignment). Default: no mask, the whole box.")
    flags.DEFINE_float("mask_edge_A", None, "Width in A of the mask's cosine edge (default 3 "
                                            "voxels).")
    flags.DEFINE_float("threshold_A", None,
                       "Precision/recall mode: a map and a reference match when their FSC "
                       "resolution is at most this many A. Default: report resolutions only.")
    flags.DEFINE_float("fsc_threshold", 0.5,
                       "Precision/recall mode: FSC threshold of the pairwise resolution.")
    flags.DEFINE_integer("n_rotations", 4000,
                         "Alignment: rotations per hand in the global search (~15 degree grid).")
    flags.mark_flag_as_required("output_dir")


def define_export_flags():
    """All flags of ``bin/export``."""
    flags.DEFINE_string("run_dir", None, "A bin/train output folder (run.json + checkpoints/).")
    flags.DEFINE_string("export_dir", None,
                        "Model folder in TF Serving's layout, e.g. export/betagal: the SavedModel "
                        "goes to its next integer version, export/betagal/<version>/, and "
                        "export/models.config is rewritten to list every model.")
    flags.DEFINE_string("serving_base_path", None,
                        "The export root as TF Serving sees it (e.g. /models in a container) for "
                        "models.config; default its absolute path here.")
    flags.mark_flags_as_required(["run_dir", "export_dir"])


def define_sample_flags():
    """All flags of ``bin/sample``."""
    define_seed_flag()
    flags.DEFINE_string("model", None, "An exported SavedModel version folder, "
                                       "export/NAME/<version>.")
    flags.DEFINE_integer("n", 8, "Volumes to sample (z ~ N(0, I)).")
    flags.DEFINE_string("output_dir", None, "Folder for the .mrc volumes and PNG montages.")
    flags.DEFINE_bool("traverse", False,
                      "Also write volume series along each latent direction (and along the "
                      "principal components of the sampled volumes when the latent space has more "
                      "than 3 dimensions), with a montage of each.")
    flags.DEFINE_integer("traverse_steps", 7, "Volumes per traversal.")
    flags.DEFINE_float("traverse_range", 2.0, "Traversals go from -range to +range (in standard "
                                              "deviations).")
    flags.mark_flags_as_required(["model", "output_dir"])
