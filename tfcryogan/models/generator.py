"""The conformation generator: latent codes -> volumes (CryoGAN is the case ``latent_dim = 0``).

A volume is the template plus a linear combination of basis volumes with the code as
coefficients::

    v(z) = template + sum_j z_j basis_j,   j = 1 .. latent_dim,   z ~ N(0, I)

the linear subspace model of cryoSPARC's 3D variability analysis: the template is the mean
conformation and the basis volumes carry the variation. The coefficients are Gaussian, so the
samples cannot bunch on one conformation with the variance carried by a tail. With
``latent_dim = 0`` there is no basis: one trainable density, the same for every image.

Every volume goes through the same output stage: symmetrisation (RELION's Cn/Dn conventions) and
a spherical support mask. Both are linear, so every generated volume is symmetric and zero
outside the support. The template is kept non-negative (clipped after each update); negative
density of ``v(z)`` is discouraged by :meth:`ConformationGenerator.negativity` (a penalty).

Why this form: projection is linear, so the central slice of ``v(z)`` is the same combination of
the slices of the basis volumes. A batch then needs ``1 + latent_dim`` 3D Fourier transforms (not
one per image) and ``O((1 + latent_dim) N^2)`` work per image.
"""

import keras
import tensorflow as tf

from tfcryogan.physics import fourier, symmetry as symmetry_lib

#: Largest absolute value of the random starting basis volumes, as a fraction of the starting
#: template's maximum (1): the initial spread of the conformations.
BASIS_START_SCALE = 0.2


class NonNegative(keras.constraints.Constraint):
    """Clip to >= 0 after each optimiser update (the positivity constraint)."""

    def __call__(self, w):
        return tf.maximum(w, 0.0)


def support_mask(box, radius_fraction):
    """``[N, N, N]`` float32 sphere of radius ``radius_fraction * N`` voxels about ``N // 2``."""
    return tf.cast(fourier.centred_radius_3d(box) <= radius_fraction * box, tf.float32)


def _smooth_noise(box, seed, sigma):
    """Gaussian white noise ``[N, N, N]`` blurred by a Gaussian of ``sigma`` voxels."""
    noise = tf.random.stateless_normal([box, box, box], tf.constant([seed, 77], tf.int64))
    return fourier.gaussian_blur(noise, sigma, ndim=3)


def random_initial_volume(box, mask_radius, seed, smoothness=None):
    """A random, smooth, non-negative density inside the support: an asymmetric starting model.

    From zero, every projection of the volume looks alike and the critic's feedback, averaged
    over random orientations, grows a spherically symmetric blob that breaks its symmetry only
    slowly (the classic trap of pose-free reconstruction). A random smooth start has distinct
    views from the first step, as random initial models do in ab initio refinement.

    Args:
      box: ``N``; mask_radius: support radius as a fraction of ``N``; seed: int.
      smoothness: Gaussian blur in voxels (default ``N / 12``).
    Returns:
      ``[N, N, N]`` float32, maximum 1, zero outside ``0.8 * mask_radius * N``.
    """
    smooth = _smooth_noise(box, seed, smoothness or box / 12.0)
    smooth = tf.nn.relu(smooth - tf.reduce_mean(smooth))
    smooth = smooth * support_mask(box, 0.8 * mask_radius)
    return smooth / (tf.reduce_max(smooth) + 1e-12)


def random_basis_volumes(count, box, mask_radius, seed, scale=BASIS_START_SCALE):
    """Smooth, signed, random starting basis volumes for Multi-CryoGAN.

    With zero basis volumes every ``z`` gives the same volume, the simulated images do not depend
    on ``z`` and no gradient reaches the basis through the code: small random directions of
    variation break that symmetry from the first step. They fill the support (not only the
    starting template, which soon moves).

    Args:
      count: ``K``; box: ``N``; mask_radius: support fraction; seed: int.
      scale: largest absolute value of each volume (density units of the template).
    Returns:
      ``[K, N, N, N]`` float32.
    """
    volumes = []
    for k in range(int(count)):
        smooth = _smooth_noise(box, seed + 1000 * (k + 1), box / 12.0)
        smooth = (smooth - tf.reduce_mean(smooth)) * support_mask(box, 0.8 * mask_radius)
        volumes.append(smooth * (scale / (tf.reduce_max(tf.abs(smooth)) + 1e-12)))
    return tf.stack(volumes)


