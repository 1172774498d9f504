"""SavedModel export of a trained conformation generator, in TF Serving's layout.

``export_generator(run_dir, export_dir)`` restores the run's moving-average generator and writes
``export_dir/<version>/`` (the next integer version), a SavedModel with these signatures:

- ``serving_default``: ``{"z": float32 [batch, latent_dim]}`` -> ``{"volume": float32 [batch, N, N, N]}``
- ``sample``: ``{"n": int32 [], "seed": int64 []}`` -> ``{"z": [n, latent_dim], "volume": [n, N, N, N]}``
  (``z ~ N(0, I)``, deterministic for a seed)
- ``project``: ``{"z": [batch, latent_dim], "angles": [batch, 3] (RELION rot, tilt, psi, degrees),
  "shifts": [batch, 2] (rlnOriginXAngst/YAngst, A), "defocus": [batch, 3] (DefocusU, DefocusV in
  A, DefocusAngle in degrees)}`` -> ``{"images": [batch, N, N]}``: noise-free particle images with
  the run's optics (voltage, Cs, amplitude contrast), RELION's conventions
- ``metadata``: ``{}`` -> voxel size (A), box, latent dimension, symmetry, optics and
  ``training_flags``: the run's settings (every ``bin/train`` flag and the training grid, JSON)

The same values are attributes of the loaded object (``voxel_size``, ``box``, ``latent_dim``,
``symmetry``, ``optics``, ``training_flags``). Everything is plain TensorFlow: the export loads
with ``tf.saved_model.load`` in a process that cannot import tfcryogan, and serves with
``tensorflow_model_server``. ``export_root/models.config`` (a ``model_config_list``) lists every
exported model for TF Serving.
"""

import json
import os
import re
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from tfcryogan import simulator
from tfcryogan.errors import InputError
from tfcryogan.physics import projector, rotations


class GeneratorModule(tf.Module):
    """The servable: a generator's volumes, its grid and optics, and the signatures above.

    The symmetrised, masked template and basis volumes are copied into plain ``tf.Variable``s
    and the forward pass (``v(z) = template + sum_j z_j basis_j``) is written in plain
    TensorFlow, so that every loader restores them: ``tf.saved_model.load``, ``saved_model_cli
    run`` and TensorFlow Serving's session-based loader (which does not see Keras 3 variables).
    """

    def __init__(self, generator, voxel_size, optics, training_flags):
        super().__init__(name="tfcryogan_generator")
        self.n = int(generator.box)
        self.d = int(generator.latent_dim)
        self.basis = tf.Variable(generator.basis_volumes(), trainable=False, name="basis_volumes")
        self.voxel_size = tf.Variable(float(voxel_size), trainable=False, name="voxel_size")
        self.box = tf.Variable(self.n, trainable=False, name="box")
        self.latent_dim = tf.Variable(self.d, trainable=False, name="latent_dim")
        self.symmetry = tf.Variable(generator.symmetry, trainable=False, name="symmetry")
        self.optics = tf.Variable(np.asarray(optics, np.float32), trainable=False,
                                  name="optics_voltage_kv_cs_mm_amplitude_contrast")
        self.training_flags = tf.Variable(json.dumps(training_flags, sort_keys=True,
                                                        default=str), trainable=False,
                                             name="training_flags")
        spec_z = tf.TensorSpec([None, self.d], tf.float32, name="z")
        self.generate = tf.function(self._generate, input_signature=[spec_z])
        self.sample = tf.function(self._sample, input_signature=[
            tf.TensorSpec([], tf.int32, name="n"), tf.TensorSpec([], tf.int64, name="seed")])
        self.project = tf.function(self._project, input_signature=[
            spec_z, tf.TensorSpec([None, 3], tf.float32, name="angles"),
            tf.TensorSpec([None, 2], tf.float32, name="shifts"),
            tf.TensorSpec([None, 3], tf.float32, name="defocus")])
        self.metadata = tf.function(self._metadata, input_signature=[])

    def _coefficients(self, z):
        """``[B, 1 + K]``: 1 for the template, then ``z`` (the generator's linear map)."""
        return tf.concat([tf.ones([tf.shape(z)[0], 1]), z], axis=1)

    def _volumes(self, z):
        return tf.tensordot(self._coefficients(z), self.basis, axes=1)

    def _generate(self, z):
        return {"volume": self._volumes(z)}

    def _sample(self, n, seed):
        z = tf.random.stateless_normal(tf.stack([n, self.d]),
                                       tf.stack([seed, tf.constant(0, tf.int64)]))
        return {"z": z, "volume": self._volumes(z)}

    def _project(self, z, angles, shifts, defocus):
        b = tf.shape(z)[0]
        optics = tf.broadcast_to(self.optics[None, :], tf.stack([b, 3]))
        ctf = tf.concat([defocus, optics, tf.zeros([b, 2]), tf.ones([b, 1])], axis=1)
        matrices = rotations.euler_to_matrix(angles[:, 0], angles[:, 1], angles[:, 2])
        spectrum = projector.volume_spectrum(self.basis)
        images = simulator.project(spectrum, matrices, shifts, ctf, self.n, self.voxel_size,
                                   coefficients=self._coefficients(z))
        return {"images": images}

    def _metadata(self):
        return {"voxel_size": self.voxel_size.read_value(), "box": self.box.read_value(),
                "latent_dim": self.latent_dim.read_value(),
                "symmetry": self.symmetry.read_value(), "optics": self.optics.read_value(),
                "training_flags": self.training_flags.read_value()}

    def signatures(self):
        return {"serving_default": self.generate, "sample": self.sample,
                "project": self.project, "metadata": self.metadata}


