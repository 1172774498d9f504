"""Rotations: RELION ZYZ Euler angles <-> matrices, and uniform sampling of SO(3).

Convention (RELION's ``Euler_angles2matrix``): ``A = Rz(psi) @ Ry(tilt) @ Rz(rot)`` with the
*passive* elementary rotations ``Rz(a) = [[c, s, 0], [-s, c, 0], [0, 0, 1]]`` and
``Ry(a) = [[c, 0, -s], [0, 1, 0], [s, 0, c]]``. A projection at ``A`` is the central slice
``F(A^T k)`` of the volume's Fourier transform, i.e. the real-space projection along z of
``v(A^T r)``. Vectors are ``(x, y, z)`` with x along array columns (the last axis).

All functions take and return plain tensors, broadcast over leading batch dimensions and are
differentiable; angles are in degrees.
"""

import math

import tensorflow as tf


def euler_to_matrix(rot, tilt, psi):
    """RELION ZYZ Euler angles (degrees) to rotation matrices.

    Args:
      rot, tilt, psi: float tensors of the same shape ``[...]`` (``rlnAngleRot``,
        ``rlnAngleTilt``, ``rlnAnglePsi``), degrees.
    Returns:
      ``[..., 3, 3]`` float32 matrices ``A`` as RELION's ``Euler_angles2matrix``.
    """
    deg = math.pi / 180.0
    a = tf.convert_to_tensor(rot, tf.float32) * deg
    b = tf.convert_to_tensor(tilt, tf.float32) * deg
    g = tf.convert_to_tensor(psi, tf.float32) * deg
    ca, sa = tf.cos(a), tf.sin(a)
    cb, sb = tf.cos(b), tf.sin(b)
    cg, sg = tf.cos(g), tf.sin(g)
    cc, cs = cb * ca, cb * sa
    sc, ss = sb * ca, sb * sa
    rows = [
        tf.stack([cg * cc - sg * sa, cg * cs + sg * ca, -cg * sb], axis=-1),
        tf.stack([-sg * cc - cg * sa, -sg * cs + cg * ca, sg * sb], axis=-1),
        tf.stack([sc, ss, cb], axis=-1),
    ]
    return tf.stack(rows, axis=-2)


def matrix_to_euler(matrix):
    """Rotation matrices to RELION ZYZ Euler angles (degrees), tilt in [0, 180].

    Inverse of :func:`euler_to_matrix` (RELION's ``Euler_matrix2angles``, choosing the
    representative with non-negative tilt).

    Args:
      matrix: ``[..., 3, 3]`` rotation matrices.
    Returns:
      ``(rot, tilt, psi)``, each ``[...]`` float32, degrees in (-180, 180], [0, 180], (-180, 180].
    """
    m = tf.convert_to_tensor(matrix, tf.float32)
    a02, a12, a22 = m[..., 0, 2], m[..., 1, 2], m[..., 2, 2]
    a20, a21 = m[..., 2, 0], m[..., 2, 1]
    abs_sb = tf.sqrt(a02 * a02 + a12 * a12)
    regular = abs_sb > 1e-5
    rot = tf.where(regular, tf.atan2(a21, a20), 0.0)
    tilt = tf.atan2(abs_sb, a22)
    # Gimbal lock (tilt 0 or 180): all rotation goes into psi.
    psi_lock = tf.where(a22 > 0, tf.atan2(-m[..., 1, 0], m[..., 0, 0]),
                        tf.atan2(m[..., 1, 0], -m[..., 0, 0]))
    psi = tf.where(regular, tf.atan2(a12, -a02), psi_lock)
    rad = 180.0 / math.pi
    return rot * rad, tilt * rad, psi * rad


def quaternion_to_matrix(quaternion):
    """Unit quaternions ``[..., 4]`` as ``(x, y, z, w)`` to rotation matrices ``[..., 3, 3]``.

    Uses tensorflow-graphics (``rotation_matrix_3d.from_quaternion``), imported on first use
    so that programs which never sample rotations do not pay its import time.
    """
    from tensorflow_graphics.geometry.transformation import rotation_matrix_3d
    return rotation_matrix_3d.from_quaternion(tf.convert_to_tensor(quaternion, tf.float32))


def random_rotations(n, seed):
    """``n`` rotation matrices drawn uniformly (Haar measure) from SO(3).

    A normalised 4D standard normal vector is a uniform unit quaternion.

    Args:
      n: number of rotations (int or scalar int tensor).
      seed: ``[2]`` int tensor for ``tf.random.stateless_normal`` (deterministic).
    Returns:
      ``[n, 3, 3]`` float32.
    """
    q = tf.random.stateless_normal([n, 4], seed=seed)
    q = q / tf.norm(q, axis=-1, keepdims=True)
    return quaternion_to_matrix(q)