def volume_spread(volumes):
    """How much ``[B, N, N, N]`` volumes differ: the rms deviation from their mean volume over the
    rms of that mean (scalar float32; 0 for identical volumes)."""
    v = tf.convert_to_tensor(volumes, tf.float32)
    mean = tf.reduce_mean(v, axis=0)
    return tf.sqrt(tf.reduce_mean(tf.square(v - mean)) / (tf.reduce_mean(tf.square(mean)) + 1e-12))


class ConformationGenerator(keras.Model):
    """``z [B, latent_dim] -> volumes [B, N, N, N]`` (see the module docstring).

    Args:
      box: volume size ``N`` (voxels).
      latent_dim: size of ``z``; 0 for a single volume (CryoGAN).
      symmetry: ``C1``, ``Cn`` or ``Dn`` (RELION's axes).
      mask_radius: support radius as a fraction of the box.
    Call:
      ``z`` ``[B, latent_dim]`` float32 -> ``[B, N, N, N]`` float32 volumes (``[1, N, N, N]`` when
      ``latent_dim == 0``: one volume for all images).
    """

    def __init__(self, box, latent_dim, symmetry, mask_radius, **kwargs):
        super().__init__(**kwargs)
        self.box = int(box)
        self.latent_dim = int(latent_dim)
        self.symmetry = str(symmetry)
        self.mask_radius = float(mask_radius)
        symmetry_lib.parse_symmetry(self.symmetry)
        self.template = self.add_weight(shape=(self.box,) * 3, initializer="zeros",
                                        constraint=NonNegative(), name="template")
        if self.latent_dim:
            self.basis = self.add_weight(shape=(self.latent_dim,) + (self.box,) * 3,
                                         initializer="zeros", name="basis")

    def basis_volumes(self):
        """Template and basis volumes after symmetrisation and masking, ``[1 + K, N, N, N]``."""
        raw = self.template[None]
        if self.latent_dim:
            raw = tf.concat([raw, self.basis], axis=0)
        return symmetry_lib.symmetrize(raw, self.symmetry) * support_mask(self.box,
                                                                           self.mask_radius)

    def coefficients(self, z):
        """``[B, 1 + K]`` coefficients of :meth:`basis_volumes` for codes ``z`` ``[B, K]``: 1 for
        the template, then ``z``. (A subclass may map codes differently, e.g. in a bench.)"""
        z = tf.convert_to_tensor(z, tf.float32)
        return tf.concat([tf.ones([tf.shape(z)[0], 1]), z], axis=1)

    def call(self, z):
        basis = self.basis_volumes()
        if not self.latent_dim:
            return basis
        return tf.tensordot(self.coefficients(z), basis, axes=1)

    def spread(self, z):
        """:func:`volume_spread` of the volumes of codes ``z`` ``[B, latent_dim]`` (0 for CryoGAN).
        A generator that has collapsed to one conformation has a spread near 0."""
        if not self.latent_dim:
            return tf.constant(0.0)
        return volume_spread(self(z))

    def negativity(self, z):
        """Mean negative density of the volumes of ``z`` (a penalty; 0 for CryoGAN)."""
        if not self.latent_dim:
            return tf.constant(0.0)
        return tf.reduce_mean(tf.nn.relu(-self(z)))

    def get_config(self):
        return {"box": self.box, "latent_dim": self.latent_dim, "symmetry": self.symmetry,
                "mask_radius": self.mask_radius, "name": self.name}


def build_generator(settings, name):
    """The :class:`ConformationGenerator` a run's settings describe (a dict with ``box``,
    ``latent_dim``, ``symmetry`` and ``mask_radius``: ``run.json``'s ``settings``), named
    ``name``. Training and export build their generators here, so both read them alike."""
    return ConformationGenerator(settings["box"], settings["latent_dim"], settings["symmetry"],
                                 settings["mask_radius"], name=name)
