"""Resuming a run folder: a changed fixed setting is refused with an error the user can act on."""
import pytest

from tfcryogan import io
from tfcryogan.errors import InputError
from tfcryogan.training import config as config_lib
from tfcryogan.training.run_folder import RunFolder


def _resume(tmp_path, **recorded):
    folder = RunFolder(str(tmp_path))
    settings = config_lib.TrainConfig().settings()
    io.write_json(folder.record_path, {"settings": {**settings, **recorded}})
    folder.check_resume(settings, config_lib.fixed_settings(),
                        config_lib.settings_without_flag())


def test_same_settings_resume(tmp_path):
    _resume(tmp_path)


def test_changed_default_without_flag_names_the_version(tmp_path):
    """A run made when the critic's default width was 16: no flag can give "the same settings",
    so the error must point to the version that made the run, not to a flag; a changed setting
    that has a flag still asks for the same settings (test_schedule checks that refusal end to
    end through the Trainer)."""
    assert "critic_channels" in config_lib.settings_without_flag()
    with pytest.raises(InputError) as error:
        _resume(tmp_path, critic_channels=16)
    text = str(error.value)
    assert "run.json" in text and "critic_channels=16" in text
    assert "without a flag" in text and "version that made it" in text
    with pytest.raises(InputError) as error:
        _resume(tmp_path, batch_size=64)
    text = str(error.value)
    assert "batch_size=64" in text and "the same settings" in text
    assert "without a flag" not in text
