"""The conformation generator: latent codes -> volumes (CryoGAN is the case ``latent_dim = 0``).

A volume is a linear combination of basis volumes with coefficients that depend on ``z``::

    v(z) = template + sum_k c_k(z) basis_k,   k = 1 .. n_basis

    coefficient_map "mlp":    c = standardise(MLP(z))   (non-linear in z; n_basis free)
    coefficient_map "linear" (default): c = z           (n_basis = latent_dim: the linear
                                                         subspace model of cryoSPARC's 3D
                                                         variability analysis)

(either way the coefficients have zero mean and unit variance over ``z ~ N(0, I)``: the template
is the mean conformation and the basis volumes carry the variation; see
``ConformationGenerator.coefficients``).

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
from tfcryogan.run_record import recorded_settings


class NonNegative(keras.constraints.Constraint):
    """Clip to >= 0 after each optimiser update (the positivity constraint)."""

    def __call__(self, w):
        return tf.maximum(w, 0.0)


def support_mask(box, radius_fraction):
    """``[N, N, N]`` float32 sphere of radius ``radius_fraction * N`` voxels about ``N // 2``."""
    return tf.cast(fourier.centred_radius_3d(box) <= radius_fraction * box, tf.float32)


COEFFICIENT_MAPS = ("mlp", "linear")


def basis_count(latent_dim, n_basis=None, coefficient_map="linear"):
    """Basis volumes besides the template: 0 for ``latent_dim == 0``; ``latent_dim`` for the
    linear map; for the MLP ``n_basis`` or by default ``latent_dim + 1`` (``bench/multi.py
    --part=cost``, box 64, latent 2: a step costs 2.8x CryoGAN's with the linear map's 2 basis
    volumes, 3.4x with the MLP's 3)."""
    if coefficient_map not in COEFFICIENT_MAPS:
        raise ValueError(f"coefficient_map must be one of {COEFFICIENT_MAPS}, not "
                         f"{coefficient_map!r}")
    if int(latent_dim) == 0:
        return 0
    if coefficient_map == "linear":
        if n_basis is not None and n_basis >= 0 and int(n_basis) != int(latent_dim):
            raise ValueError(f"the linear coefficient map has one basis volume per latent "
                             f"dimension: n_basis={n_basis} but latent_dim={latent_dim}")
        return int(latent_dim)
    return int(latent_dim) + 1 if n_basis is None or n_basis < 0 else int(n_basis)


