"""The image formation model: volumes + imaging parameters -> particle images.

``y = CTF * shift(P_A(x)) + noise``: the Fourier-slice projection at RELION rotation ``A``, moved by
minus the RELION origin, multiplied by the CTF in Fourier space, and noise added in real space
(``physics.noise``). Everything is batched, differentiable with respect to the volume, and pure
TensorFlow. :func:`project` makes noise-free images (``bin/simulate``, the export);
:class:`ImageFormation` is the Keras layer the training simulates with: random poses and shifts,
the data set's CTFs, and learned signal and noise levels.
"""

import math

import keras
import tensorflow as tf

from tfcryogan.physics import ctf as ctf_lib
from tfcryogan.physics import projector, rotations, shifts


def project(spectrum, rotations, origins_a, ctf_params, box, pixel_size, volume_index=None,
            coefficients=None):
    """Noise-free particle images from volume spectra.

    Args:
      spectrum: ``[V, P, P, P // 2 + 1]`` complex64 from ``projector.volume_spectrum``.
      rotations: ``[B, 3, 3]`` RELION rotation matrices.
      origins_a: ``[B, 2]`` float32 RELION origins ``(rlnOriginXAngst, rlnOriginYAngst)`` in A;
        the image is the projection moved by minus the origin.
      ctf_params: ``[B, 9]`` float32 CTF rows (``physics.ctf.CTF_COLUMNS``), or None for no CTF.
      box: image size ``N`` in pixels.
      pixel_size: Angstrom per pixel.
      volume_index: optional ``[B]`` int32 volume of each image (heterogeneous data).
      coefficients: optional ``[B, V]`` float32: image ``b`` shows ``sum_v coefficients[b, v]
        volume_v`` (the conformation generator's basis volumes); overrides ``volume_index``.
    Returns:
      ``[B, N, N]`` float32 images (line integrals in voxel units times the CTF), centred at
      ``physics.fourier.image_origin(N)`` as RELION's.
    """
    # Everything is applied to the in-circle frequencies only, then laid out for irfft2d.
    if coefficients is not None and spectrum.shape[0] > 1:
        values = projector.slice_values_mixed(spectrum, rotations, box, coefficients)
    else:
        values = projector.slice_values(spectrum, rotations, box, volume_index)
    kx, ky = projector.circle_frequencies(box)
    move = shifts.origin_to_shift(origins_a, pixel_size, box)
    values = values * shifts.translation_phase_at(move, kx, ky, box)
    if ctf_params is not None:
        values = values * tf.cast(ctf_lib.ctf_values(ctf_params, kx, ky, box, pixel_size),
                                  tf.complex64)
    return tf.signal.irfft2d(projector.to_half_plane(values, box), fft_length=[box, box])


