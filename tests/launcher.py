"""Helpers for tests that run `python -m experiments.train` in a subprocess and stop it."""

import time
from pathlib import Path

# XLA's CPU backend without LLVM's optimisation passes: the suite's compile setting
# (tests/conftest.py), for the subprocesses that set XLA_FLAGS of their own.
FAST_COMPILE = "--xla_backend_optimization_level=0"


def xla_flags(*flags: str) -> str:
    """XLA_FLAGS for a subprocess: the suite's compile setting and `flags`, nothing inherited
    (a device count set outside the suite must not reach it)."""
    return " ".join((FAST_COMPILE, *flags))


def wait_for_metrics(workdir, timeout: float = 120) -> None:
    """Waits until the run in `workdir` has written its first metrics line (training is under
    way, past compilation), or `timeout` seconds have passed."""
    metrics = Path(workdir) / "metrics.jsonl"
    deadline = time.time() + timeout
    while not (metrics.exists() and metrics.stat().st_size) and time.time() < deadline:
        time.sleep(0.05)


def stopped_step(out: str) -> int:
    """The step a run stopped by a signal reports in its output."""
    return int(out.split("Stopped by a signal at step ")[1].split(",")[0])
