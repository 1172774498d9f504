"""Noise models (none, white Gaussian, coloured Gaussian from a radial power spectrum, real noise
patches) as objects shared by the simulation (``bin/simulate``) and the training, and the SNR.

Every model draws *unit-variance* noise images; the caller scales them (``bin/simulate`` by the
sigma its ``--snr_db`` asks for, training by the learned noise level).

SNR definition: ``SNR = var(clean CTF-modulated images over the whole box) / var(noise)``,
``SNR_dB = 10 log10(SNR)``; the signal variance is the mean over images of each image's variance
over the box (no disc mask: CryoBench's definition, not ASPIRE's).

Radial power spectra are float32 ``[R]`` with ``R = radial_bins(box)``: the noise power per pixel at
integer frequency radius ``r`` (cycles per box), normalised so that white noise of variance
``sigma^2`` has a flat spectrum equal to ``sigma^2``.
"""

import math

import tensorflow as tf

from tfcryogan.physics import fourier


def radial_bins(box):
    """Number of integer radial frequency bins of a ``box x box`` half-plane spectrum."""
    return int(math.ceil(math.sqrt((box // 2) ** 2 + (box // 2) ** 2))) + 1


def signal_variance(images):
    """Mean over images of each image's variance over the box; ``images`` ``[B, N, N]`` -> scalar."""
    return tf.reduce_mean(tf.math.reduce_variance(images, axis=[-2, -1]))


def sigma_for_snr(signal_var, snr_db):
    """Noise standard deviation giving ``snr_db`` (decibels) for a signal variance ``signal_var``."""
    return tf.sqrt(tf.convert_to_tensor(signal_var, tf.float32) / 10.0 ** (snr_db / 10.0))


def colored_noise(shape, radial_psd, seed, sigma=None):
    """Gaussian noise ``[B, N, N]`` with the radial power spectrum ``radial_psd``.

    Args:
      shape: ``[B, N, N]``.
      radial_psd: ``[R]`` float32 noise power per pixel against integer frequency radius
        (``estimate_radial_psd``); ``R >= radial_bins(N)``.
      seed: ``[2]`` int tensor.
      sigma: if given, the noise is rescaled so that its expected per-pixel standard deviation is
        ``sigma`` (only the spectrum's shape is kept).
    Returns:
      ``[B, N, N]`` float32 noise.
    """
    box = shape[-1]
    psd = tf.convert_to_tensor(radial_psd, tf.float32)
    if sigma is not None:
        psd = psd / _mean_power(psd, box) * tf.square(tf.convert_to_tensor(sigma, tf.float32))
    amplitude = tf.sqrt(tf.maximum(tf.gather(psd, fourier.radial_index(box)), 0.0))
    white = tf.random.stateless_normal(shape, seed=seed)
    spectrum = tf.signal.rfft2d(white) * tf.cast(amplitude, tf.complex64)
    return tf.signal.irfft2d(spectrum, fft_length=[box, box])


def _mean_power(psd, box):
    """Per-pixel variance of noise with radial spectrum ``psd`` on a ``box`` grid."""
    full = tf.gather(psd, fourier.radial_index(box))
    # Half-plane columns 1 .. ceil(N/2)-1 stand for two frequencies each.
    n_half = box // 2 + 1
    weight = tf.concat([[1.0], tf.fill([n_half - 2], 2.0), [1.0 if box % 2 == 0 else 2.0]], 0)
    return tf.reduce_sum(full * weight[None, :]) / float(box * box)


def background_mask(box, radius_fraction=0.4):
    """``[N, N]`` float32: 1 outside a centred disc of radius ``radius_fraction * N`` pixels (the
    background of a particle image), 0 inside."""
    c = float(fourier.image_origin(box))
    r = tf.cast(tf.range(box), tf.float32) - c
    rr = tf.sqrt(r[:, None] ** 2 + r[None, :] ** 2)
    return tf.cast(rr > radius_fraction * box, tf.float32)


def estimate_radial_psd(images, radius_fraction=0.4):
    """Radially averaged noise power spectrum of particle images' background.

    The pixels outside a disc of radius ``radius_fraction * N`` (the particle) are kept, their mean
    removed per image, and the periodogram ``|F|^2 / n_background`` averaged over images and rings.
    An even box's Nyquist row and column are left out of a ring that has other frequencies:
    images resampled to the grid have nothing there (``fourier.fourier_crop`` drops the unpaired
    frequency), and counting them would make the outer rings' noise too weak.

    Args:
      images: ``[B, N, N]`` float32 particle images (or pure noise images).
      radius_fraction: particle disc radius as a fraction of the box.
    Returns:
      ``[radial_bins(N)]`` float32 power per pixel; white noise of variance ``s^2`` gives ``s^2``.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    box = images.shape[-1]
    mask = background_mask(box, radius_fraction)
    count = tf.reduce_sum(mask)
    mean = tf.reduce_sum(images * mask, axis=[-2, -1], keepdims=True) / count
    background = (images - mean) * mask
    power = tf.reduce_mean(tf.abs(tf.signal.rfft2d(background)) ** 2, axis=0) / count
    rings = tf.reshape(fourier.radial_index(box), [-1])
    bins = radial_bins(box)
    power = tf.reshape(power, [-1])
    kx, ky = fourier.half_plane_frequencies(box)
    inner = tf.reshape(tf.cast((tf.abs(kx) < box / 2) & (tf.abs(ky) < box / 2), tf.float32),
                       [-1])

    def ring_mean(weight):
        hits = tf.math.unsorted_segment_sum(weight, rings, bins)
        total = tf.math.unsorted_segment_sum(power * weight, rings, bins)
        return total / tf.maximum(hits, 1.0), hits

    every, _ = ring_mean(tf.ones_like(power))
    without_nyquist, hits = ring_mean(inner)
    return tf.where(hits > 0, without_nyquist, every)


NOISE_KINDS = ("none", "white", "colored", "patches")


class NoiseModel:
    """Unit-variance noise for ``[B, N, N]`` images.

    ``kind`` names the model (one of :data:`NOISE_KINDS`); ``needs_patches`` says whether
    :meth:`sample` needs real noise images (``patches``) for each draw."""

    kind = None
    needs_patches = False

    def sample(self, shape, seed, patches=None):
        """Noise images ``shape`` ``[B, N, N]`` float32 of unit variance per pixel (in
        expectation), from the stateless ``seed`` (``[2]`` int) or, for real patches, from
        ``patches`` ``[B, N, N]`` (the images themselves; ``seed`` is then unused)."""
        raise NotImplementedError


class NoNoise(NoiseModel):
    """Noise-free images (simulation only: real particles are never noise-free)."""

    kind = "none"

    def sample(self, shape, seed, patches=None):
        return tf.zeros(shape, tf.float32)


class WhiteNoise(NoiseModel):
    """White Gaussian noise."""

    kind = "white"

    def sample(self, shape, seed, patches=None):
        return tf.random.stateless_normal(shape, seed=seed)


class ColoredNoise(NoiseModel):
    """Gaussian noise with a radially averaged power spectrum (the shape of ``radial_psd``,
    ``[R]`` with ``R >= radial_bins(N)``, e.g. :func:`estimate_radial_psd` of real particles'
    background), scaled to unit variance per pixel."""

    kind = "colored"

    def __init__(self, radial_psd):
        self.radial_psd = tf.constant(radial_psd, tf.float32)

    def sample(self, shape, seed, patches=None):
        return colored_noise(shape, self.radial_psd, seed, sigma=1.0)


class PatchNoise(NoiseModel):
    """Real noise images (e.g. empty micrograph areas), each made zero-mean and unit-variance: the
    spectrum and statistics of real noise, whatever its model."""

    kind = "patches"
    needs_patches = True

    def sample(self, shape, seed, patches=None):
        if patches is None:
            raise ValueError("PatchNoise.sample needs the noise patches of the batch")
        return fourier.normalize_images(tf.convert_to_tensor(patches, tf.float32))


def make_noise_model(kind, radial_psd=None):
    """The :class:`NoiseModel` called ``kind`` (``radial_psd`` for ``colored``)."""
    if kind == "colored":
        if radial_psd is None:
            raise ValueError("colored noise needs a radial power spectrum")
        return ColoredNoise(radial_psd)
    models = {"none": NoNoise, "white": WhiteNoise, "patches": PatchNoise}
    if kind not in models:
        raise ValueError(f"noise kind must be one of {', '.join(NOISE_KINDS)}, not {kind!r}")
    return models[kind]()
