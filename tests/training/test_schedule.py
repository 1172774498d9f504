"""The coarse-to-fine schedule: the critic's low-pass follows the run's progress (a fraction of
the run, whatever its length in steps), and the learning rates decay with it."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcryogan.models.critic import build_critic
from tfcryogan.models.generator import ConformationGenerator
from tfcryogan.training.cryogan import CryoGAN, gaussian_lowpass


def make_model(**kwargs):
    generator = ConformationGenerator(16)
    generator(tf.zeros([1, 0]))
    return CryoGAN(generator, build_critic(16), pixel_size=5.0, global_batch=4, **kwargs)


def test_lowpass_relaxes_linearly_over_the_given_fraction_of_the_run():
    model = make_model(lowpass_start=2.0, lowpass_fraction=0.5)
    sigmas = []
    for progress in (0.0, 0.25, 0.49, 0.5, 0.9):
        model.lowpass_progress.assign(progress)
        sigmas.append(float(model.lowpass_sigma()))
    # From 2 cycles per box to N / 2 = 8 at half of the run, then no filter at all.
    np.testing.assert_allclose(sigmas[:3], [2.0, 5.0, 2.0 + 0.98 * 6.0], rtol=1e-5)
    assert sigmas[3:] == [0.0, 0.0]
    disabled = make_model(lowpass_start=0.0)
    assert float(disabled.lowpass_sigma()) == 0.0


def test_preprocess_removes_fine_detail_early_and_keeps_it_late():
    model = make_model(lowpass_start=2.0, lowpass_fraction=0.8)
    x = np.indices((16, 16)).sum(0) % 2 * 2.0 - 1.0  # a Nyquist checkerboard
    coarse = np.exp(-((np.indices((16, 16)) - 8.0) ** 2).sum(0) / 20.0)
    images = tf.constant(np.stack([x, coarse]).astype(np.float32))
    model.lowpass_progress.assign(0.0)
    early = gaussian_lowpass(images, model.lowpass_sigma()).numpy()
    model.lowpass_progress.assign(0.9)
    late = gaussian_lowpass(images, model.lowpass_sigma()).numpy()
    assert np.abs(early[0]).max() < 1e-3  # the checkerboard is gone
    assert np.corrcoef(early[1].ravel(), coarse.ravel())[0, 1] > 0.99  # the blob is kept
    np.testing.assert_allclose(late, images.numpy(), atol=1e-5)


def test_trainer_sets_learning_rates_and_lowpass_from_progress(tiny_dataset, tmp_path):
    from tfcryogan import data as data_lib
    from tfcryogan.training import loop
    star, _ = tiny_dataset
    config = loop.TrainConfig(output_dir=str(tmp_path), batch_size=4, n_critic=1,
                              critic_lr=1e-3, generator_lr=2e-3, final_lr_fraction=0.1)
    trainer = loop.Trainer(config, data_lib.load_particles(star), log=lambda line: None)
    trainer._set_schedules(0.5)  # pylint: disable=protected-access
    assert float(trainer.model.lowpass_progress) == pytest.approx(0.5)
    assert float(trainer.d_optimizer.learning_rate) == pytest.approx(1e-3 * 0.55)
    assert float(trainer.g_optimizer.learning_rate) == pytest.approx(2e-3 * 0.55)
    trainer._set_schedules(1.0)  # pylint: disable=protected-access
    assert float(trainer.g_optimizer.learning_rate) == pytest.approx(2e-3 * 0.1)
    assert trainer._agree(0.3, False) == (pytest.approx(0.3), False)  # one worker: as is


def test_resume_check_knows_settings_older_runs_did_not_record():
    """A Multi-CryoGAN run recorded before --coefficient_map existed used the MLP: resuming it
    with today's default (linear) is refused, not restored into the wrong generator; for CryoGAN
    (latent_dim 0) the generator's settings do not matter."""
    from tfcryogan.training.loop import changed_settings
    now = {"latent_dim": 2, "coefficient_map": "linear", "translation_free_basis": False,
           "critic_batch_statistics": 8, "n_basis": 2, "basis_decay": 1.0, "seed": 0}
    old_multi = {"latent_dim": 2, "n_basis": 3, "seed": 0}
    assert changed_settings(old_multi, now) == ["critic_batch_statistics", "n_basis",
                                                "coefficient_map", "basis_decay"]
    assert changed_settings(old_multi, {**now, "coefficient_map": "mlp", "n_basis": 3,
                                        "critic_batch_statistics": 0,
                                        "basis_decay": 0.0}) == []
    old_cryogan = {"latent_dim": 0, "n_basis": 0, "seed": 0}
    cryogan_now = {**now, "latent_dim": 0, "n_basis": 0, "critic_batch_statistics": 0,
                   "basis_decay": 0.0}
    assert changed_settings(old_cryogan, cryogan_now) == []
    assert changed_settings(old_cryogan, {**cryogan_now, "seed": 1}) == ["seed"]


