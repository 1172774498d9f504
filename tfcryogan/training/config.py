"""Every training setting in one place: its default, its help text and its check.

``bin/train``'s flags (:func:`tfcryogan.flags.define_train_flags`), the trainer, the model
constructors and ``run.json``'s ``settings`` all derive from :class:`TrainConfig`: a default is
written once, here. Settings marked ``flag=False`` are not offered on the command line (no user
would choose them) but benches may set them (``dataclasses.replace``).

Units: Angstrom, minutes; steps count generator (volume) updates.
"""

import dataclasses
import math
import typing
from typing import Optional

from tfcryogan.errors import InputError
from tfcryogan.physics import noise as noise_lib
from tfcryogan.physics import symmetry as symmetry_lib


def setting(default, help_text, *, flag=True, choices=None, check=None, fixed=False):
    """A :class:`TrainConfig` field.

    Args:
      default: the default value (the only place it is written).
      help_text: the flag's help: what it does and when a user would change it.
      flag: offered as a ``bin/train`` flag.
      choices: allowed values of a string setting.
      check: ``check(value) -> None or a problem`` (e.g. ``"must be >= 1"``).
      fixed: a resumed run must keep the value its checkpoint was made with.
    """
    return dataclasses.field(default=default, metadata={
        "help": help_text, "flag": flag, "choices": choices, "check": check, "fixed": fixed})


def at_least(lower):
    return lambda v: None if v >= lower else f"must be >= {lower:g}"


def positive(v):
    return None if v > 0 else "must be > 0"


def fraction(v):
    return None if 0 < v <= 1 else "must be a fraction in (0, 1]"


def _symmetry(v):
    try:
        symmetry_lib.parse_symmetry(v)
    except ValueError:
        return "expected C1, Cn or Dn (n >= 1), RELION's convention"
    return None


