"""Gold-standard resolution of a reconstruction without a ground truth (RELION's convention).

Two halves of the particles are reconstructed independently; the FSC between the two half maps
at 0.143 estimates the resolution of their average (Rosenthal & Henderson 2003; Scheres & Chen
2012). A pose-free half map is defined only up to a rotation, a reflection and a shift, so half 2
is aligned to half 1 first (:func:`tfcryogan.evaluation.align.align`).

Two curves are reported, as RELION's post-processing does:

- *unmasked*: the whole box;
- *masked*: both halves multiplied by a soft solvent mask made from their average (low-passed to
  15 A or 4 pixels, thresholded at 15% of its maximum, dilated by 3 voxels, with a 3-voxel cosine
  edge), corrected for the correlation the mask itself adds by phase randomisation (Chen et al.
  2013): beyond the shell where the unmasked FSC falls below 0.8 the half maps' phases are
  randomised, the masked FSC of the randomised maps measures what the mask alone contributes,
  and ``(FSC_masked - FSC_random) / (1 - FSC_random)`` is reported from two shells further on.
"""

import math
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from tfcryogan.evaluation import fsc as fsc_lib
from tfcryogan.evaluation import report
from tfcryogan.physics import fourier

#: Solvent mask: low-pass (A, at least 4 pixels), threshold (fraction of the maximum), dilation
#: and soft edge (voxels), as RELION's relion_mask_create is commonly run.
MASK_LOWPASS_A = 15.0
MASK_THRESHOLD = 0.15
MASK_EXTEND = 3
MASK_SOFT_EDGE = 3


def _dilate(mask, voxels):
    """Binary dilation of ``[N, N, N]`` by ``voxels`` steps of a 3x3x3 cube."""
    x = tf.convert_to_tensor(mask, tf.float32)[None, ..., None]
    for _ in range(int(voxels)):
        x = tf.nn.max_pool3d(x, ksize=3, strides=1, padding="SAME")
    return x[0, ..., 0]


def solvent_mask(volume, pixel_size):
    """A soft mask around the density of ``volume`` ``[N, N, N]`` (see the module docstring):
    float32 ``[N, N, N]`` in [0, 1]."""
    volume = tf.convert_to_tensor(volume, tf.float32)
    n = volume.shape[-1]
    resolution = max(MASK_LOWPASS_A, 4.0 * pixel_size)
    smooth = fourier.gaussian_lowpass(volume, n * pixel_size / resolution, 3)
    mask = tf.cast(smooth >= MASK_THRESHOLD * tf.reduce_max(smooth), tf.float32)
    mask = _dilate(mask, MASK_EXTEND)
    soft = mask
    previous = mask
    for k in range(1, MASK_SOFT_EDGE + 1):
        grown = _dilate(previous, 1)
        value = 0.5 * (1.0 + math.cos(math.pi * k / (MASK_SOFT_EDGE + 1)))
        soft = soft + value * (grown - previous)
        previous = grown
    return soft


def randomize_phases(volume, from_shell, seed):
    """``volume`` with the phases of its Fourier components at shells ``>= from_shell`` replaced
    by uniform random ones (amplitudes kept); float32 ``[N, N, N]``."""
    volume = tf.convert_to_tensor(volume, tf.float32)
    n = volume.shape[-1]
    spectrum = tf.signal.rfft3d(volume)
    radius = tf.sqrt(fourier.squared_frequency(n, 3))
    phase = tf.random.stateless_uniform(spectrum.shape, [seed, 3], 0.0, 2.0 * math.pi)
    rotate = tf.where(radius >= from_shell, tf.complex(tf.cos(phase), tf.sin(phase)),
                      tf.complex(1.0, 0.0))
    return tf.signal.irfft3d(spectrum * rotate, fft_length=[n] * 3)