def test_basis_decay_shrinks_only_the_basis_at_the_learning_rate():
    """Decoupled decay: after decay_basis() the basis volumes are (1 - lr * decay) times what they
    were; the template and the image-formation scalars are untouched; 0 (the default) and
    CryoGAN (no basis) leave everything as it was."""
    def model_with(decay, latent_dim=2):
        generator = ConformationGenerator(16, latent_dim)
        generator(tf.zeros([1, latent_dim]))
        generator.template.assign(tf.random.uniform([16, 16, 16], seed=1))
        if latent_dim:
            generator.basis.assign(tf.random.normal([latent_dim, 16, 16, 16], seed=2))
        model = CryoGAN(generator, build_critic(16), pixel_size=5.0, global_batch=4,
                        basis_decay=decay)
        model.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(0.01))
        return model

    model = model_with(5.0)
    template, basis = model.generator.template.numpy(), model.generator.basis.numpy()
    model.decay_basis()
    np.testing.assert_allclose(model.generator.basis.numpy(), 0.95 * basis, rtol=1e-6)
    np.testing.assert_array_equal(model.generator.template.numpy(), template)
    off = model_with(0.0)
    basis = off.generator.basis.numpy()
    off.decay_basis()
    np.testing.assert_array_equal(off.generator.basis.numpy(), basis)
    model_with(5.0, latent_dim=0).decay_basis()  # no basis: nothing to do, no error


def test_resuming_an_older_run_with_new_settings_is_a_one_line_error(tiny_dataset, tmp_path):
    """The refusal names the setting's value in the old run even when that run did not record it
    (it took the value it had then), instead of failing on the missing key."""
    import json

    from tfcryogan import data as data_lib
    from tfcryogan.errors import InputError
    from tfcryogan.training import loop
    star, _ = tiny_dataset
    config = loop.TrainConfig(output_dir=str(tmp_path), batch_size=4, n_critic=1, latent_dim=2)
    data = data_lib.load_particles(star)
    settings = loop.Trainer(config, data, log=lambda line: None)._settings()  # pylint: disable=protected-access
    old = {k: v for k, v in settings.items() if k not in ("critic_batch_statistics",
                                                          "coefficient_map", "basis_decay")}
    with open(tmp_path / "run.json", "w", encoding="utf-8") as f:
        json.dump({"settings": {**old, "coefficient_map": "linear"}}, f)
    with pytest.raises(InputError, match="critic_batch_statistics=0 but now "
                                         "critic_batch_statistics=4"):  # group clipped to the batch
        loop.Trainer(config, data, log=lambda line: None)


def test_basis_warmup_scales_the_basis_step_and_leaves_the_template_at_full_rate(tiny_dataset,
                                                                                   tmp_path):
    """Through the Trainer's distributed step: at progress 0 of a warm-up the basis volumes do not
    move while the template does; halfway through a warm-up of 0.5 they take exactly half of the
    step an identical run without warm-up takes (same start, same batch: same Adam step), and
    the template the same step."""
    from tfcryogan import data as data_lib
    from tfcryogan.training import loop
    star, _ = tiny_dataset
    data = data_lib.load_particles(star)

    def one_step(warmup, progress, name):
        config = loop.TrainConfig(output_dir=str(tmp_path / name), batch_size=4, n_critic=1,
                                  latent_dim=2, basis_warmup=warmup)
        trainer = loop.Trainer(config, data, log=lambda line: None)
        generator = trainer.generator
        template, basis = generator.template.numpy(), generator.basis.numpy()
        trainer._set_schedules(progress)  # pylint: disable=protected-access
        step = trainer._distributed_step()  # pylint: disable=protected-access
        step(next(iter(trainer.dataset(0))))
        return (generator.template.numpy() - template, generator.basis.numpy() - basis)

    frozen_template, frozen_basis = one_step(0.5, 0.0, "frozen")
    assert np.abs(frozen_template).max() > 1e-4
    np.testing.assert_array_equal(frozen_basis, 0.0)
    half_template, half_basis = one_step(0.5, 0.125, "half")  # a quarter of the warm-up
    full_template, full_basis = one_step(0.0, 0.125, "full")
    assert np.abs(full_basis).max() > 1e-4
    np.testing.assert_allclose(half_basis, 0.25 * full_basis, atol=1e-6)
    np.testing.assert_allclose(half_template, full_template, atol=1e-6)
