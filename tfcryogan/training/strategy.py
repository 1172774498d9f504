"""Choosing a ``tf.distribute`` strategy.

``auto``: ``MirroredStrategy`` over all local GPUs (one device: the default strategy);
``one_device``; ``mirrored``: ``MirroredStrategy`` over the local GPUs, or over ``cpu_replicas``
logical CPU devices (so the mirrored path runs, and is tested, on a CPU-only machine);
``multiworker``: ``MultiWorkerMirroredStrategy`` configured by ``TF_CONFIG``.
"""

import json
import os

import tensorflow as tf

from tfcryogan.errors import InputError

STRATEGIES = ("auto", "one_device", "mirrored", "multiworker")


def split_cpu(replicas):
    """Split the CPU into ``replicas`` logical devices. Must run before TensorFlow initialises
    its devices (before any op runs); a no-op for ``replicas <= 1``."""
    if replicas <= 1:
        return
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(replicas)])
    except RuntimeError as err:
        raise RuntimeError(f"--cpu_replicas={replicas}: TensorFlow was initialised before the "
                           f"CPU could be split ({err})") from None


def prepare_devices(name, cpu_replicas):
    """Set up TensorFlow's devices before it starts its runtime (before any op runs): on a
    machine without GPUs, one thread per op and as many ops at once as there are cores; and the
    CPU split into ``cpu_replicas`` logical devices for a mirrored strategy.

    Why one thread per op: a training step is many small ops (convolutions of a few hundred
    images, FFTs of small boxes); splitting each over the cores costs more in synchronisation
    than it gains, while independent ops (the critic's real and simulated batches, two
    gold-standard halves) can run side by side. Measured with ``bench/step_profile.py``'s step at
    box 64: 1.2-1.4x the steps per second of TensorFlow's default, 1.1x at box 128.

    Idempotent; once the runtime has started the threads are left as they are."""
    if not tf.config.list_physical_devices("GPU") and \
            tf.config.threading.get_intra_op_parallelism_threads() != 1:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(os.cpu_count() or 1)
        except RuntimeError:
            pass  # the runtime is already running (e.g. in a test): TensorFlow's defaults stay
    if cpu_replicas > 1 and name in ("auto", "mirrored"):
        try:
            split_cpu(cpu_replicas)
        except RuntimeError:  # already running: fine if an earlier call split it
            if len(tf.config.list_logical_devices("CPU")) < cpu_replicas:
                raise


def make_strategy(name, cpu_replicas):
    """Build the strategy ``name`` (see the module docstring).

    Returns:
      ``(strategy, description)``; ``description`` is a short text for the log.
    """
    if name not in STRATEGIES:
        raise InputError(f"--strategy={name}: must be one of {', '.join(STRATEGIES)}")
    prepare_devices(name, cpu_replicas)
    if name == "multiworker":
        # Collective ops are configured when the strategy is built, which must happen before
        # TensorFlow initialises its context (so no device listing before this point).
        if "TF_CONFIG" not in os.environ:
            raise InputError("--strategy=multiworker needs the TF_CONFIG environment variable "
                             "(cluster and task of this worker); see the README")
        try:
            config = json.loads(os.environ["TF_CONFIG"])
        except ValueError as err:
            raise InputError(f"TF_CONFIG is not valid JSON: {err}") from None
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        task = config.get("task", {})
        return strategy, (f"MultiWorkerMirroredStrategy, worker {task.get('index', 0)} of "
                          f"{len(config.get('cluster', {}).get('worker', []))}, "
                          f"{strategy.num_replicas_in_sync} replicas in all")
    gpus = tf.config.list_logical_devices("GPU")
    if name == "one_device":
        device = "/gpu:0" if gpus else "/cpu:0"
        return tf.distribute.OneDeviceStrategy(device), f"one device ({device})"
    if gpus and (len(gpus) > 1 or name == "mirrored"):
        strategy = tf.distribute.MirroredStrategy([g.name for g in gpus])
        return strategy, f"MirroredStrategy over {len(gpus)} GPU(s)"
    if cpu_replicas > 1:
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(
            cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())
        return strategy, f"MirroredStrategy over {len(cpus)} logical CPU devices"
    if gpus:
        return tf.distribute.OneDeviceStrategy("/gpu:0"), "one GPU"
    return tf.distribute.get_strategy(), "default strategy (one CPU device)"


def worker_info(strategy):
    """``(worker_index, num_workers, is_chief)`` of this process."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return 0, 1, True
    task_type, task_id = resolver.task_type, resolver.task_id
    workers = len(resolver.cluster_spec().as_dict().get("worker", []))
    chief = (task_type == "chief") or (task_type == "worker" and task_id == 0)
    return int(task_id or 0), max(workers, 1), chief
