"""Tests for seqlstm/train/host_memory.py: freed blocks reused without page faults."""

import os
import platform
import subprocess
import sys
import textwrap

import pytest

from seqlstm.train import host_memory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A fresh process allocates, touches and frees twelve 1 MiB blocks per round (as XLA:CPU does a
# step's buffers) and prints the minor page faults of ten rounds after two warm-up rounds.
PROBE = textwrap.dedent(
    """
    import ctypes, importlib.util, resource, sys
    if sys.argv[1] == "keep":  # the module alone: no JAX import in the probe
        spec = importlib.util.spec_from_file_location("host_memory", sys.argv[2])
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print(module.keep_freed_memory())
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
    libc.free.argtypes = (ctypes.c_void_p,)

    def round_():
        blocks = [libc.malloc(2**20) for _ in range(12)]
        for b in blocks:
            ctypes.memset(b, 1, 2**20)
        for b in blocks:
            libc.free(b)

    round_(); round_()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        round_()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


def _faults(mode: str, **env) -> tuple[str, int]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    environ.pop("GLIBC_TUNABLES", None)
    environ.update(env)
    path = os.path.join(ROOT, "seqlstm", "train", "host_memory.py")
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode, path], env=environ, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    *said, faults = out.stdout.split()
    return " ".join(said), int(faults)


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc"
)
def test_freed_blocks_are_reused_without_page_faults():
    said, default = _faults("default")
    # glibc's defaults: the freed 12 MiB go back to the system, every round faults them in again
    # (256 pages a block, 30,720 in ten rounds; a few hundred fewer where a block is reused).
    assert default > 20_000
    said, kept = _faults("keep")
    assert said == "kept"
    assert kept < 100
    # A choice in the environment is left alone: the defaults' faults come back.
    said, left = _faults("keep", MALLOC_TOP_PAD_="0")
    assert said == "left as is: MALLOC_TOP_PAD_ is set"
    assert left > 20_000


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
