"""Fourier-space helpers shared by the projector, the CTF, shifts and noise.

Image origin: RELION's ``relion_project`` puts the projected volume centre (index ``N // 2`` of the
map) at pixel ``(N + 1) // 2`` of its images: ``N / 2`` for even ``N`` and ``N // 2 + 1`` for odd ``N``
(an asymmetry of RELION's ``CenterFFT``, measured here: a one-pixel shift for odd boxes). We follow it
so that simulated images match RELION's for every box size; see :func:`image_origin`.

Layout: 2D image spectra use the ``rfft2d`` half-plane layout ``[..., N, N // 2 + 1]``: rows are
``ky`` in FFT order (0, 1, ..., N/2 - 1, -N/2, ..., -1), columns are ``kx = 0 .. N // 2``; frequencies
are integers in cycles per box. Volumes are centred at index ``N // 2`` on every axis, images at
``image_origin(N)``; arrays are indexed ``[y, x]`` / ``[z, y, x]``.
"""

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


def resample_images(images, pixel_size_in, pixel_size_out, box_out):
    """Resample centred images to another pixel size and box by Fourier cropping or padding.

    The spectrum is cropped (downsampling, an ideal low-pass at the new Nyquist) or zero-padded
    (upsampling) to ``round(N_in * pixel_size_in / pixel_size_out)`` pixels, which keeps the field
    of view, then the image is cropped or zero-padded in real space to ``box_out`` around its centre.
    Pixel values keep their scale (a constant image stays the same constant), as averaging would.

    Args:
      images: ``[B, N_in, N_in]`` float32, centred at ``image_origin(N_in)``.
      pixel_size_in, pixel_size_out: Angstrom per pixel (Python floats).
      box_out: output size in pixels.
    Returns:
      ``[B, box_out, box_out]`` float32 centred at ``image_origin(box_out)``.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    n_in = images.shape[-1]
    n_mid = int(round(n_in * pixel_size_in / pixel_size_out))
    n_mid = max(n_mid, 2)
    if n_mid != n_in:
        spectrum = image_rfft(images)
        full_y_in = tf.signal.fftshift(spectrum, axes=[-2])
        half = min(n_in, n_mid) // 2
        cy_in = n_in // 2
        cy_mid = n_mid // 2
        block = full_y_in[:, cy_in - half:cy_in - half + 2 * half, :half + 1]
        out = tf.pad(block, [[0, 0], [cy_mid - half, n_mid - (cy_mid - half) - 2 * half],
                             [0, n_mid // 2 + 1 - (half + 1)]])
        out = tf.signal.ifftshift(out, axes=[-2])
        images = image_irfft(out, n_mid) * (float(n_mid * n_mid) / float(n_in * n_in))
    return crop_or_pad(images, box_out)


def crop_or_pad(images, box_out):
    """Centre-crop or zero-pad ``[B, N, N]`` images to ``[B, box_out, box_out]`` keeping the pixel at
    ``image_origin`` at ``image_origin`` of the output."""
    n = images.shape[-1]
    if n == box_out:
        return images
    c_in, c_out = image_origin(n), image_origin(box_out)
    if n > box_out:
        start = c_in - c_out
        return images[:, start:start + box_out, start:start + box_out]
    before = c_out - c_in
    after = box_out - n - before
    return tf.pad(images, [[0, 0], [before, after], [before, after]])


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


def resample_volume(volume, voxel_size_in, voxel_size_out, box_out):
    """Resample a centred volume to another voxel size and box (Fourier crop/pad, then real-space
    centre crop/pad), the 3D analogue of :func:`resample_images`; values keep their scale.

    Args:
      volume: ``[N, N, N]`` float32 (``[z, y, x]``), centre ``N // 2``.
      voxel_size_in, voxel_size_out: A/voxel; box_out: output size.
    Returns:
      ``[box_out, box_out, box_out]`` float32, centre ``box_out // 2``.
    """
    volume = tf.convert_to_tensor(volume, tf.float32)
    n_in = volume.shape[-1]
    n_mid = max(int(round(n_in * voxel_size_in / voxel_size_out)), 2)
    if n_mid != n_in:
        c_in = n_in // 2
        spectrum = tf.signal.fftshift(rfft3d(tf.roll(volume[None], [-c_in] * 3, [1, 2, 3]))[0],
                                      axes=[0, 1])
        half = min(n_in, n_mid) // 2
        cut = spectrum[n_in // 2 - half:n_in // 2 + half, n_in // 2 - half:n_in // 2 + half,
                       :half + 1]
        lo = n_mid // 2 - half
        hi = n_mid - lo - 2 * half
        out = tf.pad(cut, [[lo, hi], [lo, hi], [0, n_mid // 2 + 1 - (half + 1)]])
        out = tf.signal.ifftshift(out, axes=[0, 1])
        vol = tf.signal.irfft3d(out, fft_length=[n_mid] * 3)
        volume = tf.roll(vol, [n_mid // 2] * 3, [0, 1, 2]) * (float(n_mid) ** 3 / float(n_in) ** 3)
    n = volume.shape[-1]
    if n == box_out:
        return volume
    c_in, c_out = n // 2, box_out // 2
    if n > box_out:
        s = c_in - c_out
        return volume[s:s + box_out, s:s + box_out, s:s + box_out]
    before = c_out - c_in
    after = box_out - n - before
    return tf.pad(volume, [[before, after]] * 3)