def sample_parameters(seed, batch_size, ctf_rows, shift_std_a):
    """Random imaging parameters for ``batch_size`` images.

    Rotations are uniform on SO(3); origins are Gaussian with standard deviation ``shift_std_a``
    (A) per axis; CTF rows are drawn uniformly, with replacement, from a dataset's own rows.

    Args:
      seed: ``[2]`` int32/int64 tensor (stateless randomness: the same seed gives the same draw).
      batch_size: ``B``.
      ctf_rows: ``[M, 9]`` float32 CTF rows (``CTF_COLUMNS``) to draw from.
      shift_std_a: standard deviation of the origins in A (0 for centred particles).
    Returns:
      dict with ``rotations`` ``[B, 3, 3]``, ``origins`` ``[B, 2]`` (A), ``ctf`` ``[B, 9]`` and
      ``ctf_index`` ``[B]`` int32 (the rows drawn).
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
    ctf_rows = tf.convert_to_tensor(ctf_rows, tf.float32)
    index = tf.random.stateless_uniform([batch_size], seeds[0], 0, tf.shape(ctf_rows)[0],
                                        dtype=tf.int32)
    return {
        "rotations": rotations.random_rotations(batch_size, seeds[1]),
        "origins": shift_std_a * tf.random.stateless_normal([batch_size, 2], seeds[2]),
        "ctf": tf.gather(ctf_rows, index),
        "ctf_index": index,
    }


def replica_slice(x, global_batch):
    """This replica's rows ``[r * b, (r + 1) * b)`` of a global-batch tensor ``x`` (all of it
    outside a ``tf.distribute`` replica context or with one replica).

    Every random draw of the training is made for the global batch and sliced per replica, so the
    result does not depend on how the batch is split across devices."""
    context = tf.distribute.get_replica_context()
    replicas = context.num_replicas_in_sync if context is not None else 1
    if replicas == 1:
        return x
    b = global_batch // replicas
    start = tf.cast(context.replica_id_in_sync_group, tf.int32) * b
    return x[start:start + b]


class ImageFormation(keras.layers.Layer):
    """Simulated particle images of a generator (:meth:`simulate`), with the learned
    image-formation scalars:

    ``y = signal_scale * CTF * shift(P_A(v(z))) + noise_scale * n``

    with ``A`` uniform on SO(3), the shift Gaussian with a learned spread, the CTF rows given (drawn
    from the real data set), ``z ~ N(0, I)`` and ``n`` unit-variance noise of the noise model.

    The scalars are stored as ``log(value) / SCALAR_SPEED``: Adam moves a parameter by about its
    learning rate per step, so these few numbers adapt ``SCALAR_SPEED`` times faster than the
    voxels (a volume that waits for a mis-scaled noise level distorts itself to compensate).

    Args:
      box: image size ``N`` (pixels); pixel_size: A per pixel.
      noise_model: a :class:`tfcryogan.physics.noise.NoiseModel`.
      shift_std_px: starting standard deviation of the shifts (pixels, per axis).
      learn_shift: whether that spread is learned.
    """

    SCALAR_SPEED = 10.0

    def __init__(self, box, pixel_size, noise_model, shift_std_px, learn_shift, **kwargs):
        super().__init__(**kwargs)
        self.box = int(box)
        self.pixel_size = float(pixel_size)
        self.noise_model = noise_model

        def scalar(name, value, trainable=True):
            return self.add_weight(
                shape=(), name=name, trainable=trainable,
                initializer=keras.initializers.Constant(math.log(value) / self.SCALAR_SPEED))

        self.signal_scale_raw = scalar("log_signal_scale", 1.0 / float(self.box))
        self.noise_scale_raw = scalar("log_noise_scale", 1.0)
        self.shift_std_raw = scalar("log_shift_std", max(float(shift_std_px), 1e-2),
                                    trainable=bool(learn_shift))

    def scales(self):
        """The learned scalars: ``signal_scale``, ``noise_scale`` (per-image normalised units)
        and ``shift_std_px`` (pixels)."""
        k = self.SCALAR_SPEED
        return {"signal_scale": tf.exp(k * self.signal_scale_raw),
                "noise_scale": tf.exp(k * self.noise_scale_raw),
                "shift_std_px": tf.exp(k * self.shift_std_raw)}

    def set_scales(self, signal_scale=None, noise_scale=None):
        """Set the signal and/or noise scale (e.g. calibrated from the data before training)."""
        k = self.SCALAR_SPEED
        if signal_scale is not None:
            self.signal_scale_raw.assign(math.log(signal_scale) / k)
        if noise_scale is not None:
            self.noise_scale_raw.assign(math.log(noise_scale) / k)

    def simulate(self, generator, ctf, seed, global_batch, patches=None, spectrum=None):
        """Simulated images for this replica.

        Args:
          generator: a :class:`~tfcryogan.models.generator.ConformationGenerator`.
          ctf: ``[b, 9]`` CTF rows of this replica's images.
          seed: ``[2]`` int64 stateless seed of this draw (the same on every replica).
          global_batch: images over all replicas (``b`` times the number of replicas).
          patches: ``[b, N, N]`` real noise images (for a noise model that needs them).
          spectrum: ``projector.volume_spectrum(generator.basis_volumes())`` when already computed.
        Returns:
          ``[b, N, N]`` float32 images (not yet normalised).
        """
        g = global_batch
        seeds = tf.random.experimental.stateless_split(seed, 5)
        z = replica_slice(tf.random.stateless_normal([g, generator.latent_dim], seeds[0]), g)
        if spectrum is None:
            spectrum = projector.volume_spectrum(generator.basis_volumes())
        rot = replica_slice(rotations.random_rotations(g, seeds[1]), g)
        unit_shift = replica_slice(tf.random.stateless_normal([g, 2], seeds[2]), g)
        scales = self.scales()
        origins = unit_shift * (scales["shift_std_px"] * self.pixel_size)
        clean = project(spectrum, rot, origins, ctf, self.box, self.pixel_size,
                        coefficients=generator.coefficients(z))
        if self.noise_model.needs_patches:
            noise = self.noise_model.sample(tf.shape(clean), seeds[3], patches)
        else:
            noise = replica_slice(self.noise_model.sample([g, self.box, self.box], seeds[3]), g)
        return scales["signal_scale"] * clean + scales["noise_scale"] * noise
