"""Gold-standard halves: the split (disjoint, reproducible, recorded, RELION's rlnRandomSubset
respected) and what a default bin/train run writes (half maps, average, gold-standard FSC,
initial_model.mrc at the particles' own box and pixel size, accepted by relion_refine)."""

import json
import os
import shutil
import subprocess
import sys

import mrcfile
import numpy as np
import pytest

from tfcryogan import data as data_lib
from tfcryogan import io

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN = os.path.join(ROOT, "bin", "train")


def test_split_is_disjoint_even_and_reproducible_from_the_seed(tiny_dataset):
    star, _ = tiny_dataset
    data = data_lib.load_particles(star)
    first = data_lib.split_halves(data, seed=3)
    again = data_lib.split_halves(data, seed=3)
    other = data_lib.split_halves(data, seed=4)
    np.testing.assert_array_equal(first.subset, again.subset)
    assert not np.array_equal(first.subset, other.subset)
    one, two = first.rows(1), first.rows(2)
    assert not set(one) & set(two) and len(one) + len(two) == len(data)
    assert abs(len(one) - len(two)) <= 1
    assert first.record() == {"origin": "random, seed 3", "half1": 200, "half2": 200}
    halves = [data.subset(first.rows(h)) for h in (1, 2)]
    images = [h.read(np.arange(3)) for h in halves]
    np.testing.assert_array_equal(images[0], data.read(one[:3]))
    np.testing.assert_array_equal(images[1], data.read(two[:3]))


def test_relions_random_subset_is_used_when_the_star_has_it(tiny_dataset, tmp_path):
    star, _ = tiny_dataset
    table = io.read_particles(star)
    subset = np.where(np.arange(len(table)) % 3 == 0, 2, 1)
    given = tmp_path / "given.star"
    io.write_star(given, io.ParticleTable(**{**_fields(table), "random_subset": subset}))
    split = data_lib.split_halves(data_lib.load_particles(given), seed=0)
    assert split.origin == "rlnRandomSubset"
    np.testing.assert_array_equal(split.subset, subset)
    bad = tmp_path / "bad.star"
    io.write_star(bad, io.ParticleTable(**{**_fields(table), "random_subset": subset + 1}))
    with pytest.raises(ValueError, match="rlnRandomSubset holds \\[2, 3\\]"):
        data_lib.split_halves(data_lib.load_particles(bad), seed=0)


def test_two_halves_train_side_by_side_in_one_step(tiny_dataset, tmp_path):
    """One step of the public API updates both halves' maps, each from its own particles and
    start; the metrics come per half and as their mean."""
    from tfcryogan.training import loop
    from tfcryogan.training.config import TrainConfig
    star, _ = tiny_dataset
    config = TrainConfig(particles=str(star), output_dir=str(tmp_path), batch_size=4, n_critic=1)
    trainer = loop.Trainer(config, data_lib.load_particles(star), log=lambda line: None)
    halves = trainer.reconstructions
    assert [r.name for r in halves] == ["half1", "half2"]
    assert len(halves[0].data) + len(halves[1].data) == 400
    before = [r.generator.template.numpy() for r in halves]
    assert np.abs(before[0] - before[1]).max() > 0.1  # independent starts
    metrics = trainer.step(next(trainer.batches(0)))
    for r, start in zip(halves, before):
        assert np.abs(r.generator.template.numpy() - start).max() > 0
        assert int(r.model.step) == 1
    w = [float(metrics[f"half{h}/wasserstein"]) for h in (1, 2)]
    assert float(metrics["wasserstein"]) == pytest.approx(0.5 * sum(w), rel=1e-5)


def _fields(table):
    import dataclasses
    return {f.name: getattr(table, f.name) for f in dataclasses.fields(table)}


@pytest.fixture(scope="module")
def half_run(tiny_dataset, tmp_path_factory):
    """A default bin/train run (half maps) at a training box of 12 on the 16 px, 6 A particles."""
    star, _ = tiny_dataset
    out = tmp_path_factory.mktemp("halves") / "run"
    done = subprocess.run([sys.executable, TRAIN, f"--particles={star}", f"--output_dir={out}",
                           "--box=12", "--batch_size=8", "--n_critic=2", "--max_steps=4",
                           "--checkpoint_every=2", "--seed=5"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done


@pytest.mark.slow
def test_default_run_writes_half_maps_gold_fsc_and_initial_model(half_run, tiny_dataset):
    out, done = half_run
    star, _ = tiny_dataset
    for name, box, voxel in (("half1.mrc", 12, 8.0), ("half2.mrc", 12, 8.0),
                             ("volume.mrc", 12, 8.0), ("initial_model.mrc", 16, 6.0)):
        with mrcfile.open(out / name, permissive=False) as m:
            assert m.data.shape == (box,) * 3, name
            assert abs(float(m.voxel_size.x) - voxel) < 1e-4, name
            assert np.isfinite(m.data).all() and np.ptp(m.data) > 0, name
    half1, _ = io.read_volume(out / "half1.mrc")
    half2, _ = io.read_volume(out / "half2.mrc")
    average, _ = io.read_volume(out / "volume.mrc")
    np.testing.assert_allclose(average, 0.5 * (half1 + half2), atol=1e-5)
    record = json.loads((out / "run.json").read_text())
    gold = record["gold_standard"]
    for kind in ("masked", "unmasked"):
        assert gold[kind]["resolution_0143_A"] >= 16.0 - 1e-6  # Nyquist of 8 A voxels
        assert gold[kind]["resolution_05_A"] >= gold[kind]["resolution_0143_A"] - 1e-6
    assert "flipped" in gold["alignment"]
    rows = (out / "fsc_gold.csv").read_text().splitlines()
    assert rows[0].startswith("shell,") and "gold_masked" in rows[0] and len(rows) == 12 // 2 + 2
    assert (out / "fsc_gold.png").read_bytes()[:4] == b"\x89PNG"
    # The split is recorded: the particles with rlnRandomSubset, disjoint, as run.json says.
    halves = io.read_particles(record["split"]["file"])
    assert len(halves) == 400 and set(np.unique(halves.random_subset)) == {1, 2}
    assert record["split"]["half1"] == int(np.sum(halves.random_subset == 1)) == 200
    assert record["split"]["origin"] == "random, seed 5"
    original = io.read_particles(star)
    np.testing.assert_array_equal(halves.image_index, original.image_index)
    assert "gold-standard FSC 0.143" in done.stdout and "initial_model.mrc" in done.stdout


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("relion_refine") is None,
                    reason="RELION not installed (apt-get install relion)")
def test_relion_refine_accepts_the_initial_model(half_run, tiny_dataset, tmp_path):
    """relion_refine runs one iteration from initial_model.mrc as it is (box, pixel size and
    header as RELION wants them) on the particles it was made from."""
    out, _ = half_run
    star, _ = tiny_dataset
    done = subprocess.run(
        ["relion_refine", "--i", str(star), "--ref", str(out / "initial_model.mrc"),
         "--o", str(tmp_path / "run"), "--iter", "1", "--K", "1", "--ctf", "--ini_high", "40",
         "--particle_diameter", "80", "--healpix_order", "1", "--offset_range", "3",
         "--offset_step", "2", "--j", "1", "--pool", "50", "--dont_combine_weights_via_disc",
         "--firstiter_cc"], capture_output=True, text=True, check=False, cwd=tmp_path)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    with mrcfile.open(tmp_path / "run_it001_class001.mrc", permissive=True) as m:
        assert m.data.shape == (16, 16, 16) and np.isfinite(m.data).all()