def _box(v):
    return None if v is None or v >= 8 else "must be at least 8"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A training run: the particles, the model, the schedule and the outputs (see each field's
    help). ``TrainConfig(...).validate()`` raises an :class:`~tfcryogan.errors.InputError` naming
    the first bad setting as its flag, e.g. ``--batch_size=0: must be >= 1``."""

    # ---------------------------------------------------------------- inputs and outputs
    particles: Optional[str] = setting(
        None, "Particles to reconstruct: a RELION 3.0/3.1 STAR or cryoSPARC .cs file with CTF "
        "parameters (no poses needed), or 'demo' for the built-in synthetic data set (made in "
        "OUTPUT_DIR/demo_data on first use).")
    output_dir: Optional[str] = setting(
        None, "Run folder: volume.mrc, checkpoints/, logs/ (TensorBoard), run.json, fsc.csv/png. "
        "Re-running the same command resumes from the last checkpoint.")
    ground_truth: Optional[str] = setting(
        None, "A map of the right answer, if you have one (simulated data): the FSC against it "
        "after alignment goes to fsc.csv, fsc.png and run.json.")
    initial_volume: str = setting(
        "random", "Starting density: 'random' (smooth random), 'zero', or a map file, e.g. a "
        "low-resolution model you trust (resampled to the training grid).")
    box: Optional[int] = setting(
        None, "Training box in pixels: the particles are Fourier-cropped to it (same field of "
        "view, larger pixels). Smaller is faster; the map's Nyquist is 2 x the new pixel size. "
        "Default: the particles' own box.", check=_box, fixed=True)
    invert_contrast: bool = setting(
        False, "Set it when the particles have raw micrograph contrast (protein dark); RELION- "
        "and cryoSPARC-extracted particles have protein bright and need no flag.")
    skip_nonfinite: bool = setting(
        False, "Train without particle images that hold NaN or inf values (their count is "
        "printed) instead of stopping at the first one.")
    noise: str = setting(
        "white", "Noise model of the simulated images: 'white' Gaussian; 'colored' Gaussian with "
        "the power spectrum of the particles' background (or of --noise_from images) when the "
        "noise is not white; 'patches': real noise images from --noise_from.",
        choices=noise_lib.NOISE_KINDS, fixed=True)
    noise_from: Optional[str] = setting(
        None, "STAR file or .mrcs stack of pure-noise images (e.g. empty micrograph areas) for "
        "--noise=patches, or as the spectrum's source for --noise=colored.")

    # ---------------------------------------------------------------- the model
    symmetry: str = setting(
        "C1", "Point group of the molecule: C1, Cn or Dn (RELION's axes). A known symmetry "
        "(D2 for beta-galactosidase) makes the reconstruction faster and better.",
        check=_symmetry, fixed=True)
    mask_radius: float = setting(
        0.45, "Radius of the spherical support as a fraction of the box: density outside it is "
        "zero. Lower it for a small particle in a large box.", check=fraction)
    latent_dim: int = setting(
        0, "0: one map (CryoGAN). > 0: continuous conformations (Multi-CryoGAN) with this many "
        "latent dimensions: a generator z -> map that bin/export makes a SavedModel.",
        check=at_least(0), fixed=True)
    half_maps: bool = setting(
        True, "CryoGAN: train two independent maps on the two halves of the particles "
        "(RELION's rlnRandomSubset, or a seeded random split) and report their gold-standard "
        "FSC, the resolution estimate without a ground truth. --nohalf_maps trains one map on "
        "all particles in about half the time per step. Multi-CryoGAN always trains one "
        "generator.", fixed=True)

    # ---------------------------------------------------------------- the run
    max_steps: int = setting(
        20000, "Volume steps to train for (each after --n_critic critic steps).",
        check=at_least(1))
    max_minutes: float = setting(
        0.0, "Wall-clock budget in minutes (0: none): the run ends cleanly with its outputs "
        "written, and the schedules (low-pass, learning rates) follow the budget.",
        check=at_least(0))
    batch_size: int = setting(
        32, "Images per critic and volume update, over all devices. Larger gives less noisy "
        "updates at a proportional cost per step.", check=at_least(1), fixed=True)
    n_critic: int = setting(
        4, "Critic updates per volume update.", check=at_least(1), fixed=True)
    seed: int = setting(
        0, "Random seed: the same seed, flags and data give the same run on one device.",
        fixed=True)
    critic_lr: float = setting(
        3e-4, "Critic learning rate (Adam). Lower it with --generator_lr if training diverges.",
        check=positive)
    generator_lr: float = setting(
        3e-3, "Volume learning rate (Adam).", check=positive)
    lowpass_start: float = setting(
        4.0, "Coarse to fine: the critic first sees images Gaussian low-passed to this width "
        "(cycles per box), relaxed to the Nyquist disc over most of the run. 0 starts at full "
        "resolution, e.g. from a good --initial_volume.", check=at_least(0))
    shift_std_A: float = setting(
        -1.0, "Starting spread (A, per axis) of the simulated particles' shifts; it is learned. "
        "Set it to the particles' centring error if you know it. Negative: one pixel.")

    # ---------------------------------------------------------------- devices and outputs
    strategy: str = setting(
        "auto", "tf.distribute strategy: auto (MirroredStrategy over every local GPU), "
        "one_device, mirrored, multiworker (several machines; reads TF_CONFIG).",
        choices=("auto", "one_device", "mirrored", "multiworker"))
    cpu_replicas: int = setting(
        1, "Split a CPU into this many logical devices for MirroredStrategy (to check the "
        "mirrored path without GPUs).", check=at_least(1))
    mixed_precision: bool = setting(
        False, "Compute the critic in float16 with dynamic loss scaling (GPUs with tensor "
        "cores); the volume, FFTs and simulator stay float32.")
    checkpoint_every: int = setting(
        500, "Steps between checkpoints (and refreshed volume.mrc, run.json): what a killed "
        "run can lose.", check=at_least(1))
    restart: bool = setting(
        False, "Discard the run already in --output_dir instead of resuming it.")

    # ---------------------------------------------------------------- not offered as flags
    lowpass_fraction: float = setting(
        0.8, "Fraction of the run (steps or --max_minutes, whichever is further along) over "
        "which the critic's Gaussian low-pass relaxes to none (the Nyquist disc stays).",
        flag=False, check=fraction)
    final_lr_fraction: float = setting(
        0.1, "The learning rates decay (cosine) to this fraction of their start by the end of "
        "the run.", flag=False, check=fraction)
    gp_weight: float = setting(
        10.0, "Gradient penalty weight (norm per image).", flag=False, check=at_least(0))
    penalty_every: int = setting(
        -1, "The gradient penalty is applied on every this many critic updates, weighted by the "
        "updates it stands for (lazy regularisation; 1: every update); -1: 4 for CryoGAN, 1 for "
        "Multi-CryoGAN (see penalty_interval).", flag=False,
        check=lambda v: None if v == -1 or v >= 1 else "must be -1 or >= 1")
    jit_compile: bool = setting(
        False, "Compile each replica's adversarial step with XLA.", flag=False)
    beta_1: float = setting(0.5, "Adam beta_1 of both optimisers.", flag=False)
    beta_2: float = setting(0.9, "Adam beta_2 of both optimisers.", flag=False)
    critic_channels: int = setting(
        8, "Channels of the critic's first stage (doubling per stage). Small because at a "
        "fixed budget the steps a narrow critic buys give a better map than a wider critic "
        "does (bench/RESULTS.md).", flag=False,
        check=at_least(1), fixed=True)
    critic_batch_statistics: int = setting(
        -1, "Images per group of the critic's minibatch statistics (0: none); -1: 8 for "
        "Multi-CryoGAN, none for CryoGAN (see batch_statistics_group).", flag=False,
        check=at_least(-1), fixed=True)
    generator_batches: int = setting(
        -1, "Critic batches' worth of simulated images in each generator update (1 to "
        "n_critic + 1); -1: 1 for CryoGAN, n_critic + 1 for Multi-CryoGAN (see "
        "generator_batch_count).", flag=False)
    positivity_weight: float = setting(
        10.0, "Multi-CryoGAN: weight of the penalty on negative density in generated maps.",
        flag=False, check=at_least(0))
    learn_shift: bool = setting(
        True, "The spread of the simulated shifts is learned.", flag=False)
    ema_decay: float = setting(
        0.995, "Decay of the moving average of the weights that gives the output map.",
        flag=False, check=fraction)
    summary_every: int = setting(
        50, "Steps between TensorBoard summaries.", flag=False, check=at_least(1))

    # ---------------------------------------------------------------- derived values
    def batch_statistics_group(self, replica_batch):
        """Images per group of the critic's minibatch statistics (0: none).

        Multi-CryoGAN (``latent_dim > 0``) uses groups of 8 by default: a critic that scores
        images one by one sees whether a batch varies in the right ways only through rare
        extreme images, while the spread of learned features over a group shows it directly.
        CryoGAN's one map has no conformational spread to judge. A group never spans two
        replicas (each scores its own slice of the batch), so it is at most ``replica_batch``."""
        setting_ = self.critic_batch_statistics
        group = (8 if self.latent_dim > 0 else 0) if setting_ < 0 else setting_
        return min(group, int(replica_batch))

    def generator_batch_count(self):
        """Critic batches' worth of simulated images in each generator update.

        Multi-CryoGAN uses all ``n_critic + 1`` batches drawn for the step: the gradient that
        spreads the conformations correlates each image's code with the critic's response, a
        much weaker and noisier signal than the one that moves the mean map. CryoGAN uses one."""
        if self.generator_batches < 1:
            return 1 if self.latent_dim == 0 else self.n_critic + 1
        return max(1, min(self.generator_batches, self.n_critic + 1))

    def penalty_interval(self):
        """Critic updates per gradient penalty (see ``losses.lazy_penalty_weights``).

        CryoGAN applies it on every 4th update: the double backward pass it saves buys more
        steps, and at a fixed budget those give a better map than a penalty on every update.
        Multi-CryoGAN applies it on every update: lazily, its samples covered fewer frames of a
        motion (bench/RESULTS.md)."""
        if self.penalty_every < 1:
            return 4 if self.latent_dim == 0 else 1
        return self.penalty_every

    @property
    def trains_halves(self):
        """Whether the run trains two gold-standard halves (CryoGAN with ``half_maps``)."""
        return self.half_maps and self.latent_dim == 0

    def shift_std(self, pixel_size):
        """The simulated shifts' starting spread in A (one pixel when the setting is negative)."""
        return self.shift_std_A if self.shift_std_A >= 0 else float(pixel_size)

    def validate(self):
        """Check every setting; returns ``self`` or raises :class:`InputError` naming the flag."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            meta = f.metadata
            if isinstance(value, float) and not math.isfinite(value):
                raise InputError(f"--{f.name}={value}: must be a finite number")
            if meta["choices"] and value not in meta["choices"]:
                raise InputError(f"--{f.name}={value}: must be one of "
                                 f"{', '.join(meta['choices'])}")
            problem = meta["check"](value) if meta["check"] and value is not None else None
            if problem:
                raise InputError(f"--{f.name}={_text(value)}: {problem}")
        if not self.particles:
            raise InputError("--particles: give the particles (a STAR or .cs file, or 'demo')")
        if not self.output_dir:
            raise InputError("--output_dir: give the run folder")
        if self.noise == "none":
            raise InputError("--noise=none: real particles are noisy; training needs a noise "
                             "model (white, colored or patches)")
        if self.noise == "patches" and not self.noise_from:
            raise InputError("--noise=patches needs --noise_from=STACK_OR_STAR of noise images")
        if self.noise_from and self.noise == "white":
            raise InputError(f"--noise_from={self.noise_from} is used by --noise=colored or "
                             "--noise=patches, not by the default white noise")
        return self

    @classmethod
    def from_values(cls, values):
        """A config from a mapping holding (at least) every flag setting, e.g. parsed flags'
        ``flag_values_dict()``; other keys are ignored."""
        return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls)
                      if f.metadata["flag"] and f.name in values})

    def settings(self):
        """Every setting as a JSON-ready dict (``run.json``'s ``settings``, with the data's grid
        added by the trainer)."""
        return dataclasses.asdict(self)


def flag_fields():
    """The :class:`TrainConfig` fields offered as ``bin/train`` flags, in definition order."""
    return [f for f in dataclasses.fields(TrainConfig) if f.metadata["flag"]]


def value_type(field):
    """The Python type of a :class:`TrainConfig` field's values (``Optional[int]`` -> ``int``)."""
    args = [a for a in typing.get_args(field.type) if a is not type(None)]
    return args[0] if args else field.type


def settings_without_flag():
    """Names of the settings no command-line flag can set (package defaults and bench knobs)."""
    return [f.name for f in dataclasses.fields(TrainConfig) if not f.metadata["flag"]]


def fixed_settings():
    """Names of the settings a resumed run must share with its checkpoint (and the grid)."""
    return [f.name for f in dataclasses.fields(TrainConfig) if f.metadata["fixed"]] + [
        "pixel_size"]


def _text(value):
    return f"{value:g}" if isinstance(value, float) else str(value)
