"""The conformation generator: latent codes -> volumes (CryoGAN is the case ``latent_dim = 0``).

A volume is a linear combination of basis volumes with coefficients that depend non-linearly on
``z``::

    v(z) = template + sum_k c_k(z) basis_k,      c = MLP(z),  k = 1 .. n_basis

With ``latent_dim = 0`` there is no basis: the generator is one trainable density (initialised to
zero, kept non-negative), the same for every image. Every basis volume goes through the same
output stage: symmetrisation (RELION's Cn/Dn conventions) and a spherical support mask, which are
linear, so every generated volume is symmetric and zero outside the support.

Why this form: projection is linear, so the central slice of ``v(z)`` is the same combination of
the slices of the basis volumes. A batch then needs ``1 + n_basis`` 3D Fourier transforms (not one
per image) and ``O((1 + n_basis) N^2)`` work per image, which keeps Multi-CryoGAN's step within a
small factor of CryoGAN's (``bench/multi.py`` measures it against a per-image volume decoder).
Non-negativity of ``v(z)`` beyond the template is encouraged by :meth:`negativity` (a penalty).
"""

import keras
import tensorflow as tf

from tfcryogan.physics import fourier, symmetry as symmetry_lib


class NonNegative(keras.constraints.Constraint):
    """Clip to >= 0 after each optimiser update (the positivity constraint)."""

    def __call__(self, w):
        return tf.maximum(w, 0.0)


def support_mask(box, radius_fraction):
    """``[N, N, N]`` float32 sphere of radius ``radius_fraction * N`` voxels about ``N // 2``."""
    return tf.cast(fourier.centred_radius_3d(box) <= radius_fraction * box, tf.float32)


class ConformationGenerator(keras.Model):
    """``z [B, latent_dim] -> volumes``.

    Args:
      box: volume size ``N`` (voxels).
      latent_dim: size of ``z``; 0 for a single volume (CryoGAN).
      symmetry: ``C1``, ``Cn`` or ``Dn`` (RELION's axes).
      mask_radius: support radius as a fraction of the box.
      n_basis: basis volumes besides the template (default ``2 * latent_dim + 2``; 0 when
        ``latent_dim == 0``).
      hidden: width of the coefficient MLP.
    Call:
      ``z`` ``[B, latent_dim]`` float32 -> ``[B, N, N, N]`` float32 volumes (``[1, N, N, N]`` when
      ``latent_dim == 0``: one volume for all images).
    """

    def __init__(self, box, latent_dim=0, symmetry="C1", mask_radius=0.45, n_basis=None,
                 hidden=64, **kwargs):
        super().__init__(**kwargs)
        self.box = int(box)
        self.latent_dim = int(latent_dim)
        self.symmetry = str(symmetry)
        self.mask_radius = float(mask_radius)
        symmetry_lib.parse_symmetry(self.symmetry)
        if n_basis is None:
            n_basis = 0 if self.latent_dim == 0 else 2 * self.latent_dim + 2
        self.n_basis = int(n_basis) if self.latent_dim > 0 else 0
        self.hidden = int(hidden)
        self.template = self.add_weight(shape=(self.box,) * 3, initializer="zeros",
                                        constraint=NonNegative(), name="template")
        if self.n_basis:
            self.basis = self.add_weight(shape=(self.n_basis,) + (self.box,) * 3,
                                         initializer="zeros", name="basis")
            self.coefficient_net = keras.Sequential(
                [keras.layers.Dense(self.hidden, activation="tanh"),
                 keras.layers.Dense(self.hidden, activation="tanh"),
                 keras.layers.Dense(self.n_basis)], name="coefficients")
            self.coefficient_net.build((None, self.latent_dim))

    @property
    def num_volumes(self):
        """``1 + n_basis``: the template and the basis volumes."""
        return 1 + self.n_basis

    def basis_volumes(self):
        """Template and basis volumes after symmetrisation and masking, ``[1 + K, N, N, N]``."""
        raw = self.template[None]
        if self.n_basis:
            raw = tf.concat([raw, self.basis], axis=0)
        return symmetry_lib.symmetrize(raw, self.symmetry) * support_mask(self.box,
                                                                          self.mask_radius)

    def coefficients(self, z):
        """``[B, 1 + K]`` coefficients of the basis volumes for codes ``z`` (first column 1)."""
        z = tf.convert_to_tensor(z, tf.float32)
        ones = tf.ones([tf.shape(z)[0], 1])
        if not self.n_basis:
            return ones
        return tf.concat([ones, self.coefficient_net(z)], axis=1)

    def call(self, z):
        basis = self.basis_volumes()
        if not self.n_basis:
            return basis
        return tf.tensordot(self.coefficients(z), basis, axes=1)

    def negativity(self, z):
        """Mean negative density of the volumes of ``z`` (a penalty; 0 for CryoGAN)."""
        if not self.n_basis:
            return tf.constant(0.0)
        return tf.reduce_mean(tf.nn.relu(-self(z)))

    def get_config(self):
        return {"box": self.box, "latent_dim": self.latent_dim, "symmetry": self.symmetry,
                "mask_radius": self.mask_radius, "n_basis": self.n_basis, "hidden": self.hidden,
                "name": self.name}
