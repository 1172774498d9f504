"""A training run's folder: ``run.json``, ``checkpoints/``, ``logs/`` and the output maps.

One class owns what a run writes and reads back: the record of its settings and figures (written
atomically), the check that a resumed run keeps the settings its checkpoint was made with, the
wall time already spent, and ``--restart``. Only the chief of a multi-worker run writes here; the
other workers keep their checkpoints and logs in temporary folders (TensorFlow's rule for
``MultiWorkerMirroredStrategy``), which :meth:`RunFolder.remove_scratch` deletes at the end.
"""

import json
import os
import shutil
import tempfile

from tfcryogan import io
from tfcryogan.errors import InputError

#: What a run writes in its folder (removed by ``--restart``).
OUTPUT_FILES = ("run.json", "volume.mrc", "fsc.csv", "fsc.png", "half1.mrc", "half2.mrc",
                "fsc_gold.csv", "fsc_gold.png", "initial_model.mrc", "particles_halves.star")
OUTPUT_FOLDERS = ("checkpoints", "logs")


class RunFolder:
    """The folder ``path`` of a run, seen from one worker.

    Args:
      path: the run folder (created if needed).
      is_chief: this worker writes the outputs.
      worker_index: this worker's number (for the names of a non-chief's scratch folders).
    """

    def __init__(self, path, is_chief=True, worker_index=0):
        self.path = os.path.abspath(path)
        self.is_chief = bool(is_chief)
        os.makedirs(self.path, exist_ok=True)
        self.record_path = os.path.join(self.path, "run.json")
        self.checkpoint_dir = os.path.join(self.path, "checkpoints")
        self.log_dir = os.path.join(self.path, "logs")
        self._scratch = []
        if not self.is_chief:
            self.checkpoint_dir = tempfile.mkdtemp(prefix=f"tfcryogan_worker{worker_index}_")
            self.log_dir = tempfile.mkdtemp(prefix=f"tfcryogan_logs{worker_index}_")
            self._scratch = [self.checkpoint_dir, self.log_dir]

    def file(self, name):
        """The path of output ``name`` in the run folder."""
        return os.path.join(self.path, name)

    def clear(self):
        """Delete a previous run's outputs, checkpoints and logs (``--restart``)."""
        for sub in OUTPUT_FOLDERS:
            shutil.rmtree(self.file(sub), ignore_errors=True)
        for name in OUTPUT_FILES:
            if os.path.exists(self.file(name)):
                os.remove(self.file(name))

    def previous_record(self):
        """The ``run.json`` of a previous run in this folder, or None (none, or unreadable)."""
        if not os.path.exists(self.record_path):
            return None
        try:
            with open(self.record_path, encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def check_resume(self, settings, fixed, without_flag=()):
        """Refuse to resume a run whose recorded ``settings`` differ from ``settings`` (dicts as
        in ``run.json``) in one of the names ``fixed``; a name the old record lacks is not
        compared. Raises :class:`InputError` naming the setting and both values. For a name in
        ``without_flag`` (a package default no flag can set) the error says that the default
        changed since the run was made, since "the same settings" cannot be given."""
        previous = (self.previous_record() or {}).get("settings", {})
        for name in fixed:
            if name in previous and previous[name] != settings.get(name):
                if name in without_flag:
                    raise InputError(
                        f"{self.record_path}: this folder holds a run made with {name}="
                        f"{previous[name]}, a setting without a flag whose default is now "
                        f"{settings.get(name)}; resume it with the tfcryogan version that made "
                        "it, or use --restart or another --output_dir")
                raise InputError(f"{self.record_path}: this folder holds a run with {name}="
                                 f"{previous[name]} but now {name}={settings.get(name)}; use "
                                 "another --output_dir, --restart, or the same settings to "
                                 "resume")

    def previous_wall_seconds(self):
        """Wall time (s) the runs recorded in this folder have already spent (0 for a new run)."""
        return float((self.previous_record() or {}).get("wall_seconds", 0.0))

    def write_record(self, record):
        """Write ``run.json`` atomically (chief only)."""
        if self.is_chief:
            io.write_json(self.record_path, record)

    def write_map(self, name, volume, voxel_size):
        """Write map ``name`` (voxel size in A in the header, atomically); returns its path."""
        path = self.file(name)
        if self.is_chief:
            io.write_volume(path, volume, voxel_size)
        return path

    def remove_scratch(self):
        """Delete a non-chief worker's temporary checkpoint and log folders."""
        for folder in self._scratch:
            shutil.rmtree(folder, ignore_errors=True)


def restore_checkpoint(checkpoint, path, remedy):
    """Restore ``tf.train.Checkpoint`` ``checkpoint`` from the checkpoint file prefix ``path``.

    Every object of ``checkpoint`` must be in the file: a checkpoint of another version of the
    package (other variables) is an :class:`InputError` ending with ``remedy`` (what the user
    can do), not a silent partial restore. Values in the file that ``checkpoint`` does not
    ask for (e.g. optimiser slots when only the generator is rebuilt) are ignored."""
    status = checkpoint.restore(path)
    try:
        status.assert_existing_objects_matched()
    except AssertionError:
        raise InputError(f"{path}: made by another version of tfcryogan (its variables "
                         f"differ); {remedy}") from None
    status.expect_partial()
