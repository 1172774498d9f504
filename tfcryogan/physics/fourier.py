"""Fourier-space helpers and the image and volume operations built on them, in one place: the
projector, CTF, shifts, noise, the training input, the critic's input and the evaluation all use
these (resample, crop/pad, normalise, Gaussian and Nyquist-disc low-passes).

Image origin: RELION's ``relion_project`` puts the projected volume centre (index ``N // 2`` of the
map) at pixel ``(N + 1) // 2`` of its images: ``N / 2`` for even ``N`` and ``N // 2 + 1`` for odd ``N``
(an asymmetry of RELION's ``CenterFFT``, measured here: a one-pixel shift for odd boxes). We follow it
so that simulated images match RELION's for every box size; see :func:`image_origin`.

Layout: 2D image spectra use the ``rfft2d`` half-plane layout ``[..., N, N // 2 + 1]``: rows are
``ky`` in FFT order (0, 1, ..., N/2 - 1, -N/2, ..., -1), columns are ``kx = 0 .. N // 2``; frequencies
are integers in cycles per box. Volumes are centred at index ``N // 2`` on every axis, images at
``image_origin(N)``; arrays are indexed ``[y, x]`` / ``[z, y, x]``.

Operations that work on images and on volumes take ``ndim`` (2: the last two axes are an image
centred at :func:`image_origin`; 3: the last three are a volume centred at :func:`volume_origin`).
"""

import math

import tensorflow as tf


