r"""Trains one config in one workdir; running it again resumes.

    python -m experiments.train --config=configs/reverse.py --workdir=runs/reverse
    python -m experiments.train --config=configs/reverse.py:variant=stacked_seq,len=16 \
        --config.train.batch_size=64 --workdir=runs/stacked_seq_16

Several devices: `--config.parallel.mesh_shape='(-1,)'` splits every batch over all of them.
Several hosts: run the same command on each, adding `--coordinator_address=host0:port
--num_processes=N --process_id=i` (or the variables JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES,
JAX_PROCESS_ID); see the README, "Scaling out and surviving faults".
"""

from absl import app, flags
from ml_collections import config_flags

from experiments.launch import one_line_errors

# Importing the training stack leaves JAX's devices alone, so distributed.initialize can follow.
from seqlstm.train import cpu_devices, distributed, host_memory, train_and_evaluate

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file, with an optional :preset argument.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and results.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0 for a multi-process run."
)
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes of a multi-process run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process, 0 .. num_processes - 1.")
_TIMEOUT = flags.DEFINE_float(
    "distributed_timeout", 300.0, "Seconds for all processes to reach the coordinator."
)
_CPU_DEVICES = flags.DEFINE_string(
    "cpu_devices",
    "auto",
    "On a CPU: split each batch over this many CPU devices (1: off); 'auto' splits over one per "
    "core where that was measured to be faster (seqlstm/train/cpu_devices.py).",
)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
    # Before any thread allocates: glibc fixes a thread's arena at its first malloc.
    host_memory.configure_arenas(_CONFIG.value.train.get("malloc_arenas", 0))
    try:
        cluster = distributed.resolve(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    if cluster is None:  # before JAX starts: the CPU device count is fixed then
        cpu_devices.configure(_CONFIG.value, _CPU_DEVICES.value)
    distributed.initialize(cluster, timeout=_TIMEOUT.value)
    train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
    app.run(one_line_errors(main))
