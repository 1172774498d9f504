"""``bin/train``: flags -> :class:`~tfcryogan.training.config.TrainConfig` -> training run ->
what was written where."""

import os

from tfcryogan.training import loop
from tfcryogan.training.config import TrainConfig


def run(f):
    """Train as the parsed flags ``f`` say; prints the outputs."""
    config = TrainConfig.from_values(f.flag_values_dict())
    trainer, record = loop.train(config)
    if not trainer.is_chief:
        return
    outputs = record["outputs"]
    out = [f"trained {record['step']} steps in {record['wall_seconds']:.0f} s; wrote:",
           f"  {outputs['volume']}  (map, {trainer.data.pixel_size:.3f} A/voxel)"]
    if "gold_standard" in record:
        gold = record["gold_standard"]
        out += [f"  {outputs['half1']}, {os.path.basename(outputs['half2'])}  (half maps; half 2 "
                "aligned onto half 1)",
                f"  {outputs['fsc_gold']}, fsc_gold.png: gold-standard FSC 0.143 at "
                f"{gold['masked']['resolution_0143_A']:.1f} A masked, "
                f"{gold['unmasked']['resolution_0143_A']:.1f} A unmasked",
                f"  {outputs['initial_model']}  (for relion_refine --ref: "
                f"{trainer.data.box_in} px, {trainer.data.pixel_size_in:.3f} A/px, low-passed to "
                f"{gold['unmasked']['resolution_0143_A']:.1f} A)",
                f"  {record['split']['file']}  (the halves: rlnRandomSubset)"]
    out += [f"  {outputs['checkpoints']}/",
            f"  {outputs['logs']}/  (tensorboard --logdir {outputs['logs']})",
            f"  {trainer.run_folder.record_path}"]
    if "fsc" in record:
        fsc = record["fsc"]
        out.append(f"  {os.path.join(trainer.run_folder.path, 'fsc.csv')}, fsc.png: FSC 0.5 at "
                   f"{fsc['resolution_0.5_A']:.1f} A ({fsc['fraction_0.5']:.2f} of Nyquist), "
                   f"0.143 at {fsc['resolution_0.143_A']:.1f} A")
    print("\n".join(out), flush=True)
