"""The workdir as a shared resource: one run at a time (`workdir_lock`), and JSON files written
atomically (`write_json`) and read with errors that name the file (`read_json`).

The lock is `<workdir>/lock`, holding the pid and host of the run that holds it, and locked with
`flock`: the kernel releases it when that process dies (kill -9 included), so a lock file left by
a dead run is simply taken over. A second run on a busy workdir is refused with a
`WorkdirBusyError` naming the holder.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

from seqlstm.train.storage import writing

LOCK_NAME = "lock"


class WorkdirBusyError(ValueError):
    """Another run (or process) holds the workdir's lock."""


def write_json(path: str, obj: Any, sort_keys: bool = False) -> None:
    """Writes `obj` as indented JSON to `path` atomically: a crash leaves the old file or the new
    one, never half of one. Strict JSON: a NaN or Inf is refused, never written as a bare `NaN`.

    Raises:
      ValueError: `obj` holds a NaN or Inf; the old file is left.
      TypeError: `obj` holds a value JSON cannot hold; the old file is left.
      seqlstm.train.storage.WorkdirWriteError: the write failed (e.g. the disk is full); the old
        file is left as it was.
    """
    tmp = f"{path}.tmp"
    with writing(path):
        try:
            with open(tmp, "w") as f:
                json.dump(obj, f, indent=2, sort_keys=sort_keys, allow_nan=False)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException as e:  # a full disk, a value JSON cannot hold, an interrupt
            with contextlib.suppress(OSError):
                os.remove(tmp)
            if isinstance(e, ValueError):  # NaN or Inf: not JSON (`metrics.json_safe` nulls it)
                raise ValueError(f"cannot write {path} as JSON: {e}") from e
            raise


def check_workdir_path(workdir: str) -> None:
    """Raises ValueError unless `workdir`'s absolute path is text the checkpoint library
    (orbax, TensorStore) can take: UTF-8, without the bytes Python keeps as surrogates."""
    path = os.path.abspath(workdir)
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            f"workdir {path!r} is not valid UTF-8 (bytes shown as \\udcXX); checkpoints cannot "
            "be written there (orbax takes UTF-8 paths only). Use a --workdir whose path is UTF-8"
        ) from None


def read_json(path: str) -> Any:
    """The JSON object in `path`.

    Raises:
      ValueError: naming `path`, if it does not hold valid JSON (a damaged or cut-short file).
    """
    with open(path, "rb") as f:
        data = f.read()
    try:
        return json.loads(data.decode("utf-8"))
    except ValueError as e:  # UnicodeDecodeError and JSONDecodeError alike
        raise ValueError(f"{path} is not valid JSON, damaged or cut short ({e})") from None


def _holder(path: str) -> str:
    try:
        with open(path) as f:
            info = json.loads(f.read() or "{}")
        return f"pid {info['pid']} on {info['host']}, since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def _held_by_live_process(path: str) -> bool:
    try:
        with open(path) as f:
            info = json.loads(f.read() or "{}")
        pid, host = int(info["pid"]), info["host"]
    except (OSError, ValueError, KeyError, TypeError):
        return False  # empty or torn: left by a run that died while taking it
    if host != socket.gethostname():
        return True  # cannot tell whether it lives: refuse, and say how to take it over
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def workdir_lock(workdir: str, enabled: bool = True) -> Iterator[None]:
    """Holds `<workdir>/lock` for the block, so that no other run uses the workdir meanwhile.

    Creates `workdir` if missing, and removes it again on exit if the block left it empty (a run
    refused for a bad config leaves no trace).

    Args:
      workdir: the run's directory.
      enabled: False does nothing (every process of a multi-process run but the first).

    Raises:
      WorkdirBusyError: another live process holds the lock; nothing is touched.
    """
    if not enabled:
        yield
        return
    created = not os.path.isdir(workdir)
    with writing(workdir):
        os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, LOCK_NAME)
    fd = _acquire(path, workdir, created)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.remove(path)
        os.close(fd)  # releases the flock
        if created:
            with contextlib.suppress(OSError):
                os.rmdir(workdir)  # only if empty


def _acquire(path: str, workdir: str, created: bool) -> int:
    while True:
        with writing(path):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            busy = False
        except BlockingIOError:
            busy = True
        except OSError:  # a filesystem without flock: trust the pid the file names
            busy = _held_by_live_process(path)
        if busy:
            os.close(fd)
            if created:
                with contextlib.suppress(OSError):
                    os.rmdir(workdir)
            raise WorkdirBusyError(
                f"workdir {workdir!r} is in use by another run ({_holder(path)}); wait for it to "
                f"end or stop it, or use another --workdir. (If no run uses it, e.g. the holder "
                f"is on another host that went down, remove {path}.)"
            ) from None
        # The holder before us may have removed the file between our open and our flock: then
        # we hold a lock on a file no one else will open. Retry on the path's current file.
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%F %T")}
    with writing(path):
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
    return fd
