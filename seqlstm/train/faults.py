"""Surviving what long runs meet: preemption signals, unreadable checkpoints, non-finite losses.

- SIGTERM / SIGINT: `StopRequest` turns the first one into a request to checkpoint after the
  current step and exit cleanly; with several processes they first agree on the step
  (`StopRequest.agreed`), so that all save the same one.
- Half-written checkpoints: orbax writes a checkpoint under a temporary name and renames it when
  complete, so a save killed midway is never listed. A listed checkpoint that does not read back
  (files lost or damaged since) is set aside by `restore_latest_readable`, which resumes from the
  newest one that reads.
- NaN / Inf loss: `guard_nonfinite` makes a step with a non-finite loss or gradient change no
  parameter and report it; `config.train.on_nan` then stops the run naming the step
  (`NonFiniteLossError`; nothing after it is checkpointed) or skips such steps.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from seqlstm.train.state import TrainState

ON_NAN = ("stop", "skip")

# With several processes, stop requests are compared every this many steps (one tiny all-gather);
# a preemption notice gives tens of seconds, far more than this many steps take.
STOP_SYNC_EVERY = 10


def check_on_nan(value: str) -> str:
    """Returns `value` if it is one of `ON_NAN`, else raises ValueError."""
    if value not in ON_NAN:
        raise ValueError(f"config.train.on_nan must be one of {ON_NAN}, got {value!r}")
    return value


class NonFiniteLossError(FloatingPointError):
    """A training step had a NaN or Inf loss (or gradient) and `on_nan` is "stop".

    Attributes:
      step: the first such step (1-based, as in metrics.jsonl).
      checkpoint: the step of the last checkpoint, all of whose steps were finite (None: none).
    """

    def __init__(self, step: int, checkpoint: int | None, workdir: str):
        self.step, self.checkpoint = step, checkpoint
        where = (
            f"the last good checkpoint is step {checkpoint} in {workdir}; running again resumes "
            "from it"
            if checkpoint is not None
            else f"no checkpoint was saved in {workdir}; running again starts over"
        )
        super().__init__(
            f"Non-finite loss or gradient at step {step}: stopped without checkpointing it; "
            f"{where}. Lower --config.optim.learning_rate, set --config.optim.grad_clip_norm, or "
            "skip such steps with --config.train.on_nan=skip."
        )


def guard_nonfinite(train_step: Callable) -> Callable:
    """Wraps a pure `train_step(state, batch) -> (state, metrics)` against non-finite losses.

    A step whose `loss_sum` or `grad_norm` is NaN or Inf keeps the parameters and optimizer state
    it was given (the step counter still advances: its batch is consumed), zeroes its metric sums
    (so the logged loss stays the mean of the steps taken), and reports `nonfinite = 1`. Finite
    steps are returned bit for bit, with `nonfinite = 0`.
    """

    def guarded(state: TrainState, batch):
        new, metrics = train_step(state, batch)
        ok = jnp.isfinite(metrics["loss_sum"]) & jnp.isfinite(metrics["grad_norm"])
        keep = lambda a, b: jnp.where(ok, a, b)
        new = new._replace(
            params=jax.tree.map(keep, new.params, state.params),
            opt_state=jax.tree.map(keep, new.opt_state, state.opt_state),
        )
        metrics = {k: jnp.where(ok, v, jnp.zeros_like(v)) for k, v in metrics.items()}
        metrics["nonfinite"] = (~ok).astype(jnp.float32)
        return new, metrics

    return guarded


def nonfinite_steps(metrics: Sequence[dict[str, Any]], last_step: int) -> list[int]:
    """The steps among `metrics` (host values of consecutive steps ending at `last_step`) that
    `guard_nonfinite` flagged."""
    first = last_step - len(metrics) + 1
    return [first + i for i, m in enumerate(metrics) if float(m.get("nonfinite", 0.0)) > 0]


def any_process(flag: bool) -> bool:
    """True on every process if `flag` is True on any (a collective: all processes must call)."""
    if jax.process_count() == 1:
        return bool(flag)
    flags = multihost_utils.process_allgather(np.asarray([flag], np.int32))
    return bool(np.any(flags))


class StopRequest:
    """Turns the first SIGINT / SIGTERM into a request to checkpoint and stop after the current
    step (a consistent point); a second SIGINT interrupts at once. Installed only on the main
    thread; `restore()` puts the previous handlers back."""

    def __init__(self) -> None:
        self.requested = False
        self.saved: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
            for sig, default in defaults.items():
                previous = signal.signal(sig, self._handle)
                # None: a handler installed outside Python, which cannot be put back from here.
                self.saved[sig] = default if previous is None else previous

    def _handle(self, signum, frame) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self.saved.get(signal.SIGINT, signal.default_int_handler))

    def agreed(self, step: int) -> bool:
        """Whether to stop after `step`: at once with one process; with several, when any
        process was signalled, checked every `STOP_SYNC_EVERY` steps so all stop together."""
        if jax.process_count() == 1:
            return self.requested
        return step % STOP_SYNC_EVERY == 0 and any_process(self.requested)

    def restore(self) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)


def restore_latest_readable(
    ckpt, state_like: TrainState, best_like: Any, log: Callable[[str], None] = print
) -> tuple[int, TrainState, Any, dict]:
    """Restores the newest checkpoint of `ckpt` (a `Checkpointer`) that reads back.

    A listed checkpoint that fails to restore (files lost or damaged after it was written) is
    moved to `checkpoints-unreadable/` next to `checkpoints/` (kept for inspection, no longer
    listed, so its step is saved afresh), and the next older one is tried.

    Returns:
      `(step, state, best_params, meta)`.

    Raises:
      The first checkpoint's error if none reads back; FileNotFoundError if there is none.
    """
    steps = sorted(ckpt.manager.all_steps(), reverse=True)
    if not steps:
        raise FileNotFoundError("no checkpoint to restore")
    failed: list[tuple[int, Exception]] = []
    for step in steps:
        try:
            state, best, meta = ckpt.restore(state_like, best_like, step=step)
        except Exception as e:  # noqa: BLE001 -- any failure to read means: do not trust it
            log(
                f"Checkpoint {step} in {ckpt.manager.directory} does not read back "
                f"({type(e).__name__}: {str(e).splitlines()[0][:200]}); trying an older one"
            )
            failed.append((step, e))
            continue
        if failed:
            _set_aside(ckpt, [s for s, _ in failed], log)
        return step, state, best, meta
    raise failed[0][1]


def _set_aside(ckpt, steps: list[int], log: Callable[[str], None]) -> None:
    directory = str(ckpt.manager.directory)
    aside = os.path.join(os.path.dirname(directory), "checkpoints-unreadable")
    if jax.process_index() == 0:
        os.makedirs(aside, exist_ok=True)
        for step in steps:
            src = os.path.join(directory, str(step))
            dst = os.path.join(aside, f"{step}")
            if os.path.exists(dst):
                shutil.rmtree(dst)
            os.replace(src, dst)
            log(f"Moved unreadable checkpoint {step} to {dst}")
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("seqlstm_set_aside_checkpoints")
    ckpt.manager.reload()
