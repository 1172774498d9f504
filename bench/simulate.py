#!/usr/bin/env python3
"""Speed of bin/simulate against relion_project (RELION 3.1) on the same poses.

Both programs make the same N images (default 10,000 at box 128) from the same map and the same
STAR file of random poses, shifts and CTFs (with B-factors), add white Gaussian noise, and write an
.mrcs + STAR. Runs alternate (RELION, ours, RELION, ours, ...) so that both see the same machine
state; the figure is the median over pairs of time(relion_project) / time(bin/simulate): above 1
means we are faster. Wall-clock times include start-up (TensorFlow import for us) and writing.

  python bench/simulate.py [--n=10000] [--box=128] [--repeats=3]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import mrcfile
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def make_map(path, box):
    """The beta-galactosidase density (5A1A) when ../shared/data is there, else the phantom."""
    model = os.path.join(ROOT, "..", "shared", "data", "betagal", "5a1a.cif")
    if os.path.exists(model):
        from tfcryogan.io import model_to_density
        pixel = 180.0 / box * 1.4
        vol, what = model_to_density(model, box, pixel, max(2.0 * pixel, 3.0)), "5A1A density"
    else:
        from tfcryogan.phantoms import phantom
        pixel, vol, what = 2.0, phantom(box), "built-in phantom"
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(vol.astype(np.float32))
        m.voxel_size = pixel
    return pixel, what


def write_poses(path, n, box, pixel, seed=0):
    import pandas as pd
    import starfile
    rng = np.random.default_rng(seed)
    optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnOpticsGroupName": ["opticsGroup1"],
                           "rlnVoltage": [300.0], "rlnSphericalAberration": [2.7],
                           "rlnAmplitudeContrast": [0.1], "rlnImagePixelSize": [pixel],
                           "rlnImageSize": [box], "rlnImageDimensionality": [2]})
    parts = pd.DataFrame({
        "rlnImageName": [f"{i + 1:06d}@unused.mrcs" for i in range(n)],
        "rlnAngleRot": rng.uniform(-180, 180, n),
        "rlnAngleTilt": np.degrees(np.arccos(rng.uniform(-1, 1, n))),
        "rlnAnglePsi": rng.uniform(-180, 180, n),
        "rlnOriginXAngst": rng.normal(0, 3, n), "rlnOriginYAngst": rng.normal(0, 3, n),
        "rlnDefocusU": rng.uniform(8000, 25000, n), "rlnDefocusV": rng.uniform(8000, 25000, n),
        "rlnDefocusAngle": rng.uniform(0, 180, n), "rlnCtfBfactor": rng.uniform(0, 100, n),
        "rlnOpticsGroup": np.ones(n, int)})
    starfile.write({"optics": optics, "particles": parts}, path, overwrite=True)


def timed(cmd, cwd):
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--box", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("relion_project") is None:
        sys.exit("relion_project not found: apt-get install relion")
    work = tempfile.mkdtemp(prefix="bench_simulate_")
    try:
        pixel, what = make_map(os.path.join(work, "map.mrc"), args.box)
        write_poses(os.path.join(work, "poses.star"), args.n, args.box, pixel)
        relion = ["relion_project", "--i", "map.mrc", "--o", "relion", "--ang", "poses.star",
                  "--ctf", "--angpix", str(pixel), "--add_noise", "--white_noise", "1.0"]
        ours = [sys.executable, os.path.join(ROOT, "bin", "simulate"), "--volume=map.mrc",
                "--poses_from=poses.star", "--noise=white", "--snr_db=-10", "--output=ours.star"]
        print(f"{args.n} images, box {args.box}, {pixel:.3f} A/px ({what}), CTF + white noise, "
              f"{os.cpu_count()} CPU cores; alternating runs")
        pairs = []
        for i in range(args.repeats):
            t_relion = timed(relion, work)
            t_ours = timed(ours, work)
            pairs.append(t_relion / t_ours)
            print(f"  run {i + 1}: relion_project {t_relion:6.2f} s ({args.n / t_relion:6.0f} img/s)"
                  f"   bin/simulate {t_ours:6.2f} s ({args.n / t_ours:6.0f} img/s)"
                  f"   ratio {t_relion / t_ours:.2f}")
        print(f"median time ratio relion_project / bin/simulate: {statistics.median(pairs):.2f} "
              "(>1: bin/simulate is faster)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