@dataclass
class GoldStandard:
    """The gold-standard FSC of two half maps (see :func:`gold_standard`).

    Attributes:
      half1, half2: ``[N, N, N]`` float32 maps; ``half2`` aligned onto ``half1``.
      average: their mean (the reconstruction).
      mask: the soft solvent mask of the masked curve.
      fsc_unmasked, fsc_masked: ``[N // 2 + 1]`` curves (masked: corrected by phase
        randomisation); fsc_masked_raw, fsc_random: the masked curve before the correction and
        that of the randomised halves.
      alignment: what the alignment of half 2 found (``report.compare_maps``'s ``alignment``).
    """

    half1: np.ndarray
    half2: np.ndarray
    average: np.ndarray
    mask: np.ndarray
    fsc_unmasked: np.ndarray
    fsc_masked: np.ndarray
    fsc_masked_raw: np.ndarray
    fsc_random: np.ndarray
    alignment: dict
    pixel_size: float

    @property
    def box(self):
        return int(self.half1.shape[0])

    def resolutions(self):
        """``{"unmasked": {...}, "masked": {...}}``, each with ``resolution_0143_A``,
        ``resolution_05_A`` and the same as fractions of Nyquist."""
        out = {}
        for name, curve in (("unmasked", self.fsc_unmasked), ("masked", self.fsc_masked)):
            r0143, f0143 = fsc_lib.resolution(curve, self.box, self.pixel_size, 0.143)
            r05, f05 = fsc_lib.resolution(curve, self.box, self.pixel_size, 0.5)
            out[name] = {"resolution_0143_A": float(r0143), "resolution_05_A": float(r05),
                         "fraction_0143": float(f0143), "fraction_05": float(f05)}
        return out

    def record(self):
        """JSON-ready: the resolutions and the alignment of half 2."""
        return {**self.resolutions(), "alignment": self.alignment}

    def curves(self):
        """``{label: curve}`` for CSV files and plots."""
        return {"gold_unmasked": self.fsc_unmasked, "gold_masked": self.fsc_masked,
                "gold_masked_uncorrected": self.fsc_masked_raw,
                "gold_phase_randomised": self.fsc_random}


def gold_standard(half1, half2, pixel_size, align=True, align_options=None, seed=0):
    """Align ``half2`` onto ``half1`` (rotation, reflection, shift) and measure their FSC.

    Args:
      half1, half2: ``[N, N, N]`` float32 half maps of independent halves of the particles.
      pixel_size: A per voxel.
      align: superpose half 2 on half 1 first (pose-free halves need it); False when they are
        already in one frame.
      align_options: extra arguments of ``align`` (e.g. ``n_rotations``).
      seed: seed of the phase randomisation.
    Returns:
      :class:`GoldStandard`.
    """
    half1 = np.asarray(half1, np.float32)
    compared = report.compare_maps(half2, half1, pixel_size, align=align,
                                   align_options=align_options)
    half2 = np.asarray(compared.pop("aligned_volume"), np.float32)
    unmasked = np.asarray(compared["fsc"]["fsc"], np.float64)
    average = 0.5 * (half1 + half2)
    mask = solvent_mask(average, pixel_size)
    raw = fsc_lib.fsc(half1 * mask, half2 * mask).numpy().astype(np.float64)
    below = np.flatnonzero(unmasked[1:] < 0.8)
    start = int(below[0]) + 1 if below.size else len(unmasked)
    random = np.zeros_like(raw)
    masked = raw.copy()
    if start < len(unmasked):
        r1 = randomize_phases(half1, start, seed)
        r2 = randomize_phases(half2, start, seed + 1)
        random = fsc_lib.fsc(r1 * mask, r2 * mask).numpy().astype(np.float64)
        beyond = np.arange(len(raw)) >= start + 2
        denominator = np.maximum(1.0 - random, 1e-6)
        masked = np.where(beyond, (raw - random) / denominator, raw)
    return GoldStandard(half1, half2, average, mask.numpy(), unmasked, masked, raw, random,
                        compared["alignment"], float(pixel_size))
