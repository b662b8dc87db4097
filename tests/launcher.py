"""Helpers for tests that run `python -m experiments.train` in a subprocess and stop it."""

import time
from pathlib import Path


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
