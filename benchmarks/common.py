"""Shared pieces of the benchmark scripts: timing, the machine line, README sections."""

from __future__ import annotations

import os
import platform
import re
import statistics
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402

README = Path(__file__).with_name("README.md")


def median_ms(fn, reps: int, warmup: int = 3) -> float:
    """Median wall time of `fn()` in milliseconds, after `warmup` calls (compilation excluded)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def machine() -> str:
    """One line naming the CPU, cores and library versions the numbers came from."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = [f"jax {jax.__version__} ({jax.default_backend()})"]
    for name in ("flax", "torch", "keras"):
        try:
            versions.append(f"{name} {__import__(name).__version__}")
        except ImportError:
            pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, " + ", ".join(
        versions
    )


def write_section(name: str, body: str) -> None:
    """Replaces (or appends) the `<!-- name:start -->...<!-- name:end -->` block of README.md."""
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    block = f"<!-- {name}:start -->\n{body.strip()}\n<!-- {name}:end -->"
    pattern = re.compile(rf"<!-- {name}:start -->.*?<!-- {name}:end -->", re.S)
    text = (
        pattern.sub(lambda _: block, text) if pattern.search(text) else text + "\n" + block + "\n"
    )
    README.write_text(text)
