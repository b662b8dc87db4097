"""The absl launchers' wrapper: one-line errors with exit codes, and reports held back.

- `one_line_errors(main)`: wraps an absl launcher's `main` so that a config, data or workdir error
  prints as `error: <message>` with exit code 2 (a write error or a non-finite loss: exit code 1);
  the traceback comes before it only with `--verbosity=0` (or higher). Other exceptions are bugs
  and keep their traceback.
- Out of memory (XLA's `RESOURCE_EXHAUSTED`, or Python's `MemoryError`) and interrupts
  (`KeyboardInterrupt`, `seqlstm.train.signals.Interrupted`) also end a launcher in one line: exit
  code 2 and 128 + the signal's number.
- Exceptions that Python can only print ("Exception ignored in ...") are held back while `main`
  runs, behind the one-line error.

Every launcher in experiments/ wraps its `main` with it; it reads absl's `--verbosity` and
declares no flag of its own, so tests may import it. (It was `seqlstm.train.errors`, which
re-exports it for one release.)
"""

from __future__ import annotations

import functools
import logging
import signal
import sys
import traceback
from collections.abc import Callable

from absl import app, flags
from absl import logging as absl_logging

from seqlstm.train.causes import OutOfMemoryError, first_line, out_of_memory
from seqlstm.train.nonfinite import NonFiniteLossError
from seqlstm.train.storage import WorkdirWriteError, verbose

# Exit codes: 2 for what the user must change (config, data, workdir), 1 for what went wrong
# while running (a full disk, a non-finite loss).
USAGE_EXIT, RUNTIME_EXIT = 2, 1


def exit_code(e: BaseException) -> int | None:
    """The launcher exit code of an error to report in one line; None for one to re-raise (a
    bug, whose traceback matters)."""
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