def fft_frequencies(n):
    """Integer frequencies of an ``n``-point FFT in FFT order, float32 ``[n]`` (cycles per box)."""
    k = tf.range(n, dtype=tf.int32)
    return tf.cast(tf.where(k < (n + 1) // 2, k, k - n), tf.float32)


def half_plane_frequencies(box):
    """The ``rfft2d`` frequency grid of a ``box x box`` image.

    Returns:
      ``(kx, ky)``, each float32 ``[box, box // 2 + 1]``, integer cycles per box; ``kx`` along
      columns (image x), ``ky`` along rows (image y).
    """
    ky = fft_frequencies(box)[:, None]
    kx = tf.cast(tf.range(box // 2 + 1), tf.float32)[None, :]
    shape = [box, box // 2 + 1]
    return tf.broadcast_to(kx, shape), tf.broadcast_to(ky, shape)


def image_origin(box):
    """Pixel index (same for x and y) of the centre of a ``box x box`` image: ``(box + 1) // 2``,
    as in RELION's projections (``box / 2`` for even boxes)."""
    return (box + 1) // 2


def volume_origin(box):
    """Voxel index (same on every axis) of the centre of a ``box^3`` volume: ``box // 2``."""
    return box // 2


def origin(box, ndim):
    """The centre index of an image (``ndim == 2``) or a volume (``ndim == 3``) of size ``box``."""
    if ndim not in (2, 3):
        raise ValueError(f"ndim must be 2 (images) or 3 (volumes), not {ndim}")
    return image_origin(box) if ndim == 2 else volume_origin(box)


def image_rfft(images):
    """Half-plane spectra of centred images.

    Args:
      images: ``[..., N, N]`` float32, origin at ``image_origin(N)``.
    Returns:
      ``[..., N, N // 2 + 1]`` complex64, the spectrum with the origin at the image centre
      (so that a real, centro-symmetric image has a real spectrum).
    """
    c = image_origin(images.shape[-1])
    shifted = tf.roll(images, shift=[-c, -c], axis=[-2, -1])
    return tf.signal.rfft2d(shifted)


def image_irfft(spectra, box):
    """Inverse of :func:`image_rfft`: ``[..., N, N // 2 + 1]`` complex64 -> ``[..., N, N]`` float32
    images with the origin at ``image_origin(N)``."""
    images = tf.signal.irfft2d(spectra, fft_length=[box, box])
    c = image_origin(box)
    return tf.roll(images, shift=[c, c], axis=[-2, -1])


def radial_index(box):
    """Integer radius ``round(sqrt(kx^2 + ky^2))`` of each half-plane frequency, int32
    ``[box, box // 2 + 1]``; radii range over ``0 .. ceil(box / sqrt(2))``."""
    kx, ky = half_plane_frequencies(box)
    return tf.cast(tf.round(tf.sqrt(kx * kx + ky * ky)), tf.int32)


def centred_radius_3d(box):
    """Distance in voxels from the centre ``box // 2`` of each voxel of a ``box^3`` volume,
    float32 ``[box, box, box]``."""
    r = tf.cast(tf.range(box), tf.float32) - float(box // 2)
    z, y, x = tf.meshgrid(r, r, r, indexing="ij")
    return tf.sqrt(z * z + y * y + x * x)


def rfft3d(volumes):
    """Real-to-complex 3D FFT over the last three axes, differentiable.

    TensorFlow registers no gradient for ``tf.signal.rfft3d``; this composes ``rfft2d`` over
    ``(y, x)`` with a complex ``fft`` over ``z`` (both differentiable), which also runs faster on CPU.

    Args:
      volumes: ``[V, Z, Y, X]`` float32.
    Returns:
      ``[V, Z, Y, X // 2 + 1]`` complex64, equal to ``tf.signal.rfft3d(volumes)``.
    """
    planes = tf.signal.rfft2d(volumes)
    planes = tf.transpose(planes, [0, 2, 3, 1])
    planes = tf.signal.fft(planes)
    return tf.transpose(planes, [0, 3, 1, 2])


def interpolate_1d(values, positions):
    """Linear interpolation of ``values`` ``[R]`` (samples at 0, 1, ..., R-1) at float
    ``positions`` ``[...]``, clamped at both ends."""
    values = tf.convert_to_tensor(values, tf.float32)
    n = tf.shape(values)[0]
    pos = tf.clip_by_value(tf.convert_to_tensor(positions, tf.float32), 0.0,
                           tf.cast(n - 1, tf.float32))
    i0 = tf.cast(tf.floor(pos), tf.int32)
    i1 = tf.minimum(i0 + 1, n - 1)
    w = pos - tf.cast(i0, tf.float32)
    return tf.gather(values, i0) * (1.0 - w) + tf.gather(values, i1) * w



def squared_frequency(box, ndim, half=True):
    """``k^2`` (cycles per box, squared) on the FFT grid of a ``box`` image or volume, float32:
    the real-FFT layout ``[N, N // 2 + 1]`` / ``[N, N, N // 2 + 1]`` with ``half``, else the full
    ``[N] * ndim`` grid in FFT order."""
    k = fft_frequencies(box)
    last = tf.cast(tf.range(box // 2 + 1), tf.float32) if half else k
    if ndim == 2:
        return k[:, None] ** 2 + last[None, :] ** 2
    return k[:, None, None] ** 2 + k[None, :, None] ** 2 + last[None, None, :] ** 2


def _gaussian_filter(k2, sigma):
    """``exp(-k2 / (2 sigma^2))`` on a grid of squared frequencies ``k2``; all ones for
    ``sigma <= 0`` (no filter). ``sigma`` may be a tensor."""
    sigma = tf.convert_to_tensor(sigma, tf.float32)
    safe = tf.maximum(sigma, 1e-3)
    return tf.where(sigma > 0, tf.exp(-k2 / (2.0 * safe * safe)), tf.ones_like(k2))


def gaussian_lowpass(x, sigma, ndim=2):
    """Gaussian low-pass ``exp(-k^2 / (2 sigma^2))`` of images or volumes (periodic, by FFT).

    Args:
      x: ``[..., N, N]`` (``ndim == 2``) or ``[..., N, N, N]`` (``ndim == 3``) float32.
      sigma: standard deviation of the filter in cycles per box (scalar, may be a tensor);
        ``sigma <= 0`` means no filter. A blur of ``s`` pixels is ``sigma = N / (2 pi s)``
        (:func:`gaussian_blur`).
    Returns:
      float32, the shape of ``x``. The filter is real and symmetric, so the origin stays put.
    """
    x = tf.convert_to_tensor(x, tf.float32)
    box = x.shape[-1]
    filt = _gaussian_filter(squared_frequency(box, ndim), sigma)
    if ndim == 2:
        return tf.signal.irfft2d(tf.signal.rfft2d(x) * tf.cast(filt, tf.complex64),
                                 fft_length=[box, box])
    return tf.signal.irfft3d(tf.signal.rfft3d(x) * tf.cast(filt, tf.complex64),
                             fft_length=[box] * 3)


def disc_lowpass(images, sigma):
    """Images restricted to the open Nyquist disc ``|k| < N / 2`` and Gaussian low-passed
    (``exp(-k^2 / (2 sigma^2))``, ``sigma`` in cycles per box; ``sigma <= 0``: the disc only).

    What the critic compares, real and simulated alike. The simulator makes signal only inside
    the disc, while real images hold signal and noise in the corners of their square spectrum and,
    once Fourier-cropped, nothing on the Nyquist row and column: outside the disc the two differ
    in ways no map can change, and a critic that sees it scores the map by it.

    Args:
      images: ``[..., N, N]`` float32; sigma: scalar (may be a tensor).
    Returns:
      float32, the shape of ``images``; the filter is real and symmetric (the origin stays put).
    """
    images = tf.convert_to_tensor(images, tf.float32)
    box = images.shape[-1]
    k2 = squared_frequency(box, 2)
    filt = tf.where(k2 < (box / 2.0) ** 2, _gaussian_filter(k2, sigma), tf.zeros_like(k2))
    return tf.signal.irfft2d(tf.signal.rfft2d(images) * tf.cast(filt, tf.complex64),
                             fft_length=[box, box])


def gaussian_blur(x, pixels, ndim=3):
    """Convolution with a Gaussian of standard deviation ``pixels`` (pixels or voxels; 0: none):
    :func:`gaussian_lowpass` at ``sigma = N / (2 pi pixels)`` cycles per box."""
    if pixels <= 0:
        return tf.convert_to_tensor(x, tf.float32)
    return gaussian_lowpass(x, x.shape[-1] / (2.0 * math.pi * pixels), ndim)


def cosine_lowpass(x, cutoff, width=2.0, ndim=3):
    """Low-pass to ``cutoff`` (cycles per box) with a raised-cosine edge ``width`` wide (1 below
    ``cutoff - width / 2``, 0 above ``cutoff + width / 2``), as RELION filters maps to a
    resolution. ``x``: ``[..., N, N]`` / ``[..., N, N, N]`` float32; a map at pixel size ``p``
    filtered to ``R`` A has ``cutoff = N p / R``."""
    x = tf.convert_to_tensor(x, tf.float32)
    box = x.shape[-1]
    k = tf.sqrt(squared_frequency(box, ndim))
    t = tf.clip_by_value((k - (cutoff - 0.5 * width)) / max(width, 1e-6), 0.0, 1.0)
    filt = tf.cast(0.5 * (1.0 + tf.cos(math.pi * t)), tf.complex64)
    if ndim == 2:
        return tf.signal.irfft2d(tf.signal.rfft2d(x) * filt, fft_length=[box, box])
    return tf.signal.irfft3d(tf.signal.rfft3d(x) * filt, fft_length=[box] * 3)


def normalize_images(images):
    """Per-image normalisation: zero mean and unit standard deviation over the last two axes
    (``[..., N, N]`` float32). The last stage of what the critic sees of every image
    (``CryoGAN.preprocess``)."""
    mean, var = tf.nn.moments(images, axes=[-2, -1], keepdims=True)
    return (images - mean) * tf.math.rsqrt(var + 1e-8)


def _crop_or_pad(x, n_out, ndim, centre):
    """Crop or zero-pad the last ``ndim`` axes of ``x`` to ``n_out`` keeping index ``centre(n)``
    at ``centre(n_out)``."""
    n = x.shape[-1]
    if n == n_out:
        return x
    c_in, c_out = centre(n), centre(n_out)
    lead = x.shape.rank - ndim
    if n > n_out:
        s = c_in - c_out
        return x[(Ellipsis,) + (slice(s, s + n_out),) * ndim]
    before = c_out - c_in
    return tf.pad(x, [[0, 0]] * lead + [[before, n_out - n - before]] * ndim)


def crop_or_pad(x, box_out, ndim=2):
    """Centre-crop or zero-pad images (``ndim == 2``, centre :func:`image_origin`) or volumes
    (``ndim == 3``, centre :func:`volume_origin`) to ``box_out``, keeping the centre pixel at the
    centre of the output. ``x``: ``[..., N, N]`` / ``[..., N, N, N]``."""
    x = tf.convert_to_tensor(x)
    return _crop_or_pad(x, box_out, ndim, lambda n: origin(n, ndim))


def _drop_nyquist(spectrum, ndim):
    """Zero the first index (frequency ``-N / 2``, which has no partner) of every axis of an even,
    centred spectrum (``fftshift`` layout), so that what is kept is an exactly symmetric band."""
    n = spectrum.shape[-1]
    if n % 2:
        return spectrum
    keep = tf.concat([[0.0], tf.ones([n - 1])], axis=0)
    cube = keep[:, None] * keep[None, :] if ndim == 2 else (
        keep[:, None, None] * keep[None, :, None] * keep[None, None, :])
    return spectrum * tf.cast(cube, tf.complex64)


def fourier_crop(x, n_out, ndim=2):
    """Resample centred images or volumes to ``n_out`` pixels over the same field of view, by
    Fourier cropping (downsampling: an ideal low-pass at the new Nyquist) or zero-padding
    (upsampling). The pixel size becomes ``pixel_size * N / n_out``; values keep their scale (a
    smooth map keeps its values). The unpaired Nyquist frequency of even boxes is dropped, so the
    band kept is symmetric and the content does not move by a fraction of a pixel.

    Args:
      x: ``[..., N, N]`` (``ndim == 2``) or ``[..., N, N, N]`` (``ndim == 3``) float32.
      n_out: output size.
    Returns:
      ``[..., n_out, n_out(, n_out)]`` float32 centred at :func:`origin` ``(n_out, ndim)``.
    """
    x = tf.convert_to_tensor(x, tf.float32)
    n = x.shape[-1]
    if n_out == n:
        return x
    axes = list(range(-ndim, 0))
    fft, ifft = (tf.signal.fft2d, tf.signal.ifft2d) if ndim == 2 else (tf.signal.fft3d,
                                                                       tf.signal.ifft3d)
    rolled = tf.roll(x, [-origin(n, ndim)] * ndim, axis=axes)
    spectrum = tf.signal.fftshift(fft(tf.cast(rolled, tf.complex64)), axes=axes)
    spectrum = _drop_nyquist(spectrum, ndim)
    spectrum = _drop_nyquist(_crop_or_pad(spectrum, n_out, ndim, lambda m: m // 2), ndim)
    out = tf.math.real(ifft(tf.signal.ifftshift(spectrum, axes=axes)))
    out = tf.roll(out, [origin(n_out, ndim)] * ndim, axis=axes)
    return out * (float(n_out) / float(n)) ** ndim


def resample(x, pixel_size_in, pixel_size_out, box_out, ndim=2):
    """Put centred images or volumes on another grid: pixel size ``pixel_size_out`` (A) and box
    ``box_out``, keeping the centre.

    ``x`` is zero-padded in real space to the smallest size ``M >= N`` (at most ``N + 64``) whose
    field of view is a whole number of output pixels (within 0.01 pixel; otherwise the closest),
    Fourier-cropped or padded to that number (:func:`fourier_crop`), then centre-cropped or
    zero-padded to ``box_out`` (:func:`crop_or_pad`).

    Args:
      x: ``[..., N, N]`` (``ndim == 2``) or ``[..., N, N, N]`` (``ndim == 3``) float32.
      pixel_size_in, pixel_size_out: A per pixel (Python floats).
      box_out: output size.
    Returns:
      ``(resampled, pixel_size)``: ``[..., box_out, ...]`` float32 and the exact output pixel size
      (A), which differs from ``pixel_size_out`` by less than 0.01 pixel over the field of view.
    """
    x = tf.convert_to_tensor(x, tf.float32)
    n = x.shape[-1]
    ratio = float(pixel_size_in) / float(pixel_size_out)

    def misfit(m):
        return abs(m * ratio - round(m * ratio))

    good = [m for m in range(n, n + 65) if misfit(m) <= 0.01]
    m_in = good[0] if good else min(range(n, n + 65), key=misfit)
    m_out = max(int(round(m_in * ratio)), 2)
    x = crop_or_pad(x, m_in, ndim)
    x = fourier_crop(x, m_out, ndim)
    return crop_or_pad(x, box_out, ndim), float(pixel_size_in) * m_in / m_out


def resample_images(images, pixel_size_in, pixel_size_out, box_out):
    """``[B, N, N]`` images on a ``box_out`` grid of ``pixel_size_out`` A (:func:`resample`)."""
    return resample(images, pixel_size_in, pixel_size_out, box_out, ndim=2)[0]


def resample_volume(volume, voxel_size_in, voxel_size_out, box_out):
    """``[..., N, N, N]`` volumes on a ``box_out`` grid of ``voxel_size_out`` A (:func:`resample`)."""
    return resample(volume, voxel_size_in, voxel_size_out, box_out, ndim=3)[0]

