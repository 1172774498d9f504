"""``bin/export``: a training run -> a versioned SavedModel + TF Serving's models.config."""

import os

from tfcryogan import export


def run(f):
    module, record = export.module_from_run(os.path.abspath(f.run_dir))
    export_dir = os.path.abspath(f.export_dir)
    folder = export.save(module, export_dir)
    config = export.write_models_config(os.path.dirname(export_dir), f.serving_base_path)
    s = record["settings"]
    print(f"exported the generator of {f.run_dir} (step {record['step']}, box {s['box']}, "
          f"{s['pixel_size']:g} A/voxel, latent_dim {s['latent_dim']}, {s['symmetry']}):\n"
          f"  {folder}  (signatures: serving_default, sample, project, metadata)\n"
          f"  {config}  (tensorflow_model_server --model_config_file={config})", flush=True)
