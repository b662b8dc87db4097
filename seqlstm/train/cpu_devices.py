"""Every CPU core where it pays: each batch split over one XLA CPU device per core.

XLA:CPU runs an LSTM step's small recurrent matmul on one core, so a one-device run leaves the
other cores of a small machine idle through the whole recurrence. Splitting every batch over one
CPU device per core (`jax_num_cpu_devices`, set before the backend starts, as NumPyro's
`set_host_device_count` does) runs the halves of the batch side by side. It pays when each
device's share of a step is large enough to outweigh the gradient all-reduce and the per-step
dispatch of several devices; for short steps it costs more than it gains.

`choose(config, cores)` is that decision, a rule from the timings of `benchmarks/cpu_split.py`
(benchmarks/README.md, "Every core"). Where seqlstm's native CPU kernel runs the LSTM layers
(float32 or bfloat16, the extension built) it never splits: the kernel spreads each layer over every
core itself, and one device trained every shipped config faster than two (0.33-0.90x for the split).
Without the kernel: split when every device gets at least `MIN_ROWS` rows and the model's recurrence
is long enough (`MIN_STEPS` time steps a row) that the step is recurrence-bound. `configure(config,
requested)` applies it in a launcher, before JAX starts. The split changes results by float rounding
only (losses and parameters within 1e-5 of one device, tested), and a run may resume with another
device count.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import jax
import ml_collections

# The rule's thresholds, from benchmarks/cpu_split.py on 2 cores (see the module docstring).
MIN_ROWS = 32  # rows of the batch per device
MIN_STEPS = 64  # time steps of the longest recurrence in a row


def recurrence_steps(config: ml_collections.ConfigDict) -> int:
    """Time steps of the longest recurrence a training row runs: the data's sequence length, else
    the longest the model takes (an encoder-decoder's `max_source_len` / `max_target_len`); 0
    when the config says neither (a user's task: the rule then keeps one device)."""
    data, model = config.data, config.model
    for key in ("context", "length", "max_length"):
        if isinstance(data.get(key), int):
            return int(data[key])
    lengths = [model.get(key) for key in ("max_source_len", "max_target_len")]
    return max((int(n) for n in lengths if isinstance(n, int)), default=0)


def choose(config: ml_collections.ConfigDict, cores: int) -> tuple[int, str]:
    """How many CPU devices to split `config`'s batches over, and why.

    Returns:
      `(devices, reason)`: `cores` when the rule says splitting pays, else 1.
    """
    batch = config.train.batch_size
    if cores < 2:
        return 1, "one core"
    from seqlstm.kernels import native

    if native.runs_dtype(config.model.get("dtype", "float32")) and native.native_available():
        return 1, "the native LSTM kernel spreads each layer over every core already"
    if batch % cores:
        return 1, f"train.batch_size={batch} does not divide over {cores} devices"
    if batch // cores < MIN_ROWS:
        return 1, f"{batch // cores} rows per device is under {MIN_ROWS}: splitting costs more"
    steps = recurrence_steps(config)
    if steps < MIN_STEPS:
        return 1, f"{steps} time steps a row is under {MIN_STEPS}: splitting costs more"
    return cores, f"{batch // cores} rows and {steps} time steps per device"


def parse_request(requested: str | int) -> int | None:
    """`"auto"` -> None (decide by the rule); a positive int or its text -> that count.

    Raises:
      ValueError: for anything else.
    """
    if requested == "auto":
        return None
    try:
        n = int(requested)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise ValueError(f"--cpu_devices must be 'auto' or a positive int, got {requested!r}")
    return n


def configure(
    config: ml_collections.ConfigDict,
    requested: str | int = "auto",
    *,
    cores: int | None = None,
    log: Callable[[str], None] = print,
) -> int:
    """Splits `config`'s batches over CPU devices when that is faster; call before JAX starts.

    Does nothing when the config already has a mesh, or when JAX's default backend is not the
    CPU (the mesh is then the user's to choose). Call it in single-process runs only. Otherwise sets
    `jax_num_cpu_devices` and `config.parallel.mesh_shape = (n,)`.

    Args:
      config: the run's config (`config.parallel.mesh_shape` is set here).
      requested: `"auto"` (the rule of `choose`) or a device count (1: one device).
      cores: the machine's cores (default `os.cpu_count()`).
      log: where the decision is told.

    Returns:
      The number of devices the batch is split over (1: not split).

    Raises:
      ValueError: for a bad `requested`.
    """
    forced = parse_request(requested)
    cores = cores or os.cpu_count() or 1
    if tuple(config.parallel.mesh_shape):
        return 1
    if forced is None:
        n, why = choose(config, cores)
    elif config.train.batch_size % forced:
        n = 1
        why = f"train.batch_size={config.train.batch_size} does not divide over {forced} devices"
        log(f"--cpu_devices={forced}: {why}; training on one device")
    else:
        n, why = forced, "--cpu_devices"
    if n == 1:
        return 1
    from jax._src import xla_bridge  # jax offers no public test for a started backend

    if xla_bridge.backends_are_initialized():
        log(f"JAX already started; cannot split the batch over {n} CPU devices ({why})")
        return 1
    jax.config.update("jax_num_cpu_devices", n)
    if jax.default_backend() != "cpu":
        return 1
    config.parallel.mesh_shape = (n,)
    log(f"Splitting each batch over {n} CPU devices, one per core ({why}; --cpu_devices=1: off)")
    return n
