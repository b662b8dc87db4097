"""Disk and checkpoint errors: writes that name their file, checkpoints that do not read back,
and third-party logs kept quiet while a checkpoint is read or written.

- `WorkdirWriteError`: any writer the run owns (metrics, TensorBoard, checkpoints, results,
  config) turns an I/O error into this (`writing`), saying what failed where ("disk full writing
  <path>").
- Half-written checkpoints: orbax writes a checkpoint under a temporary name and renames it when
  complete, so a save killed midway is never listed. A listed checkpoint that does not read back
  (files lost or damaged since, caught by its checksums: `CorruptCheckpointError`) is set aside
  by `restore_latest_readable`, which resumes from the newest one that reads
  (`NoUsableCheckpointError` when none does).
- `quiet_logs()`: while orbax reads or writes, its error logs (hundreds of lines of asyncio and
  TensorStore frames for one damaged file) are dropped unless logging is verbose; the exception
  that follows says what went wrong.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from typing import Any

import jax
from absl import logging as absl_logging
from jax.experimental import multihost_utils

from seqlstm.train.causes import is_disk_full
from seqlstm.train.state import TrainState


class WorkdirWriteError(OSError):
    """Writing `path` in the workdir failed; the message names the file and the cause.

    Attributes:
      path: what was being written.
      disk_full: whether the cause was a full disk (or an exhausted quota).
    """

    def __init__(self, path: str, cause: BaseException):
        self.path, self.cause = str(path), cause
        self.disk_full = is_disk_full(cause)
        code = errno.ENOSPC if self.disk_full else getattr(cause, "errno", None)
        super().__init__(code, str(cause), self.path)

    def __str__(self) -> str:
        if self.disk_full:
            return (
                f"disk full writing {self.path}; free space (or use a --workdir on another disk) "
                "and run again to resume from the last complete checkpoint"
            )
        first = str(self.cause).strip().splitlines()[0][:300] if str(self.cause).strip() else ""
        return f"cannot write {self.path} ({type(self.cause).__name__}: {first})"


@contextlib.contextmanager
def writing(path: str) -> Iterator[None]:
    """Turns an I/O error raised inside the block into a `WorkdirWriteError` naming `path`."""
    try:
        yield
    except WorkdirWriteError:
        raise
    except OSError as e:
        raise WorkdirWriteError(path, e) from e


@contextlib.contextmanager
def after_failure() -> Iterator[None]:
    """For cleanup in a `finally`: while another exception is being raised, errors of the block
    are dropped, so that the first failure (say, a full disk while saving) is the one reported
    rather than a second one while closing."""
    failing = sys.exc_info()[1] is not None
    try:
        yield
    except Exception:
        if not failing:
            raise


def verbose() -> bool:
    """Whether logging asks for detail: absl verbosity INFO (0) or more."""
    return absl_logging.get_verbosity() >= absl_logging.INFO


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """Silences the `absl` logger (orbax, TensorStore wrappers) and asyncio's inside the block,
    unless logging is verbose."""
    if verbose():
        yield
        return
    loggers = [logging.getLogger(name) for name in ("absl", "asyncio")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


class CorruptCheckpointError(ValueError):
    """A checkpoint's files do not match the checksums saved with it."""


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
