"""The coarse-to-fine schedule: the critic's low-pass follows the run's progress (a fraction of
the run, whatever its length in steps), and the learning rates decay with it."""

import numpy as np
import pytest
import tensorflow as tf

from tfcryogan import simulator
from tfcryogan.models.critic import build_critic
from tfcryogan.models.generator import ConformationGenerator
from tfcryogan.physics import noise
from tfcryogan.physics.fourier import gaussian_lowpass
from tfcryogan.training.config import TrainConfig
from tfcryogan.training.cryogan import CryoGAN


def make_model(**settings):
    generator = ConformationGenerator(16, 0, "C1", 0.45)
    generator(tf.zeros([1, 0]))
    config = TrainConfig(particles="x", output_dir="y", batch_size=4, **settings)
    formation = simulator.ImageFormation(16, 5.0, noise.WhiteNoise(), 1.0, True)
    return CryoGAN(generator, build_critic(16, 16, 0, False), formation, config)


def test_lowpass_relaxes_linearly_over_the_given_fraction_of_the_run():
    model = make_model(lowpass_start=2.0, lowpass_fraction=0.5)
    sigmas = []
    for progress in (0.0, 0.25, 0.49, 0.5, 0.9):
        model.progress.assign(progress)
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
    model.progress.assign(0.0)
    early = gaussian_lowpass(images, model.lowpass_sigma()).numpy()
    model.progress.assign(0.9)
    late = gaussian_lowpass(images, model.lowpass_sigma()).numpy()
    assert np.abs(early[0]).max() < 1e-3  # the checkerboard is gone
    assert np.corrcoef(early[1].ravel(), coarse.ravel())[0, 1] > 0.99  # the blob is kept
    np.testing.assert_allclose(late, images.numpy(), atol=1e-5)


def test_trainer_sets_learning_rates_and_lowpass_from_progress(tiny_dataset, tmp_path):
    from tfcryogan import data as data_lib
    from tfcryogan.training import loop
    star, _ = tiny_dataset
    config = TrainConfig(particles=str(star), output_dir=str(tmp_path), batch_size=4, n_critic=1,
                         critic_lr=1e-3, generator_lr=2e-3, final_lr_fraction=0.1,
                         half_maps=False)
    trainer = loop.Trainer(config, data_lib.load_particles(star), log=lambda line: None)
    trainer.set_progress(0.5)
    assert float(trainer.model.progress) == pytest.approx(0.5)
    assert float(trainer.d_optimizer.learning_rate) == pytest.approx(1e-3 * 0.55)
    assert float(trainer.g_optimizer.learning_rate) == pytest.approx(2e-3 * 0.55)
    trainer.set_progress(1.0)
    assert float(trainer.g_optimizer.learning_rate) == pytest.approx(2e-3 * 0.1)
    # One step through the public API moves the volume and counts the step.
    before = trainer.generator.template.numpy()
    metrics = trainer.step(next(trainer.batches(0)))
    assert set(metrics) == {"wasserstein", "gradient_penalty", "critic_loss", "generator_loss"}
    assert int(trainer.model.step) == 1
    assert np.abs(trainer.generator.template.numpy() - before).max() > 0


def test_resuming_with_other_fixed_settings_is_a_one_line_error(tiny_dataset, tmp_path):
    """A run folder remembers the settings its checkpoints were made with; resuming with another
    value of one of them is refused, naming it and both values; the others may change."""
    import dataclasses
    import json

    from tfcryogan import data as data_lib
    from tfcryogan.errors import InputError
    from tfcryogan.training import loop
    star, _ = tiny_dataset
    data = data_lib.load_particles(star)
    config = TrainConfig(particles=str(star), output_dir=str(tmp_path), batch_size=4,
                         n_critic=1, latent_dim=2)
    trainer = loop.Trainer(config, data, log=lambda line: None)
    trainer.write_outputs(0, 0.0, {})
    recorded = json.loads((tmp_path / "run.json").read_text())["settings"]
    assert recorded["critic_batch_group"] == 4  # groups of 8 clipped to the batch
    with pytest.raises(InputError, match="latent_dim=2 but now latent_dim=3"):
        loop.Trainer(dataclasses.replace(config, latent_dim=3), data, log=lambda line: None)
    with pytest.raises(InputError, match="seed=0 but now seed=1"):
        loop.Trainer(dataclasses.replace(config, seed=1), data, log=lambda line: None)
    loop.Trainer(dataclasses.replace(config, critic_lr=1e-4, max_steps=5), data,
                 log=lambda line: None)


def test_critic_sees_cropped_real_noise_and_simulated_noise_alike():
    """Real images Fourier-cropped to the training box (nothing on the Nyquist row and column,
    and their own corners) and the simulator's noise drawn at that box must look the same to the
    critic, frequency by frequency: otherwise the critic scores every map by a difference no map
    can change."""
    from tfcryogan.physics import fourier
    model = make_model(lowpass_start=0.0)
    rng = np.random.default_rng(0)
    real = fourier.resample_images(rng.normal(size=(4000, 32, 32)).astype(np.float32), 2.5,
                                   5.0, 16)
    simulated = noise.WhiteNoise().sample([4000, 16, 16], tf.constant([1, 2], tf.int64))
    power = [np.mean(np.abs(np.fft.fft2(model.preprocess(x).numpy())) ** 2, axis=0)
             for x in (real, simulated)]
    # Each frequency's mean power over 4000 images has a relative error of about 1/sqrt(4000).
    np.testing.assert_allclose(power[0], power[1], rtol=0.1, atol=0.05)
