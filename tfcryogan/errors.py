"""Errors that reach the user as one clear line."""


class InputError(ValueError):
    """Bad user input: a missing, malformed or inconsistent file or flag value.

    The message is one line that names the file (or flag) and the problem, e.g.
    ``"particles.star: column rlnDefocusU is missing"``. ``bin/`` entry points print it as
    ``error: <message>`` and exit with status 2, without a traceback.
    """
