"""Surviving what long runs meet: preemption signals, unreadable checkpoints, non-finite losses.

- SIGTERM / SIGINT: `StopRequest` turns the first one into a request to checkpoint after the
  current step and exit cleanly; with several processes they first agree on the step
  (`StopRequest.agreed`), so that all save the same one. The signal is never swallowed: the
  process ends within `STOP_DEADLINE_S` of it (at once on a second SIGTERM; a second SIGINT,
  Ctrl-C twice, interrupts), stop or no stop. Where no clean stop exists (the final
  evaluation), `signals_interrupt` makes either signal an `Interrupted` error that says what is
  kept.
- Half-written checkpoints: orbax writes a checkpoint under a temporary name and renames it when
  complete, so a save killed midway is never listed. A listed checkpoint that does not read back
  (files lost or damaged since, caught by its checksums) is set aside by
  `restore_latest_readable`, which resumes from the newest one that reads.
- NaN / Inf loss: `guard_nonfinite` makes a step with a non-finite loss, gradient or update
  change no parameter and report it; `config.train.on_nan` then stops the run naming the step
  and the cause (`NonFiniteLossError`; nothing after it is checkpointed) or skips such steps.
  Non-finite data is refused before, when the run is built (`seqlstm.train.run.check_task_data`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from seqlstm.train.errors import Interrupted, quiet_logs
from seqlstm.train.state import TrainState

ON_NAN = ("stop", "skip")

# With several processes, stop requests are compared every this many steps (one tiny all-gather);
# a preemption notice gives tens of seconds, far more than this many steps take.
STOP_SYNC_EVERY = 10

# After a stop signal, seconds for the current step and its checkpoint before the process exits
# regardless: below the grace period of the usual schedulers, far above a checkpoint's time.
STOP_DEADLINE_S = 60.0


def check_on_nan(value: str) -> str:
    """Returns `value` if it is one of `ON_NAN`, else raises ValueError."""
    if value not in ON_NAN:
        raise ValueError(f"config.train.on_nan must be one of {ON_NAN}, got {value!r}")
    return value


class NonFiniteLossError(FloatingPointError):
    """A training step had a NaN or Inf loss, gradient or update, and `on_nan` is "stop".

    Attributes:
      step: the first such step (1-based, as in metrics.jsonl).
      checkpoint: the step of the last checkpoint, all of whose steps were finite (None: none).
      cause: `"loss"` (the loss or gradient) or `"update"` (the parameters or optimizer state
        after a finite loss and gradient: `nonfinite_cause`).
    """

    def __init__(self, step: int, checkpoint: int | None, workdir: str, cause: str = "loss"):
        self.step, self.checkpoint, self.cause = step, checkpoint, cause
        where = (
            f"the last good checkpoint is step {checkpoint} in {workdir}; running again resumes "
            "from it"
            if checkpoint is not None
            else f"no checkpoint was saved in {workdir}; running again starts over"
        )
        if cause == "update":
            what = "Non-finite parameters or optimizer state after the update"
            advice = (
                "The loss and gradient were finite, so the optimizer made them: check "
                "--config.optim (eps, b1, b2, learning_rate), or skip such steps with "
                "--config.train.on_nan=skip."
            )
        else:
            what = "Non-finite loss or gradient"
            advice = (
                "Lower --config.optim.learning_rate, set --config.optim.grad_clip_norm, or skip "
                "such steps with --config.train.on_nan=skip."
            )
        super().__init__(
            f"{what} at step {step}: stopped without checkpointing it; {where}. {advice}"
        )


def all_finite(tree: Any) -> jax.Array:
    """A bool scalar: True when every floating value of `tree` is finite (one fused reduction;
    integer leaves, such as optax's step counts, cannot be NaN and are skipped)."""
    flags = [
        jnp.all(jnp.isfinite(x))
        for x in jax.tree.leaves(tree)
        if jnp.issubdtype(jnp.result_type(x), jnp.inexact)
    ]
    return jnp.all(jnp.stack(flags)) if flags else jnp.asarray(True)


def guard_nonfinite(train_step: Callable) -> Callable:
    """Wraps a pure `train_step(state, batch) -> (state, metrics)` against non-finite values.

    A step whose `loss_sum` or `grad_norm` is NaN or Inf, or whose update leaves a NaN or Inf in
    the parameters, optimizer state or carried state (finite gradients, but an optimizer setting
    that divides by zero or overflows), keeps the parameters, optimizer state and carried state it
    was given (the step counter still advances: its batch is consumed), zeroes its metric sums
    (so the logged loss stays the mean of the steps taken), and reports `nonfinite = 1`, with
    `nonfinite_update = 1` when the loss and gradient were finite and the update was not. Finite
    steps are returned bit for bit, with both 0.
    """

    def guarded(state: TrainState, batch):
        new, metrics = train_step(state, batch)
        loss_ok = jnp.isfinite(metrics["loss_sum"]) & jnp.isfinite(metrics["grad_norm"])
        update_ok = all_finite((new.params, new.opt_state, new.carry))
        ok = loss_ok & update_ok
        keep = lambda a, b: jnp.where(ok, a, b)
        new = new._replace(
            params=jax.tree.map(keep, new.params, state.params),
            opt_state=jax.tree.map(keep, new.opt_state, state.opt_state),
            carry=jax.tree.map(keep, new.carry, state.carry),
        )
        metrics = {k: jnp.where(ok, v, jnp.zeros_like(v)) for k, v in metrics.items()}
        metrics["nonfinite"] = (~ok).astype(jnp.float32)
        metrics["nonfinite_update"] = (loss_ok & ~update_ok).astype(jnp.float32)
        return new, metrics

    return guarded


def nonfinite_steps(metrics: Sequence[dict[str, Any]], last_step: int) -> list[int]:
    """The steps among `metrics` (host values of consecutive steps ending at `last_step`) that
    `guard_nonfinite` flagged."""
    first = last_step - len(metrics) + 1
    return [first + i for i, m in enumerate(metrics) if float(m.get("nonfinite", 0.0)) > 0]


def nonfinite_cause(metrics: Sequence[dict[str, Any]], last_step: int, step: int) -> str:
    """What `guard_nonfinite` found non-finite at `step` (one of `nonfinite_steps`): `"update"`
    (the parameters or optimizer state after a finite loss and gradient) or `"loss"`."""
    m = metrics[step - (last_step - len(metrics) + 1)]
    return "update" if float(m.get("nonfinite_update", 0.0)) > 0 else "loss"


def any_process(flag: bool) -> bool:
    """True on every process if `flag` is True on any (a collective: all processes must call)."""
    if jax.process_count() == 1:
        return bool(flag)
    flags = multihost_utils.process_allgather(np.asarray([flag], np.int32))
    return bool(np.any(flags))


class StopRequest:
    """Turns the first SIGINT / SIGTERM into a request to checkpoint and stop after the current
    step (a consistent point); a second SIGINT interrupts at once (KeyboardInterrupt, which the
    training loop reports as `Interrupted`: one line from a launcher, and a notebook's kernel
    lives on).

    A signal is never swallowed: if the process has not ended `deadline_s` seconds after the
    first one (say, the main thread is blocked in a write that will not return), or on a second
    SIGTERM, it exits at once with status 128 + the signal's number and one line, without a
    checkpoint (the last complete one is kept; orbax never lists a half-written one). A thread
    watches the signals through `signal.set_wakeup_fd`, so this holds even while the main thread
    is stuck in native code, where Python's handlers do not run. Installed only on the main
    thread; `restore()` puts the previous handlers back.
    """

    def __init__(self, deadline_s: float | None = None) -> None:
        self.requested = False
        self.deadline_s = STOP_DEADLINE_S if deadline_s is None else deadline_s
        self.saved: dict[int, Any] = {}
        self._timer: threading.Timer | None = None
        self._wakeup: tuple[socket.socket, socket.socket] | None = None
        if threading.current_thread() is not threading.main_thread():
            return
        defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
        for sig, default in defaults.items():
            previous = signal.signal(sig, self._handle)
            # None: a handler installed outside Python, which cannot be put back from here.
            self.saved[sig] = default if previous is None else previous
        read, write = socket.socketpair()
        write.setblocking(False)
        self._old_wakeup = signal.set_wakeup_fd(write.fileno(), warn_on_full_buffer=False)
        self._wakeup = (read, write)
        threading.Thread(target=self._watch, args=(read,), daemon=True).start()

    def _handle(self, signum, frame) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self.saved.get(signal.SIGINT, signal.default_int_handler))

    def _watch(self, read: socket.socket) -> None:
        terms = 0
        while True:
            try:
                data = read.recv(64)
            except OSError:
                return
            if not data or 0 in data:  # 0: `restore()` ends the watch
                read.close()
                return
            for signum in data:
                if signum not in (signal.SIGINT, signal.SIGTERM):
                    continue
                terms += signum == signal.SIGTERM
                if terms >= 2:
                    self._exit_now(signum, "a second SIGTERM")
                if self._timer is None:
                    name = signal.Signals(signum).name
                    why = f"no clean stop within {self.deadline_s:g} s of {name}"
                    self._timer = threading.Timer(self.deadline_s, self._exit_now, (signum, why))
                    self._timer.daemon = True
                    self._timer.start()

    @staticmethod
    def _exit_now(signum: int, why: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(
                f"error: {why}: exiting now without a checkpoint; the last complete one is kept "
                "(run again to resume from it)\n"
            )
            sys.stderr.flush()
        os._exit(128 + signum)

    def agreed(self, step: int) -> bool:
        """Whether to stop after `step`: at once with one process; with several, when any
        process was signalled, checked every `STOP_SYNC_EVERY` steps so all stop together."""
        if jax.process_count() == 1:
            return self.requested
        return step % STOP_SYNC_EVERY == 0 and any_process(self.requested)

    def restore(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._wakeup is not None:
            signal.set_wakeup_fd(self._old_wakeup)
            read, write = self._wakeup
            # The watching thread closes `read` itself: closed here, that thread could go on
            # reading whatever file next gets its number.
            with contextlib.suppress(OSError):
                write.send(b"\0")
            write.close()
            self._wakeup = None
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def signals_interrupt(message: str) -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise `Interrupted(message)`, for the launcher's one
    line and exit code 128 + the signal's number (SIGTERM would end the process without a word,
    SIGINT with a traceback); the previous handlers come back after it. Only on the main thread
    (elsewhere it does nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise Interrupted(f"{signal.Signals(signum).name} {message}", signum)

    saved = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)


class NoUsableCheckpointError(ValueError):
    """Every checkpoint of a workdir fails to restore."""


def restore_latest_readable(
    ckpt, state_like: TrainState, best_like: Any, log: Callable[[str], None] = print
) -> tuple[int, TrainState, Any, dict]:
    """Restores the newest checkpoint of `ckpt` (a `Checkpointer`) that reads back and matches
    its checksums.

    A listed checkpoint that fails to restore (files lost or damaged after it was written) is
    moved to `checkpoints-unreadable/` next to `checkpoints/` (kept for inspection, no longer
    listed, so its step is saved afresh), and the next older one is tried.

    Returns:
      `(step, state, best_params, meta)`.

    Raises:
      NoUsableCheckpointError: none reads back; it names each one's failure and says what to do.
        `ckpt` is closed then, and nothing is moved.
      FileNotFoundError: there is no checkpoint.
    """
    with quiet_logs():
        steps = sorted(ckpt.manager.all_steps(), reverse=True)
    if not steps:
        raise FileNotFoundError("no checkpoint to restore")
    failed: list[tuple[int, str]] = []
    for step in steps:
        try:
            state, best, meta = ckpt.restore(state_like, best_like, step=step)
        except Exception as e:  # noqa: BLE001 -- any failure to read means: do not trust it
            cause = e.__cause__ or e  # orbax's own error, where `restore` named the checkpoint
            why = f"{type(cause).__name__}: {(str(cause).strip().splitlines() or [''])[0][:200]}"
            log(
                f"Checkpoint {step} in {ckpt.manager.directory} does not read back ({why}); "
                "trying an older one"
            )
            failed.append((step, why))
            continue
        if failed:
            _set_aside(ckpt, [s for s, _ in failed], log)
        return step, state, best, meta
    directory = str(ckpt.manager.directory)
    ckpt.close()  # its threads, left running, end the interpreter with unrelated errors
    reasons = "; ".join(f"step {s}: {why}" for s, why in failed)
    raise NoUsableCheckpointError(
        f"no checkpoint in {directory} reads back ({reasons}). To start this run over, move "
        f"that directory aside (mv {directory} {directory}-damaged) and run again; or train in "
        "a new --workdir."
    )


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
