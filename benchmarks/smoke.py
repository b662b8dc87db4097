"""Every benchmark script's `--quick` run works, prints its table and leaves benchmarks/README.md
alone (the timings themselves are never checked: speed claims come from the full runs).

    python -m benchmarks.smoke                 # every script, about 6 minutes on 2 cores
    python -m benchmarks.smoke lstm_layer      # some of them (or: python benchmarks/smoke.py)

Run it after changing a benchmark or an API the benchmarks use. It is not part of the test suite,
which must stay under 6 minutes on 2 cores; the suite runs `accelerator.py --quick` only
(tests/test_benchmarks.py). `scaling.py` is left out: even its quick run takes over a minute.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = (
    "bucketing",
    "char_speed",
    "cpu_devices",
    "cpu_split",
    "feeding_rule",
    "lstm_layer",
    "memory",
    "native_models",
    "native_pages",
    "native_rule",
    "precision",
    "profile_step",
    "step_timeline",
    "train_step",
    "xla_cpu_probes",
)


def run_quick(script: str) -> str | None:
    """Runs `python -m benchmarks.<script> --quick`; returns what went wrong, or None."""
    readme = (HERE / "README.md").read_text()
    env = dict(os.environ, JAX_PLATFORMS="cpu", KERAS_BACKEND="jax")
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{script}", "--quick"],
        env=env, capture_output=True, text=True, cwd=HERE.parent, timeout=600,
    )  # fmt: skip
    if proc.returncode != 0:
        return f"exit {proc.returncode}:\n{proc.stderr[-3000:]}"
    if len([line for line in proc.stdout.splitlines() if line.startswith("| ")]) < 2:
        return f"no table printed:\n{proc.stdout[-2000:]}"
    if (HERE / "README.md").read_text() != readme:
        return "benchmarks/README.md was rewritten by a --quick run"
    return None


def main(names: list[str]) -> int:
    unknown = sorted(set(names) - set(SCRIPTS))
    if unknown:
        print(f"unknown scripts {unknown}; expected some of {SCRIPTS}")
        return 2
    failed = []
    for script in names or SCRIPTS:
        start = time.perf_counter()
        problem = run_quick(script)
        status = "ok" if problem is None else "FAILED"
        print(f"{script:15s} {status} ({time.perf_counter() - start:.0f} s)", flush=True)
        if problem:
            print(problem)
            failed.append(script)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
