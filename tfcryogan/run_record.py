"""What a training run recorded about itself (``run.json``'s ``settings``), read the same way by
the training loop (resume checks) and the export (rebuilding the generator).

Settings were added over time; a run recorded before a setting existed used the value given in
:data:`SETTINGS_BEFORE_RECORDED`, which :func:`recorded_settings` fills in.
"""

# Settings added after runs were recorded without them: their value in those runs.
SETTINGS_BEFORE_RECORDED = {"coefficient_map": "mlp", "translation_free_basis": False,
                            "critic_batch_statistics": 0, "basis_decay": 0.0}


def recorded_settings(previous):
    """A run's recorded settings (dict, ``run.json``'s ``settings``) with the value each setting
    had before runs recorded it filled in where it is missing. Returns a new dict."""
    return {**SETTINGS_BEFORE_RECORDED, **previous}
