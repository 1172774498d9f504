#!/usr/bin/env python3
"""Training beyond one device: throughput, cost against box size, and memory on a large stack.

Prints:
1. steps/s with 1 vs 2 logical CPU devices (MirroredStrategy) and 1 vs 2 local workers
   (MultiWorkerMirroredStrategy on 127.0.0.1), same global batch;
2. time per simulated+criticised image at boxes 32, 64 and 128 and the fitted exponent of
   time ~ box^p (target p <= 2.3);
3. peak resident memory while training a few steps on a large generated stack (default ~10 GB on
   disk), which must stay far below the stack's size (images are read by offset, a batch at a
   time, never the whole stack).

  python bench/scaling.py [--part=all|devices|boxes|memory] [--stack_gb=10]
"""

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
WORK = "/tmp/bench_scaling"


def dataset(box, n, name, pixel=None):
    """A synthetic particle set of the phantom (made once)."""
    star = os.path.join(WORK, f"{name}.star")
    if os.path.exists(star):
        return star
    subprocess.run([sys.executable, os.path.join(ROOT, "bin", "simulate"), "--volume=phantom",
                    f"--box={box}", f"--pixel_size={pixel or 256.0 / box}",
                    f"--n_particles={n}", "--snr_db=-5", "--shift_std_A=2", f"--output={star}"],
                   check=True, stdout=subprocess.DEVNULL)
    return star


def worker(args):
    """Run ``--steps`` training steps in this process and print steps/s (JSON)."""
    from tfcryogan import cli
    cli.import_tensorflow_quietly()
    from tfcryogan import data as data_lib
    from tfcryogan.training import loop
    from tfcryogan.training.config import TrainConfig
    data = data_lib.load_particles(args.star)
    config = TrainConfig(particles=args.star, output_dir=args.out, max_steps=10 ** 6,
                         batch_size=args.batch, cpu_replicas=args.replicas,
                         strategy=args.strategy, checkpoint_every=10 ** 6,
                         summary_every=10 ** 6, restart=True, half_maps=False)
    trainer = loop.Trainer(config, data, log=lambda line: None)
    iterator = trainer.batches(0)
    for _ in range(3):  # compile and warm up
        trainer.step(next(iterator))
    t = time.perf_counter()
    for _ in range(args.steps):
        trainer.step(next(iterator))
    seconds = (time.perf_counter() - t) / args.steps
    images = args.batch * (config.n_critic + 1)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # Linux: KB -> GB
    print(json.dumps({"steps_per_s": 1.0 / seconds, "s_per_image": seconds / images,
                      "chief": trainer.is_chief, "peak_rss_gb": peak_gb}), flush=True)


def run_worker(star, strategy="auto", replicas=1, batch=32, steps=10, env=None):
    cmd = [sys.executable, os.path.abspath(__file__), "--part=worker", f"--star={star}",
           f"--strategy={strategy}", f"--replicas={replicas}", f"--batch={batch}",
           f"--steps={steps}", f"--out={os.path.join(WORK, 'run_' + strategy)}"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def result(proc):
    out, err = proc.communicate()
    if proc.returncode:
        raise RuntimeError(err[-2000:])
    return json.loads(out.strip().splitlines()[-1])


def devices(args):
    star = dataset(32, 4000, "box32")
    one = result(run_worker(star))
    two = result(run_worker(star, "mirrored", replicas=2))
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    cluster = [f"127.0.0.1:{p}" for p in ports]
    procs = [run_worker(star, "multiworker", env=dict(os.environ, TF_CONFIG=json.dumps(
        {"cluster": {"worker": cluster}, "task": {"type": "worker", "index": i}})))
        for i in range(2)]
    multi = [result(p) for p in procs][0]
    print(f"box 32, global batch 32, {os.cpu_count()} CPU cores:")
    print(f"  1 device                       {one['steps_per_s']:6.2f} steps/s")
    print(f"  MirroredStrategy, 2 CPU devices {two['steps_per_s']:6.2f} steps/s "
          f"({two['steps_per_s'] / one['steps_per_s']:.2f} x)")
    print(f"  MultiWorker, 2 local workers    {multi['steps_per_s']:6.2f} steps/s "
          f"({multi['steps_per_s'] / one['steps_per_s']:.2f} x)")
    print("  (one machine's 2 cores are shared by the devices/workers: these figures measure "
          "the overhead of the distributed path, not a speed-up)")


def boxes(args):
    sizes, times = [32, 64, 128], []
    for box in sizes:
        star = dataset(box, 1500, f"box{box}")
        times.append(result(run_worker(star, batch=16, steps=4 if box == 128 else 8))[
            "s_per_image"])
    p = np.polyfit(np.log(sizes), np.log(times), 1)[0]
    print("time per simulated + criticised image (training step / images, batch 16):")
    for box, t in zip(sizes, times):
        print(f"  box {box:4d}: {t * 1000:8.2f} ms")
    print(f"  fitted exponent: time ~ box^{p:.2f} (target <= 2.3)")


def memory(args):
    box = 128
    n = int(args.stack_gb * 1e9 / (4 * box * box))
    star = dataset(box, n, f"large{box}_{n}", pixel=2.0)
    stack = os.path.splitext(star)[0] + ".mrcs"
    size_gb = os.path.getsize(stack) / 1e9
    small = result(run_worker(dataset(box, 2000, f"small{box}", pixel=2.0), batch=32, steps=6))
    large = result(run_worker(star, batch=32, steps=6))
    print(f"training 9 steps at box {box}, batch 32 (peak resident memory of the training "
          f"process):")
    print(f"  2,000 particles:        {small['peak_rss_gb']:.2f} GB")
    print(f"  {n:,} particles: {large['peak_rss_gb']:.2f} GB, stack {size_gb:.1f} GB on disk "
          f"({large['peak_rss_gb'] / size_gb * 100:.0f}% of the stack)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="all",
                        choices=["all", "devices", "boxes", "memory", "worker"])
    parser.add_argument("--stack_gb", type=float, default=10.0)
    parser.add_argument("--star")
    parser.add_argument("--strategy", default="auto")
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out")
    args = parser.parse_args()
    os.makedirs(WORK, exist_ok=True)
    if args.part == "worker":
        return worker(args)
    for part in (["devices", "boxes", "memory"] if args.part == "all" else [args.part]):
        {"devices": devices, "boxes": boxes, "memory": memory}[part](args)
    return None


if __name__ == "__main__":
    main()