def next_version(export_dir):
    """The next integer version folder number in ``export_dir`` (1 for a new model)."""
    if not os.path.isdir(export_dir):
        return 1
    versions = [int(v) for v in os.listdir(export_dir) if re.fullmatch(r"\d+", v)]
    return max(versions, default=0) + 1


def write_models_config(export_root, base_path=None):
    """Rewrite ``export_root/models.config`` (TF Serving ``model_config_list``) listing every
    model folder of ``export_root`` that holds at least one integer version.

    Args:
      export_root: the folder holding ``NAME/VERSION/`` exports.
      base_path: the folder as the server sees it (e.g. ``/models`` inside a container); default
        the absolute ``export_root``.
    Returns:
      the config path.
    """
    export_root = os.path.abspath(export_root)
    base = base_path or export_root
    entries = []
    for name in sorted(os.listdir(export_root)):
        folder = os.path.join(export_root, name)
        if os.path.isdir(folder) and any(re.fullmatch(r"\d+", v) for v in os.listdir(folder)):
            entries.append(f'  config {{\n    name: "{name}"\n    base_path: '
                           f'"{base.rstrip("/")}/{name}"\n    model_platform: "tensorflow"\n'
                           f'  }}\n')
    text = "model_config_list {\n" + "".join(entries) + "}\n"
    path = os.path.join(export_root, "models.config")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


def save(module, export_dir):
    """Save ``module`` as ``export_dir/<next version>/`` atomically (a temporary folder renamed);
    returns the version folder."""
    os.makedirs(export_dir, exist_ok=True)
    version = next_version(export_dir)
    final = os.path.join(export_dir, str(version))
    tmp = tempfile.mkdtemp(prefix=f".{version}.tmp", dir=export_dir)
    try:
        tf.saved_model.save(module, tmp, signatures=module.signatures())
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def load_run(run_dir):
    """Read a run folder's ``run.json``; InputError when it is not a finished or checkpointed run."""
    record_path = os.path.join(run_dir, "run.json")
    if not os.path.exists(record_path):
        raise InputError(f"{run_dir}: no run.json (not a bin/train output folder?)")
    with open(record_path, encoding="utf-8") as f:
        record = json.load(f)
    if not tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints")):
        raise InputError(f"{run_dir}: no checkpoint in checkpoints/")
    return record


def module_from_run(run_dir):
    """Rebuild a run's generator from ``run.json`` and restore its moving-average weights from the
    last checkpoint; returns ``(GeneratorModule, record)``."""
    # pylint: disable=import-outside-toplevel
    from tfcryogan.models.generator import build_generator
    from tfcryogan.training.run_folder import restore_checkpoint
    record = load_run(run_dir)
    s = record["settings"]
    for key in ("box", "latent_dim", "symmetry", "mask_radius", "pixel_size", "optics"):
        if key not in s:
            raise InputError(f"{run_dir}/run.json: no {key!r} in its settings (a run of another "
                             "version of tfcryogan?); re-run it with this version")
    generator = build_generator(s, "ema_generator")
    generator(tf.zeros([1, s["latent_dim"]]))
    latest = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    if latest is None:
        raise InputError(f"{run_dir}/checkpoints: no checkpoint; train first (bin/train)")
    # A run of one map stores it as "all"; a gold-standard run as "half1" and "half2" (half 1
    # is exported: the halves are independent maps of the same particle).
    names = {name.split("/")[0] for name, _ in tf.train.list_variables(latest)}
    part = "all" if "all" in names else "half1"
    checkpoint = tf.train.Checkpoint(**{part: tf.train.Checkpoint(ema_generator=generator)})
    restore_checkpoint(checkpoint, latest, "re-run the training with this version")
    return GeneratorModule(generator, s["pixel_size"], s["optics"], s), record
