"""Helpers for the ``bin/`` entry points: quiet TensorFlow start-up and one-line errors.

Library code never reads flags; ``bin/`` scripts parse them (absl) and pass values down.
"""

import contextlib
import os
import sys


@contextlib.contextmanager
def _stderr_to_devnull():
    """Redirect file descriptor 2 (C++ logging included) to /dev/null inside the block."""
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr: nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow_quietly():
    """Import TensorFlow without its start-up noise (CUDA probing, oneDNN notices, absl warnings).

    Sets ``TF_CPP_MIN_LOG_LEVEL=2`` (unless the user set it) so that later C++ info and warnings
    stay silent too, and hides what TensorFlow writes to stderr while it loads. Errors raised by the
    import itself still propagate as Python exceptions. Returns the ``tensorflow`` module.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    with _stderr_to_devnull():
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        tf.get_logger().setLevel("ERROR")
    return tf


def run(main):
    """Run an absl ``main(argv)``; a :class:`tfcryogan.errors.InputError` (or a missing/unwritable
    file) becomes ``error: <message>`` on stderr with exit status 2 and no traceback."""
    from absl import app  # pylint: disable=import-outside-toplevel

    from tfcryogan.errors import InputError  # pylint: disable=import-outside-toplevel

    def guarded(argv):
        try:
            status = main(argv)
            # Every output is written and closed by now: skip TensorFlow's interpreter teardown
            # (about half a second of freeing its runtime), which the user would only wait for.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(int(status or 0))
        except InputError as err:
            _fail(str(err))
        except (FileNotFoundError, IsADirectoryError, PermissionError) as err:
            _fail(f"{err.filename}: {err.strerror}" if err.filename else str(err))
        except KeyboardInterrupt:
            _fail("interrupted")

    from absl import logging  # pylint: disable=import-outside-toplevel
    logging.set_verbosity(logging.WARNING)
    app.run(guarded)


def _fail(message):
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    sys.exit(2)