def _smooth_noise(box, seed, sigma):
    """Gaussian white noise ``[N, N, N]`` smoothed by a Gaussian of ``sigma`` voxels."""
    noise = tf.random.stateless_normal([box, box, box], tf.constant([seed, 77], tf.int64))
    k = tf.cast(fourier.fft_frequencies(box), tf.float32)
    kx = tf.cast(tf.range(box // 2 + 1), tf.float32)
    k2 = k[:, None, None] ** 2 + k[None, :, None] ** 2 + kx[None, None, :] ** 2
    filt = tf.exp(-2.0 * (3.14159265 * sigma / box) ** 2 * k2)
    return tf.signal.irfft3d(tf.signal.rfft3d(noise) * tf.cast(filt, tf.complex64),
                             fft_length=[box] * 3)


def random_initial_volume(box, mask_radius, seed, smoothness=None):
    """A random, smooth, non-negative density inside the support: an asymmetric starting model.

    Starting from zero, every projection of the volume looks alike and the critic's feedback,
    averaged over random orientations, grows a spherically symmetric blob that breaks its symmetry
    only slowly (the classic trap of pose-free reconstruction). A random smooth start has
    distinct views from the first step, as random initial models do in ab initio refinement.

    Args:
      box: ``N``; mask_radius: support radius as a fraction of ``N``; seed: int.
      smoothness: Gaussian smoothing width in voxels (default ``N / 12``).
    Returns:
      ``[N, N, N]`` float32, maximum 1, zero outside ``0.8 * mask_radius * N``.
    """
    smooth = _smooth_noise(box, seed, smoothness or box / 12.0)
    smooth = tf.nn.relu(smooth - tf.reduce_mean(smooth))
    smooth = smooth * support_mask(box, 0.8 * mask_radius)
    return smooth / (tf.reduce_max(smooth) + 1e-12)


def volume_spread(volumes):
    """How much ``[B, N, N, N]`` volumes differ: the rms deviation from their mean volume over the
    rms of that mean (scalar float32; 0 for identical volumes)."""
    v = tf.convert_to_tensor(volumes, tf.float32)
    mean = tf.reduce_mean(v, axis=0)
    return tf.sqrt(tf.reduce_mean(tf.square(v - mean)) / (tf.reduce_mean(tf.square(mean)) + 1e-12))


def random_basis_volumes(count, box, mask_radius, seed, scale):
    """Smooth, signed, random starting basis volumes for Multi-CryoGAN.

    With zero basis volumes every ``z`` gives the same volume, the simulated images do not depend
    on ``z``, and the gradients reaching the coefficient network are zero: the generator first
    learns the mean and only slowly (if ever) the variation. Small random deformation directions
    break that symmetry from the first step. They fill the support, not only the starting
    template (which is itself random and soon moves): on the adk coverage bench (one run each),
    modulations of the starting template instead ended with a spread of 11% against 29%.

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


def without_translations(basis, template, mask):
    """``basis`` ``[K, N, N, N]`` minus its projection on the infinitesimal translations of
    ``template`` ``[N, N, N]`` (its three central-difference gradients, times ``mask``).

    A basis volume along ``d template / d x`` moves the whole particle by an amount that depends
    on ``z``: indistinguishable, in the images, from the particle shifts the simulator already
    draws, so the critic barely penalises it. On the adenylate kinase coverage bench 6-26% of the
    low-resolution variance of the samples was such translations (true frames: 1%). The
    directions are treated as constants (no gradient through them); a zero template removes
    nothing."""
    directions = []
    for axis in range(3):
        d = 0.5 * (tf.roll(template, -1, axis) - tf.roll(template, 1, axis)) * mask
        d = tf.reshape(tf.stop_gradient(d), [-1])
        for q in directions:  # Gram-Schmidt
            d -= tf.reduce_sum(d * q) * q
        directions.append(d * tf.math.rsqrt(tf.reduce_sum(d * d) + 1e-12))
    flat = tf.reshape(basis, [tf.shape(basis)[0], -1])
    q = tf.stack(directions)  # [3, N^3], orthonormal rows (or zero)
    flat -= tf.matmul(tf.matmul(flat, q, transpose_b=True), q)
    return tf.reshape(flat, tf.shape(basis))


class ConformationGenerator(keras.Model):
    """``z [B, latent_dim] -> volumes``.

    Args:
      box: volume size ``N`` (voxels).
      latent_dim: size of ``z``; 0 for a single volume (CryoGAN).
      symmetry: ``C1``, ``Cn`` or ``Dn`` (RELION's axes).
      mask_radius: support radius as a fraction of the box.
      n_basis: basis volumes besides the template (``latent_dim`` for the linear map; for the
        MLP default ``latent_dim + 1``; 0 when ``latent_dim == 0``).
      hidden: width of the coefficient MLP.
      coefficient_map: ``"linear"`` (default: the coefficients are ``z`` itself, one basis volume
        per latent dimension) or ``"mlp"`` (standardised MLP of ``z``).
      translation_free: remove the template's translations from the basis volumes (see
        :func:`without_translations`).
    Call:
      ``z`` ``[B, latent_dim]`` float32 -> ``[B, N, N, N]`` float32 volumes (``[1, N, N, N]`` when
      ``latent_dim == 0``: one volume for all images).
    """

    def __init__(self, box, latent_dim=0, symmetry="C1", mask_radius=0.45, n_basis=None,
                 hidden=64, coefficient_map="linear", translation_free=False, **kwargs):
        super().__init__(**kwargs)
        self.box = int(box)
        self.latent_dim = int(latent_dim)
        self.symmetry = str(symmetry)
        self.mask_radius = float(mask_radius)
        symmetry_lib.parse_symmetry(self.symmetry)
        self.coefficient_map = str(coefficient_map)
        self.n_basis = basis_count(self.latent_dim, n_basis, self.coefficient_map)
        self.hidden = int(hidden)
        self.translation_free = bool(translation_free)
        self.template = self.add_weight(shape=(self.box,) * 3, initializer="zeros",
                                        constraint=NonNegative(), name="template")
        if self.n_basis:
            self.basis = self.add_weight(shape=(self.n_basis,) + (self.box,) * 3,
                                         initializer="zeros", name="basis")
        if self.n_basis and self.coefficient_map == "mlp":
            self.coefficient_net = keras.Sequential(
                [keras.layers.Dense(self.hidden, activation="tanh"),
                 keras.layers.Dense(self.hidden, activation="tanh"),
                 keras.layers.Dense(self.n_basis)], name="coefficients")
            self.coefficient_net.build((None, self.latent_dim))
            # Fixed codes over which the coefficients are standardised (see coefficients()):
            # antithetic pairs (z, -z), so that their mean is exactly the prior's.
            half = tf.random.stateless_normal([self.REFERENCE_CODES // 2, self.latent_dim],
                                              tf.constant([20251, 7], tf.int64))
            self.reference_z = tf.concat([half, -half], axis=0)

    REFERENCE_CODES = 1024

    @property
    def num_volumes(self):
        """``1 + n_basis``: the template and the basis volumes."""
        return 1 + self.n_basis

    def basis_volumes(self):
        """Template and basis volumes after symmetrisation and masking (and, if
        ``translation_free``, with the template's translations removed from the basis volumes),
        ``[1 + K, N, N, N]``."""
        raw = self.template[None]
        if self.n_basis:
            raw = tf.concat([raw, self.basis], axis=0)
        mask = support_mask(self.box, self.mask_radius)
        volumes = symmetry_lib.symmetrize(raw, self.symmetry) * mask
        if self.n_basis and self.translation_free:
            volumes = tf.concat(
                [volumes[:1], without_translations(volumes[1:], volumes[0], mask)], axis=0)
        return volumes

    def coefficient_normalization(self):
        """``(mean [K], inverse_std [K])`` of the coefficient MLP's outputs over 1024 fixed codes
        ``z ~ N(0, I)`` (a function of the weights only, not of the batch); ``(0, 1)`` for the
        linear map, whose coefficients are ``z``."""
        if self.coefficient_map == "linear":
            return tf.zeros([self.n_basis]), tf.ones([self.n_basis])
        mean, var = tf.nn.moments(self.coefficient_net(self.reference_z), axes=[0])
        return mean, tf.math.rsqrt(var + 1e-6)

    def coefficients(self, z, normalization=None):
        """``[B, 1 + K]`` coefficients of the basis volumes for codes ``z`` (first column 1);
        ``normalization``: :meth:`coefficient_normalization`'s result when already computed (the
        critic updates of a step share one).

        The MLP's outputs are standardised (zero mean, unit variance over fixed reference codes),
        so the basis volumes carry only the variation about the template and its whole size: the
        mean conformation cannot drift into the basis, and the spread cannot vanish through the
        MLP. Unstandardised, the MLP's outputs collapsed to nearly constant values (standard
        deviations 0.01-0.05) while the basis volumes grew to act as a second template, and the
        samples became one conformation (adk coverage bench, seed 1: spread 2%).

        The linear map's coefficients are ``z`` itself: Gaussian, so they cannot bunch on one
        conformation with the variance carried by a tail, which the standardised MLP still
        could (adk coverage bench, seed 0: 12 of 16 samples on one conformation)."""
        z = tf.convert_to_tensor(z, tf.float32)
        ones = tf.ones([tf.shape(z)[0], 1])
        if not self.n_basis:
            return ones
        if self.coefficient_map == "linear":
            return tf.concat([ones, z], axis=1)
        mean, inverse_std = normalization or self.coefficient_normalization()
        return tf.concat([ones, (self.coefficient_net(z) - mean) * inverse_std], axis=1)

    def call(self, z):
        basis = self.basis_volumes()
        if not self.n_basis:
            return basis
        return tf.tensordot(self.coefficients(z), basis, axes=1)

    def spread(self, z):
        """How much the volumes of codes ``z`` ``[B, latent_dim]`` differ: the rms deviation from
        their mean volume over the rms of that mean (scalar; 0 for CryoGAN). A generator that has
        collapsed to one conformation has a spread near 0."""
        if not self.n_basis:
            return tf.constant(0.0)
        return volume_spread(self(z))

    def negativity(self, z):
        """Mean negative density of the volumes of ``z`` (a penalty; 0 for CryoGAN)."""
        if not self.n_basis:
            return tf.constant(0.0)
        return tf.reduce_mean(tf.nn.relu(-self(z)))

    def get_config(self):
        return {"box": self.box, "latent_dim": self.latent_dim, "symmetry": self.symmetry,
                "mask_radius": self.mask_radius, "n_basis": self.n_basis, "hidden": self.hidden,
                "coefficient_map": self.coefficient_map,
                "translation_free": self.translation_free, "name": self.name}


def generator_from_settings(settings, name):
    """The :class:`ConformationGenerator` a run's settings describe (``run.json``'s ``settings``
    or ``Trainer._settings()``: ``box``, ``latent_dim``, ``symmetry``, ``mask_radius``,
    ``n_basis``, ``hidden``, ``coefficient_map``, ``translation_free_basis``), named ``name``.
    The training loop and the export build their generators here, so both read a setting the
    same way; one that older runs did not record takes the value it had then (the MLP map, no
    translation removal)."""
    s = recorded_settings(settings)
    n_basis = s.get("n_basis")
    return ConformationGenerator(
        s["box"], s["latent_dim"], s.get("symmetry", "C1"), s.get("mask_radius", 0.45),
        n_basis=None if n_basis is None or n_basis < 0 else n_basis, hidden=s.get("hidden", 64),
        coefficient_map=s["coefficient_map"],
        translation_free=s["translation_free_basis"], name=name)
