"""SIGTERM and SIGINT: a clean stop after the current step, and never a signal swallowed.

`StopRequest` turns the first SIGTERM or SIGINT into a request to checkpoint after the current
step and exit cleanly; with several processes they first agree on the step
(`StopRequest.agreed`), so that all save the same one. The signal is never swallowed: the process
ends within `STOP_DEADLINE_S` of it (at once on a second SIGTERM; a second SIGINT, Ctrl-C twice,
interrupts), stop or no stop. Where no clean stop exists (the final evaluation),
`signals_interrupt` makes either signal an `Interrupted` error that says what is kept.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils

# With several processes, stop requests are compared every this many steps (one tiny all-gather);
# a preemption notice gives tens of seconds, far more than this many steps take.
STOP_SYNC_EVERY = 10

# After a stop signal, seconds for the current step and its checkpoint before the process exits
# regardless: below the grace period of the usual schedulers, far above a checkpoint's time.
STOP_DEADLINE_S = 60.0


class Interrupted(KeyboardInterrupt):
    """A signal ended the run where it could not stop cleanly; the message says where and what
    is kept.

    Attributes:
      signum: the signal's number (the launcher exits with 128 + it).
    """

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.signum = signum


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
