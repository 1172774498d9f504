"""Export: TF Serving layout, signatures, loading without tfcryogan, saved_model_cli, bin/sample."""

import json
import os
import shutil
import subprocess
import sys

import mrcfile
import numpy as np
import pytest

# End-to-end runs of bin/ commands in subprocesses: deselect with -m "not slow".
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "bin")


def run(*cmd, cwd=None):
    done = subprocess.run(list(cmd), capture_output=True, text=True, cwd=cwd, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def exported(tiny_dataset, tmp_path_factory):
    star, _ = tiny_dataset
    folder = tmp_path_factory.mktemp("export")
    run_dir = folder / "run"
    run(sys.executable, os.path.join(BIN, "train"), f"--particles={star}",
        f"--output_dir={run_dir}", "--latent_dim=2", "--max_steps=3", "--batch_size=8",
        "--n_critic=1", "--checkpoint_every=3", "--generator_lr=0.05")
    run(sys.executable, os.path.join(BIN, "export"), f"--run_dir={run_dir}",
        f"--export_dir={folder / 'export' / 'tiny'}")
    second = run(sys.executable, os.path.join(BIN, "export"), f"--run_dir={run_dir}",
                 f"--export_dir={folder / 'export' / 'tiny'}")
    assert "tiny/2" in second.stdout
    return folder


def test_run_record_has_the_multi_cryogan_settings_and_spread(exported):
    """A Multi-CryoGAN run uses all n_critic + 1 batches for the generator by default and records
    the generator's conformational spread (non-zero: the random starting basis)."""
    with open(exported / "run" / "run.json", encoding="utf-8") as f:
        record = json.load(f)
    assert record["settings"]["generator_batch_count"] == 2  # --n_critic=1
    assert record["settings"]["penalty_interval"] == 1  # Multi-CryoGAN: on every update
    assert record["settings"]["latent_dim"] == 2
    assert 0.0 < record["figures"]["conformation_spread"] < 5.0


def test_generator_batch_count():
    from tfcryogan.training.config import TrainConfig

    def count(generator_batches, latent_dim, n_critic):
        return TrainConfig(generator_batches=generator_batches, latent_dim=latent_dim,
                           n_critic=n_critic).generator_batch_count()

    assert count(-1, 0, 4) == 1  # CryoGAN
    assert count(-1, 2, 4) == 5  # Multi-CryoGAN: every batch drawn for the step
    assert count(3, 2, 4) == 3
    assert count(9, 0, 4) == 5  # at most n_critic + 1 (the CTF rows drawn)


def test_penalty_interval():
    from tfcryogan.training.config import TrainConfig

    def interval(penalty_every, latent_dim):
        return TrainConfig(penalty_every=penalty_every, latent_dim=latent_dim).penalty_interval()

    assert interval(-1, 0) == 4  # CryoGAN: lazily, for the steps
    assert interval(-1, 2) == 1  # Multi-CryoGAN: on every update
    assert interval(2, 2) == 2 and interval(1, 0) == 1


def test_serving_layout_and_models_config(exported):
    root = exported / "export"
    assert sorted(os.listdir(root / "tiny")) == ["1", "2"]
    assert (root / "tiny" / "2" / "saved_model.pb").exists()
    config = (root / "models.config").read_text()
    assert 'name: "tiny"' in config and f'base_path: "{root / "tiny"}"' in config
    assert 'model_platform: "tensorflow"' in config


LOADER = r"""
import json, sys
sys.modules["tfcryogan"] = None  # downstream analysis: tfcryogan cannot be imported
import numpy as np
import tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
meta = m.signatures["metadata"]()
z = tf.constant(np.random.default_rng(0).normal(size=(3, 2)).astype(np.float32))
v1 = m.signatures["serving_default"](z=z)["volume"].numpy()
v2 = m.signatures["serving_default"](z=z)["volume"].numpy()
s = m.signatures["sample"](n=tf.constant(2), seed=tf.constant(7, tf.int64))
s2 = m.signatures["sample"](n=tf.constant(2), seed=tf.constant(7, tf.int64))
img = m.signatures["project"](z=z, angles=tf.constant([[10., 40., 70.]] * 3),
                              shifts=tf.zeros([3, 2]),
                              defocus=tf.constant([[15000., 14000., 30.]] * 3))["images"].numpy()
print(json.dumps({
    "shape": list(v1.shape), "same": bool(np.array_equal(v1, v2)),
    "differ": float(np.abs(v1[0] - v1[1]).max()),
    "sample_shape": list(s["volume"].shape), "sample_z": list(s["z"].shape),
    "sample_repeat": bool(np.array_equal(s["volume"].numpy(), s2["volume"].numpy())),
    "images": list(img.shape), "image_std": float(img.std()),
    "voxel": float(meta["voxel_size"]), "box": int(meta["box"]),
    "latent": int(meta["latent_dim"]), "symmetry": meta["symmetry"].numpy().decode(),
    "optics": meta["optics"].numpy().tolist(),
    "flags": json.loads(meta["training_flags"].numpy().decode()),
    "attr_voxel": float(m.voxel_size.numpy())}))
"""


def test_loads_without_tfcryogan(exported, tmp_path):
    script = tmp_path / "load.py"
    script.write_text(LOADER)
    done = run(sys.executable, str(script), str(exported / "export" / "tiny" / "2"), cwd=tmp_path)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["shape"] == [3, 16, 16, 16] and out["same"] and out["differ"] > 0
    assert out["sample_shape"] == [2, 16, 16, 16] and out["sample_z"] == [2, 2]
    assert out["sample_repeat"]
    assert out["images"] == [3, 16, 16] and out["image_std"] > 0
    assert abs(out["voxel"] - 6.0) < 1e-5 and out["box"] == 16 and out["latent"] == 2
    assert out["symmetry"] == "C1" and out["attr_voxel"] == out["voxel"]
    np.testing.assert_allclose(out["optics"], [300.0, 2.7, 0.1], rtol=1e-5)
    assert out["flags"]["latent_dim"] == 2


def test_saved_model_cli(exported):
    cli = shutil.which("saved_model_cli") or os.path.join(os.path.dirname(sys.executable),
                                                          "saved_model_cli")
    model = str(exported / "export" / "tiny" / "1")
    shown = run(cli, "show", "--dir", model, "--all")
    for name in ("serving_default", "sample", "project", "metadata"):
        assert name in shown.stdout
    ran = run(cli, "run", "--dir", model, "--tag_set", "serve", "--signature_def",
              "serving_default", "--input_exprs", "z=[[0.0,0.0]]")
    assert "volume" in ran.stdout


def test_sample_command(exported, tmp_path):
    out = tmp_path / "samples"
    done = run(sys.executable, os.path.join(BIN, "sample"),
               f"--model={exported / 'export' / 'tiny' / '2'}", "--n=3", f"--output_dir={out}",
               "--traverse", "--traverse_steps=3")
    assert "sample_" in done.stdout
    for i in range(3):
        with mrcfile.open(out / f"sample_{i:03d}.mrc", permissive=False) as m:
            assert m.data.shape == (16, 16, 16) and abs(float(m.voxel_size.x) - 6.0) < 1e-5
    assert (out / "samples.png").exists()
    for dim in range(2):
        assert (out / f"traverse_z{dim}" / "montage.png").exists()
        assert len(list((out / f"traverse_z{dim}").glob("frame_*.mrc"))) == 3


def test_module_matches_the_generator():
    import tensorflow as tf

    from tfcryogan.export import GeneratorModule
    from tfcryogan.models.generator import ConformationGenerator
    rng = np.random.default_rng(0)
    z = tf.constant(rng.normal(size=(5, 3)).astype(np.float32))
    linear = ConformationGenerator(12, 3, "C2", 0.4)
    linear.template.assign(rng.random((12, 12, 12)).astype(np.float32))
    linear.basis.assign(rng.normal(size=(3, 12, 12, 12)).astype(np.float32))
    module = GeneratorModule(linear, 2.0, [300.0, 2.7, 0.1], {"latent_dim": 3})
    np.testing.assert_allclose(module.generate(z)["volume"].numpy(), linear(z).numpy(),
                               rtol=1e-5, atol=1e-5)
    single = ConformationGenerator(12, 0, "C1", 0.45)
    single.template.assign(rng.random((12, 12, 12)).astype(np.float32))
    out = GeneratorModule(single, 2.0, [300.0, 2.7, 0.1], {}).generate(tf.zeros([2, 0]))["volume"]
    np.testing.assert_allclose(out.numpy(), np.broadcast_to(single(tf.zeros([1, 0])).numpy(),
                                                            (2, 12, 12, 12)), rtol=1e-6)
