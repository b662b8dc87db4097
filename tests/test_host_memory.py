"""Tests for seqlstm/train/host_memory.py: freed blocks reused without page faults."""

import os
import platform
import subprocess
import sys
import textwrap

import pytest
from tiny_task import tiny_config

from seqlstm.train import check_config, host_memory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A fresh process allocates, touches and frees `count` blocks of `mib` MiB per round (as XLA:CPU
# does a step's buffers), on a second thread when asked, and prints the minor page faults of ten
# rounds after two warm-up rounds.
PROBE = textwrap.dedent(
    """
    import ctypes, importlib.util, resource, sys, threading
    mode, path, mib, count, thread = sys.argv[1:6]
    spec = importlib.util.spec_from_file_location("host_memory", path)  # no JAX in the probe
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    said = [module.configure_arenas(1)] if mode == "one_arena" else []
    if mode in ("keep", "one_arena"):
        said.append(module.keep_freed_memory())
    print(" ".join(said))
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
    libc.free.argtypes = (ctypes.c_void_p,)
    size = int(mib) * 2**20

    def round_():
        blocks = [libc.malloc(size) for _ in range(int(count))]
        for b in blocks:
            ctypes.memset(b, 1, size)
        for b in blocks:
            libc.free(b)

    def rounds():
        round_(); round_()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(10):
            round_()
        print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)

    if thread == "1":
        worker = threading.Thread(target=rounds)
        worker.start()
        worker.join()
    else:
        rounds()
    """
)
GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def _faults(mode: str, mib: int, count: int, thread: bool = False, **env) -> tuple[str, int]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    environ.pop("GLIBC_TUNABLES", None)
    environ.update(env)
    path = os.path.join(ROOT, "seqlstm", "train", "host_memory.py")
    args = [mode, path, str(mib), str(count), "1" if thread else "0"]
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args], env=environ, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    said, faults = out.stdout.splitlines()  # what the module said (may be empty), the faults
    return said.strip(), int(faults)


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc")
def test_freed_blocks_are_reused_without_page_faults():
    # glibc's defaults: the freed blocks go back to the system (the heap is trimmed) and every
    # round faults them in again, 256 pages a MiB: twelve 1 MiB blocks, 30,720 faults in ten
    # rounds (a few hundred fewer where one is reused).
    said, default = _faults("default", 1, 12)
    assert default > 20_000, default
    said, kept = _faults("keep", 1, 12)
    assert said == "kept" and kept < 100, kept
    # A choice in the environment is left alone: the defaults' faults come back.
    said, left = _faults("keep", 1, 12, MALLOC_TOP_PAD_="0")
    assert said == "left as is: MALLOC_TOP_PAD_ is set"
    assert left > 20_000, left


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc")
def test_one_arena_keeps_a_large_block_of_another_thread():
    # A second thread's arena holds at most 64 MiB: its 80 MiB block is mapped afresh every round
    # (20,480 faults each) unless every thread shares the main arena.
    said, kept = _faults("keep", 80, 1, thread=True)
    assert said == "kept" and kept > 150_000, kept
    said, one = _faults("one_arena", 80, 1, thread=True)
    assert said == "arenas 1 kept" and one < 100, one
    said, _ = _faults("one_arena", 1, 1, thread=True, MALLOC_ARENA_MAX="4")
    assert said.startswith("left as is: MALLOC_ARENA_MAX is set")


def test_malloc_arenas_is_checked():
    assert host_memory.configure_arenas(0) == "default"
    config = tiny_config()
    for bad in (-1, 1.0, True, "1"):
        with pytest.raises(ValueError, match=r"train.malloc_arenas must be an int >= 0, got"):
            host_memory.configure_arenas(bad)
        with config.train.ignore_type():  # the API's path: train_and_evaluate checks it too
            config.train.malloc_arenas = bad
        with pytest.raises(ValueError, match=r"config.train.malloc_arenas must be an int >= 0"):
            check_config(config)


def test_environment_choices_are_named(monkeypatch):
    for name in host_memory.ENV_CHOICES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.setenv("LD_PRELOAD", "")
    assert host_memory.environment_choice() is None
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=0")
    assert host_memory.environment_choice() == "GLIBC_TUNABLES sets malloc tunables"
    monkeypatch.delenv("GLIBC_TUNABLES")
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/libjemalloc.so.2")
    assert host_memory.environment_choice() == "another allocator is preloaded"
