"""The training settings: one definition each (default, help, check), flags derived from them."""

import ast
import dataclasses
import pathlib

import pytest

from tfcryogan.errors import InputError
from tfcryogan.training import config as config_lib
from tfcryogan.training.config import TrainConfig

PACKAGE = pathlib.Path(config_lib.__file__).resolve().parents[1]


def test_config_defines_each_flag_once_with_help_and_checks():
    """Every flag of bin/train comes from one TrainConfig field with its default and help text;
    validate() names the flag of a bad value."""
    fields = config_lib.flag_fields()
    assert len({f.name for f in fields}) == len(fields)
    assert all(len(f.metadata["help"]) > 20 for f in fields)
    good = TrainConfig(particles="p.star", output_dir="out")
    assert good.validate() is good
    for bad, message in ((dict(batch_size=0), "--batch_size=0: must be >= 1"),
                         (dict(noise="none"), "--noise=none"),
                         (dict(noise="patches"), "--noise=patches needs --noise_from"),
                         (dict(symmetry="X9"), "--symmetry=X9"),
                         (dict(mask_radius=1.5), "--mask_radius=1.5"),
                         (dict(max_minutes=float("nan")), "--max_minutes=nan"),
                         (dict(box=4), "--box=4")):
        with pytest.raises(InputError, match=message.replace("+", "\\+")):
            TrainConfig(particles="p.star", output_dir="out", **bad).validate()


def test_no_function_repeats_a_training_default():
    """No function or method in the package gives a parameter named after a training setting
    the setting's default again (changing a default must mean changing one line): the library
    takes such values from the config or as required arguments."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)
                if f.default not in (None, False, "")}
    repeated = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "config.py" and path.parent.name == "training":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            args = node.args.args + node.args.kwonlyargs
            values = ([None] * (len(node.args.args) - len(node.args.defaults))
                      + list(node.args.defaults) + list(node.args.kw_defaults))
            for arg, value in zip(args, values):
                if arg.arg in defaults and isinstance(value, ast.Constant) and \
                        value.value == defaults[arg.arg]:
                    repeated.append(f"{path.relative_to(PACKAGE)}:{node.lineno} "
                                    f"{node.name}({arg.arg}={value.value!r})")
    assert not repeated, repeated


def test_bin_train_offers_exactly_the_flag_settings():
    """bin/train --helpfull lists every flag setting and none of the removed experiments."""
    import subprocess
    import sys
    done = subprocess.run([sys.executable, str(PACKAGE.parent / "bin" / "train"), "--helpfull"],
                          capture_output=True, text=True, check=False)
    text = done.stdout + done.stderr
    for field in config_lib.flag_fields():
        assert f"--{field.name}" in text or f"--[no]{field.name}" in text, field.name
    for removed in ("basis_decay", "basis_warmup", "coefficient_map", "n_basis",
                    "translation_free_basis", "basis_start_scale", "generator_batches",
                    "critic_batch_statistics", "demo_particles", "summary_every"):
        assert removed not in text, removed
