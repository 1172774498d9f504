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


def define_train_flags():
    """All flags of ``bin/train``."""
    define_noise_flags()
    define_seed_flag()
    flags.DEFINE_string("particles", None,
                        "Particles to train on: a RELION 3.0/3.1 STAR or cryoSPARC .cs file with "
                        "CTF parameters (no poses needed), or 'demo' for the built-in synthetic "
                        "data set (made in --output_dir/demo_data on first use).")
    flags.DEFINE_string("output_dir", None,
                        "Run folder: volume.mrc, checkpoints/, logs/ (TensorBoard), run.json, "
                        "fsc.csv/png. Re-running the same command resumes from the last "
                        "checkpoint.")
    flags.DEFINE_integer("max_steps", 20000, "Volume (generator) steps to train for.")
    flags.DEFINE_float("max_minutes", 0.0,
                       "Wall-clock budget in minutes (0: none); the run ends cleanly with "
                       "outputs written.")
    flags.DEFINE_integer("batch_size", 32, "Global batch (images per critic and volume update).")
    flags.DEFINE_integer("n_critic", 4, "Critic updates per volume update.")
    flags.DEFINE_integer("generator_batches", -1,
                         "The volume update uses this many batches of simulated images (1 to "
                         "n_critic + 1): a less noisy gradient for little extra time. -1: 1 for "
                         "CryoGAN, n_critic + 1 for Multi-CryoGAN (--latent_dim > 0), whose "
                         "conformational spread needs it.")
    flags.DEFINE_float("gp_weight", 10.0, "Gradient penalty weight (per-image norm).")
    flags.DEFINE_float("critic_lr", 3e-4, "Critic Adam learning rate.")
    flags.DEFINE_float("generator_lr", 3e-3, "Volume/generator Adam learning rate.")
    flags.DEFINE_integer("critic_channels", 16, "Channels of the critic's first stage.")
    flags.DEFINE_integer("critic_batch_statistics", -1,
                         "The critic also sees the spread of learned image features over groups "
                         "of this many images (minibatch statistics), so it can tell when "
                         "simulated conformations vary too much, too little or in the wrong "
                         "ways; 0: each image is scored on its own; -1: 8 for Multi-CryoGAN "
                         "(--latent_dim > 0), 0 for CryoGAN. At most the batch per replica.")
    flags.DEFINE_string("symmetry", "C1", "Point group of the volume: C1, Cn, Dn (RELION axes).")
    flags.DEFINE_integer("latent_dim", 0,
                         "Latent dimension of the conformation generator (0: one volume, "
                         "CryoGAN; > 0: Multi-CryoGAN).")
    flags.DEFINE_integer("n_basis", -1,
                         "Multi-CryoGAN: basis volumes besides the template (each adds one 3D "
                         "transform per step and its share of every slice); -1: latent_dim "
                         "(the only choice for --coefficient_map=linear), latent_dim + 1 for mlp.")
    flags.DEFINE_enum("coefficient_map", "linear", ["linear", "mlp"],
                      "Multi-CryoGAN: how z sets the basis coefficients. 'linear' (default): "
                      "the coefficients are z, one basis volume per latent dimension (the linear "
                      "subspace model of 3D variability analysis); 'mlp': a standardised MLP of "
                      "z (non-linear, one more basis volume by default, slower).")
    flags.DEFINE_bool("translation_free_basis", False,
                      "Multi-CryoGAN: remove the template's translations from the basis volumes "
                      "(a z-dependent shift of the whole particle looks like the particle shifts "
                      "the simulator already draws, so the critic barely penalises it).")
    flags.DEFINE_float("positivity_weight", 10.0,
                       "Multi-CryoGAN: weight of the penalty on negative density in generated "
                       "volumes (the template itself is clipped at 0).")
    flags.DEFINE_float("basis_decay", 0.0,
                       "Multi-CryoGAN: decoupled weight decay of the basis volumes (each step "
                       "they shrink by generator_lr * basis_decay): variation the critic does "
                       "not ask for fades. 0: off.")
    flags.DEFINE_float("basis_warmup", 0.0,
                       "Multi-CryoGAN: the basis volumes' learning rate ramps linearly from 0 to "
                       "the generator's over this fraction of the run (the template first). "
                       "0: off.")
    flags.DEFINE_float("basis_start_scale", 0.2,
                       "Multi-CryoGAN: largest value of the random starting basis volumes, as a "
                       "fraction of the starting template's maximum (the initial spread).")
    flags.DEFINE_float("mask_radius", 0.45, "Support sphere radius as a fraction of the box.")
    flags.DEFINE_string("initial_volume", "random",
                        "Starting density: 'random' (smooth random, asymmetric), 'zero', or a map "
                        "file (e.g. a low-resolution model; resampled to the training grid).")
    flags.DEFINE_integer("box", None,
                         "Training box in pixels: the particles are Fourier-cropped to it (same "
                         "field of view, larger pixels). Default: their own box.")
    flags.DEFINE_bool("invert_contrast", False,
                      "The particles have raw micrograph contrast (protein dark): invert them.")
    flags.DEFINE_float("shift_std_A", -1.0,
                       "Initial standard deviation (A) of the simulated particles' shifts; it is "
                       "learned. Negative: one pixel.")
    flags.DEFINE_float("lowpass_start", 4.0,
                       "Initial Gaussian low-pass width (cycles per box) on the critic inputs; "
                       "relaxed to none over the first --lowpass_fraction of the run. 0: no "
                       "low-pass.")
    flags.DEFINE_float("lowpass_fraction", 0.8,
                       "Fraction of the run (by --max_steps or the --max_minutes budget, "
                       "whichever is further along, as for the learning rates) over which the "
                       "critic's low-pass is relaxed (coarse to fine).")
    flags.DEFINE_float("ema_decay", 0.995, "Decay of the moving average that gives volume.mrc.")
    flags.DEFINE_float("final_lr_fraction", 0.1,
                       "Learning rates decay (cosine) to this fraction of their initial values "
                       "by the end of the run (--max_steps or --max_minutes, whichever first).")
    flags.DEFINE_string("ground_truth", None,
                        "A map to compare with (FSC after alignment): fsc.csv, fsc.png, and "
                        "figures in run.json.")
    flags.DEFINE_enum("strategy", "auto", ["auto", "one_device", "mirrored", "multiworker"],
                      "tf.distribute strategy: auto = MirroredStrategy over local GPUs; "
                      "multiworker reads TF_CONFIG.")
    flags.DEFINE_bool("mixed_precision", False,
                      "Critic in float16 with dynamic loss scaling (for GPUs); the volume, FFTs "
                      "and simulator stay float32/complex64.")
    flags.DEFINE_integer("cpu_replicas", 1,
                         "Split the CPU into this many logical devices for MirroredStrategy.")
    flags.DEFINE_integer("checkpoint_every", 500, "Steps between checkpoints and volume.mrc.")
    flags.DEFINE_integer("summary_every", 50, "Steps between TensorBoard summaries.")
    flags.DEFINE_bool("restart", False, "Discard an existing run in --output_dir instead of "
                                        "resuming it.")
    flags.DEFINE_integer("demo_particles", 8000, "Particles of the built-in demo data set.")
    flags.DEFINE_integer("demo_box", 32, "Box of the built-in demo data set.")
    flags.DEFINE_float("demo_snr_db", 0.0, "SNR (dB) of the built-in demo data set.")
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
                      "reference before the FSC (--noalign or --no_align: compare as is).")
    flags.DEFINE_bool("no_align", False, "Same as --noalign: compare the maps as they are.")
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
