"""Freed host memory kept for the next step: no page faults refilling XLA:CPU's buffers.

XLA:CPU takes a step's buffers from malloc and frees them when the step ends. glibc's defaults
give large freed blocks back to the operating system (`munmap`, trimming the heap), so the next
step touches fresh pages again and pays a page fault for every 4 KiB of them (about 1.4 us each
here). `keep_freed_memory()` tells glibc to keep them, as `MALLOC_*_` variables or a jemalloc /
tcmalloc preload do for PyTorch users (mallopt(3)):

- `M_MMAP_THRESHOLD` 32 MiB (glibc's largest): blocks below it come from a heap, not `mmap`;
- `M_TRIM_THRESHOLD` 1 GiB and `M_TOP_PAD` 64 MiB: freed memory at the top of a heap stays.

Measured with `benchmarks/step_timeline.py --malloc=...` (ms and minor page faults per step over
a config's first batches, 2 cores): on configs/g2p.py these settings change nothing beyond noise
(58.2-58.3 ms, 1,200-4,100 faults, against 57.1-60.4 ms, 3,700-6,100 faults with glibc's). The
character model's step allocates one block of 126 MiB from a thread other than the main one, whose
arena's heaps hold at most 64 MiB, so glibc maps that block afresh every step (39,800 faults,
89.4 ms). `config.train.malloc_arenas = 1` (configs/chars.py sets it) puts every thread on the
main arena and maps no block on its own (`M_MMAP_MAX` 0: that heap grows as needed), so the block
is kept too: 0 faults, 44.7 ms; the launcher's steps/s about double (`python -m experiments.train
--config=configs/chars.py` with and without `--config.train.malloc_arenas=0`: 9.4-10.9 against
18.5-23.0 at steps 60-90). It must be set before any thread allocates, so the launcher applies it
before JAX starts; a program of its own calls `configure_arenas(1)` first thing. It is not the
default: on configs/g2p.py one arena took 65.3 ms (`--malloc=one_arena`). (Found while
developing, with scratch scripts: `MALLOC_MMAP_MAX_=0` in the environment also turns off glibc's
adaptive thresholds, 50,000 faults a step; no mapped blocks with several arenas made the
character step slower from step to step.)

The process's peak memory does not change; memory freed after the peak stays with the process
until it exits. Settings the environment already chose (a `MALLOC_*_` tunable or
`GLIBC_TUNABLES` naming malloc, or a preloaded allocator) are left as they are. glibc on Linux
only; elsewhere both functions do nothing.
"""

from __future__ import annotations

import ctypes
import os
import platform

# mallopt(3) parameters (malloc.h) and the values set.
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -2, -3, -4, -8
SETTINGS = {
    M_MMAP_THRESHOLD: 32 * 2**20,
    M_TRIM_THRESHOLD: 2**30,
    M_TOP_PAD: 64 * 2**20,
}
ENV_CHOICES = (
    "MALLOC_MMAP_THRESHOLD_", "MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
)  # fmt: skip

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
    _applied = _unless_chosen() or _mallopt(SETTINGS) or "kept"
    return _applied


def configure_arenas(arenas: int) -> str:
    """Limits glibc's malloc arenas to `arenas` (`config.train.malloc_arenas`; 0 leaves glibc's
    default). Call it before any thread but this one has allocated (before JAX starts).

    Returns:
      "default", "arenas <n>", or why not (as `keep_freed_memory`).

    Raises:
      ValueError: `arenas` is not an int >= 0.
    """
    from seqlstm.checks import check_int  # here: the module itself imports nothing heavy

    arenas = check_int("config.train.malloc_arenas", arenas, 0)
    if arenas == 0:
        return "default"
    if "MALLOC_ARENA_MAX" in os.environ:
        return "left as is: MALLOC_ARENA_MAX is set"
    # One arena's heap grows without bound, so it may take every block, however large.
    settings = {M_ARENA_MAX: arenas, M_MMAP_MAX: 0} if arenas == 1 else {M_ARENA_MAX: arenas}
    return _unless_chosen() or _mallopt(settings) or f"arenas {arenas}"


def _unless_chosen() -> str | None:
    """Why malloc is left alone (not glibc, the environment's choice), or None."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return "not glibc"
    choice = environment_choice()
    return None if choice is None else f"left as is: {choice}"


def _mallopt(settings: dict[int, int]) -> str | None:
    """Applies `settings`; None, or which parameters mallopt refused."""
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    refused = [param for param, value in settings.items() if mallopt(param, value) != 1]
    return f"mallopt refused {refused}" if refused else None
