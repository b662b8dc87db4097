"""benchmarks/accelerator.py --quick: the GPU check's code paths on CPU, with the cuDNN rows
skipped. Every other benchmark script's `--quick` run is checked by `python benchmarks/smoke.py`
(outside the suite, which must stay under 6 minutes on 2 cores)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from launcher import xla_flags

ROOT = Path(__file__).resolve().parent.parent


def run_quick(script: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, JAX_PLATFORMS="cpu", KERAS_BACKEND="jax")
    env["XLA_FLAGS"] = xla_flags()  # no device count from outside
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / f"{script}.py"), "--quick", *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def test_accelerator_quick_runs_every_section_and_skips_cudnn_on_cpu(tmp_path):
    proc = run_quick("accelerator", f"--out={tmp_path}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "accelerator.json").read_text())
    sections = report["sections"]
    assert list(sections) == ["environment", "correctness", "train_steps", "layer_timing"]
    assert not [k for k, v in sections.items() if "error" in v]
    assert report["failures"] == []
    assert sections["environment"]["result"]["jax_backend"] == "cpu"
    for row in sections["correctness"]["result"]:
        assert row["cudnn vs scan"]["status"] == "skipped"
        assert "needs a CUDA GPU" in row["cudnn vs scan"]["reason"]
    compared = [r["PyTorch (cpu) vs scan"] for r in sections["correctness"]["result"]]
    assert any(c.get("gradients", {}).get("ok") for c in compared), compared
    steps = sections["train_steps"]["result"]
    assert steps and all(r["steps_per_s"] > 0 for r in steps), steps
    timing = sections["layer_timing"]["result"]
    assert {r["status"] for r in timing if r["impl"] == "cudnn"} == {"skipped"}
    assert all(r["train_ms"] > 0 for r in timing if r["impl"] != "cudnn"), timing
