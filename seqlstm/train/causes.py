"""What caused an exception: its chain of causes, its first line, and which resource ran out.

XLA reports a full device memory and a full disk alike as `RESOURCE_EXHAUSTED`; `out_of_memory`
and `is_disk_full` tell them apart, for the errors that say what to change
(`OutOfMemoryError`, `seqlstm.train.storage.WorkdirWriteError`).
"""

from __future__ import annotations

import errno
from collections.abc import Iterator

_DISK_FULL = ("No space left on device", "RESOURCE_EXHAUSTED", "Disk quota exceeded")


def cause_chain(e: BaseException | None) -> Iterator[BaseException]:
    """`e` and the exceptions it was raised from."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def first_line(e: BaseException, limit: int = 200) -> str:
    """The first line of `e`'s message, cut at `limit` characters."""
    return (str(e).strip().splitlines() or [""])[0][:limit]


def is_disk_full(e: BaseException) -> bool:
    """Whether `e` (or an exception it was raised from) reports a full disk (and not a full
    memory, which XLA reports as RESOURCE_EXHAUSTED too)."""
    for link in cause_chain(e):
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
    for link in cause_chain(e):
        if isinstance(link, MemoryError) or (
            not isinstance(link, OSError) and _says_out_of_memory(link)
        ):
            return link
    return None


class OutOfMemoryError(MemoryError):
    """A run ran out of (device or host) memory; the message says what to change."""
