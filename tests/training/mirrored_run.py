"""Train one adversarial step (n_critic critic updates and one generator update) with a given
number of CPU replicas and latent dimension and save the generator's and critic's weights (run as
a script by test_mirrored.py: splitting the CPU must happen before TensorFlow starts). Imported
by test_mirrored.py and test_multiworker.py for ``assert_same_step``, their one comparison."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tfcryogan import cli  # noqa: E402

#: Absolute tolerance on the critic's weights after its Adam updates: a tenth of one step at the
#: critic's learning rate (3e-4). Adam divides each gradient by its own RMS, so a weight whose
#: gradient is numerically zero moves by up to ~1e-5 differently with the summation order (one
#: of the 8-channel critic's 10,553 weights: 1.3e-5); a wrong step (another batch, a missing
#: replica's images) moves many weights by most of a step.
CRITIC_ATOL = 3e-5


def assert_same_step(out, reference):
    """The generator's weights (rtol 1e-4, atol 1e-6) and the critic's (rtol 1e-4, atol
    CRITIC_ATOL) saved by main() in ``out`` equal those in ``reference``, which are not all zero:
    the summation order across devices or workers is the only allowed difference."""
    import numpy as np
    vol = np.load(os.path.join(out, "volume_raw.npy"))
    vol_ref = np.load(os.path.join(reference, "volume_raw.npy"))
    assert np.abs(vol_ref).max() > 0
    np.testing.assert_allclose(vol, vol_ref, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.load(os.path.join(out, "critic.npy")),
                               np.load(os.path.join(reference, "critic.npy")), rtol=1e-4,
                               atol=CRITIC_ATOL)


def main(star, out, replicas, strategy="auto", latent_dim="0"):
    cli.import_tensorflow_quietly()
    import numpy as np  # noqa: E402

    from tfcryogan import data as data_lib  # noqa: E402
    from tfcryogan.training import loop  # noqa: E402
    from tfcryogan.training.config import TrainConfig  # noqa: E402
    data = data_lib.load_particles(star)
    config = TrainConfig(particles=star, output_dir=out, max_steps=1, batch_size=8, n_critic=2,
                         cpu_replicas=int(replicas), strategy=strategy, checkpoint_every=100,
                         summary_every=100, lowpass_fraction=0.5, seed=5,
                         latent_dim=int(latent_dim),
                         critic_batch_statistics=4 if int(latent_dim) else -1,
                         half_maps=False)
    trainer = loop.Trainer(config, data, log=lambda line: None)
    record = trainer.run()
    if not trainer.is_chief:
        return
    np.save(os.path.join(out, "volume_raw.npy"),
            np.concatenate([w.numpy().ravel() for w in trainer.generator.weights]))
    np.save(os.path.join(out, "critic.npy"),
            np.concatenate([w.numpy().ravel() for w in trainer.critic.weights]))
    np.save(os.path.join(out, "metrics.npy"),
            np.array([record["figures"][k] for k in sorted(record["figures"])]))
    print(trainer.strategy_text)


if __name__ == "__main__":
    main(*sys.argv[1:])
