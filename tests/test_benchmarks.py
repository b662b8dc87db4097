"""benchmarks/: every script's `--quick` smoke run works and prints its table, without touching
benchmarks/README.md (timings themselves are never asserted: speed claims come from the scripts).
`scaling.py` is left out: even its quick run takes over a minute."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = [
    "bucketing",
    "char_speed",
    "cpu_devices",
    "lstm_layer",
    "memory",
    "precision",
    "profile_step",
    "xla_cpu_probes",
]


@pytest.mark.parametrize("script", SCRIPTS)
def test_quick_run_prints_a_table_and_leaves_the_readme(script):
    readme = (ROOT / "benchmarks" / "README.md").read_text()
    env = dict(os.environ, JAX_PLATFORMS="cpu", KERAS_BACKEND="jax")
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / f"{script}.py"), "--quick"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert len(rows) >= 2, proc.stdout[-2000:]  # a header and at least one measured row
    assert (ROOT / "benchmarks" / "README.md").read_text() == readme
