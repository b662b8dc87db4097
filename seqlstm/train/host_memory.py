"""Freed host memory kept for the next step: no page faults refilling XLA:CPU's buffers.

XLA:CPU takes a step's buffers from malloc and frees them when the step ends. glibc's defaults
give large freed blocks back to the operating system (`munmap`, trimming the heap), so the next
step touches fresh pages again and pays a page fault for every 4 KiB of them. On configs/g2p.py
that was about 3,500 faults and 62-70 ms per step on 2 cores; with the settings below, about 600
faults and 59-61 ms (`benchmarks/train_step.py`'s launcher step, and the launcher's steps/s). These
are the settings PyTorch users reach through `MALLOC_*_` variables or a jemalloc / tcmalloc preload:

- `M_MMAP_THRESHOLD` 32 MiB (glibc's largest): blocks below it come from the heap, not `mmap`;
- `M_TRIM_THRESHOLD` 1 GiB and `M_TOP_PAD` 64 MiB: freed memory at the top of a heap stays.

The process's peak memory does not change; memory freed after the peak stays with the process
until it exits. `keep_freed_memory()` sets them (glibc on Linux only) unless the environment
already chose (a `MALLOC_*_` tunable or `GLIBC_TUNABLES` naming malloc, or a preloaded
allocator): those settings are left as they are.
"""

from __future__ import annotations

import ctypes
import os
import platform

# mallopt(3) parameters (malloc.h) and the values set.
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
SETTINGS = {
    M_MMAP_THRESHOLD: 32 * 2**20,
    M_TRIM_THRESHOLD: 2**30,
    M_TOP_PAD: 64 * 2**20,
}
ENV_CHOICES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")

_applied: str | None = None


def environment_choice() -> str | None:
    """The environment's own malloc choice that `keep_freed_memory` leaves alone, or None."""
    for name in ENV_CHOICES:
        if name in os.environ:
            return f"{name} is set"
    if "malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return "GLIBC_TUNABLES sets malloc tunables"
    preload = os.environ.get("LD_PRELOAD", "")
    if any(name in preload for name in ("jemalloc", "tcmalloc", "mimalloc")):
        return "another allocator is preloaded"
    return None


def keep_freed_memory() -> str:
    """Tells glibc's malloc to keep freed memory for reuse (module docstring); once per process.

    Returns:
      What happened, in a few words: "kept" when the settings were applied (now or before), else
      why not (not glibc, the environment's own choice, or mallopt refusing a value).
    """
    global _applied
    if _applied is not None:
        return _applied
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        _applied = "not glibc"
        return _applied
    choice = environment_choice()
    if choice is not None:
        _applied = f"left as is: {choice}"
        return _applied
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    refused = [param for param, value in SETTINGS.items() if mallopt(param, value) != 1]
    _applied = f"mallopt refused {refused}" if refused else "kept"
    return _applied
