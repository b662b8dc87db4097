"""How failures reach the user: one-line launcher errors, write errors that name their file, and
third-party logs kept quiet while a checkpoint is read or written.

- `WorkdirWriteError`: any writer the run owns (metrics, TensorBoard, checkpoints, results,
  config) turns an I/O error into this, saying what failed where ("disk full writing <path>").
- `one_line_errors(main)`: wraps an absl launcher's `main` so that a config, data or workdir error
  prints as `error: <message>` with exit code 2 (a write error or a non-finite loss: exit code 1);
  the traceback comes before it only with `--verbosity=0` (or higher). Other exceptions are bugs
  and keep their traceback.
- Out of memory (XLA's `RESOURCE_EXHAUSTED`, or Python's `MemoryError`) and interrupts
  (`KeyboardInterrupt`, `Interrupted`) also end a launcher in one line: exit code 2 and
  128 + the signal's number.
- `quiet_logs()`: while orbax reads or writes, its error logs (hundreds of lines of asyncio and
  TensorStore frames for one damaged file) are dropped unless logging is verbose; the exception
  that follows says what went wrong.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import signal
import sys
import traceback
from collections.abc import Callable, Iterator

from absl import app, flags
from absl import logging as absl_logging

# Exit codes: 2 for what the user must change (config, data, workdir), 1 for what went wrong
# while running (a full disk, a non-finite loss).
USAGE_EXIT, RUNTIME_EXIT = 2, 1

_DISK_FULL = ("No space left on device", "RESOURCE_EXHAUSTED", "Disk quota exceeded")


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


def _chain(e: BaseException | None) -> Iterator[BaseException]:
    """`e` and the exceptions it was raised from."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def is_disk_full(e: BaseException) -> bool:
    """Whether `e` (or an exception it was raised from) reports a full disk (and not a full
    memory, which XLA reports as RESOURCE_EXHAUSTED too)."""
    for link in _chain(e):
        if isinstance(link, OSError) and link.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(s in str(link) for s in _DISK_FULL) and not _says_out_of_memory(link):
            return True
    return False


def _says_out_of_memory(e: BaseException) -> bool:
    text = str(e)
    return "RESOURCE_EXHAUSTED" in text and "memory" in text.lower() and "No space" not in text


def out_of_memory(e: BaseException) -> BaseException | None:
    """The exception in `e`'s chain that reports running out of memory (XLA's
    `RESOURCE_EXHAUSTED: Out of memory ...` on a device, or Python's `MemoryError`); None if
    none does."""
    for link in _chain(e):
        if isinstance(link, MemoryError) or (
            not isinstance(link, OSError) and _says_out_of_memory(link)
        ):
            return link
    return None


class OutOfMemoryError(MemoryError):
    """A run ran out of (device or host) memory; the message says what to change."""


class Interrupted(KeyboardInterrupt):
    """A signal ended the run where it could not stop cleanly; the message says where and what
    is kept.

    Attributes:
      signum: the signal's number (the launcher exits with 128 + it).
    """

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.signum = signum


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


def exit_code(e: BaseException) -> int | None:
    """The launcher exit code of an error to report in one line; None for one to re-raise (a
    bug, whose traceback matters)."""
    from seqlstm.train.faults import NonFiniteLossError

    if isinstance(e, KeyboardInterrupt):
        return 128 + getattr(e, "signum", signal.SIGINT)
    if isinstance(e, (WorkdirWriteError, NonFiniteLossError)):
        return RUNTIME_EXIT
    if isinstance(e, (ValueError, OSError)):  # a bad config, a missing or unreadable input
        return USAGE_EXIT
    if out_of_memory(e) is not None:  # something to change: the batch or model size
        return USAGE_EXIT
    return None


def one_line(e: BaseException) -> str:
    """The message of the launcher's `error:` line for `e`."""
    if isinstance(e, KeyboardInterrupt) and not str(e).strip():
        return (
            "interrupted (SIGINT); a training run's workdir keeps its last complete checkpoint: "
            "running it again resumes from there"
        )
    if not isinstance(e, OutOfMemoryError) and (oom := out_of_memory(e)) is not None:
        return (
            f"out of memory ({first_line(oom) or type(oom).__name__}); lower the batch size "
            "(or the model's size), or use a device with more memory"
        )
    return str(e).strip() or type(e).__name__


def first_line(e: BaseException, limit: int = 200) -> str:
    """The first line of `e`'s message, cut at `limit` characters."""
    return (str(e).strip().splitlines() or [""])[0][:limit]


def one_line_errors(
    main: Callable[[list[str]], None], *, takes_args: bool = False
) -> Callable[[list[str]], None]:
    """Wraps an absl `main`: errors print as one line, `error: <message>`, and exit with code 2
    (config, data, workdir, out of memory), 1 (a write error, a non-finite loss) or 128 + the
    signal's number (an interrupt: Ctrl-C, 130). Also refuses positional
    arguments unless `takes_args` (most launchers take flags only), and lowers absl's default
    verbosity to WARNING (orbax logs each checkpoint at INFO) unless `--verbosity` is given;
    with `--verbosity=0` or more the traceback is printed before the line.

    Exceptions that Python can only report, not raise ("Exception ignored in ...": say, orbax's
    asyncio callbacks failing again while a run that hit a full disk shuts down) are held back
    while `main` runs: printed after it when it succeeds, dropped when it fails with a one-line
    error (whose cause they repeat), printed before the line with `--verbosity=0` or more."""

    @functools.wraps(main)
    def wrapped(argv: list[str]) -> None:
        if len(argv) > 1 and not takes_args:
            raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
        if not flags.FLAGS["verbosity"].present:
            absl_logging.set_verbosity(absl_logging.WARNING)
        held: list = []
        report, sys.unraisablehook = sys.unraisablehook, held.append

        def release() -> None:
            sys.unraisablehook = report
            for unraisable in held:
                report(unraisable)

        try:
            main(argv)
        except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001 -- sorted by exit_code
            code = exit_code(e)
            if code is None or verbose():
                release()
            if code is None:
                raise
            if verbose():
                traceback.print_exc()
            sys.stderr.write(f"error: {' '.join(one_line(e).split())}\n")
            sys.stderr.flush()
            if not verbose():  # orbax's threads, cut short, may log their failure on the way out
                for name in ("absl", "asyncio"):
                    logging.getLogger(name).setLevel(logging.CRITICAL + 1)
            sys.exit(code)  # quiet, the hook stays: more of the same may come on the way out
        release()

    return wrapped
