"""benchmarks/accelerator.py --quick: the GPU check's code paths on CPU, with the cuDNN rows
skipped; `benchmarks` is a package whose scripts share one command line (`benchmarks.cli`).
Every other benchmark script's `--quick` run is checked by `python -m benchmarks.smoke`
(outside the suite, which must stay under 6 minutes on 2 cores)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
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


def test_every_script_is_a_package_module_with_the_shared_command_line():
    """No script edits sys.path beyond the two-line shim, none declares a common flag itself,
    and every script with a command line builds it with `benchmarks.cli.parser`."""
    import ast

    drivers = {"__init__", "cli", "common", "cudnn_check", "run_all", "smoke", "torch_models"}
    scripts = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if p.stem not in drivers)
    assert (ROOT / "benchmarks" / "__init__.py").exists() and len(scripts) >= 14, scripts
    for path in (ROOT / "benchmarks").glob("*.py"):
        text = path.read_text()
        assert "sys.path.insert" not in text, path.name
        for flag in ("--quick", "--write", "--reps", "--rounds"):
            assert f'add_argument("{flag}"' not in text or path.stem == "cli", (path.name, flag)
    for path in scripts:
        calls = [
            node.func
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        ]
        names = {(f.value.id, f.attr) for f in calls if isinstance(f.value, ast.Name)}
        assert ("cli", "parser") in names, path.name


def test_cli_parser_declares_the_shared_flags_once():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_cli", ROOT / "benchmarks" / "cli.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    args = cli.parser(__doc__, reps=7, rounds=2).parse_args(["--quick", "--reps=3"])
    assert vars(args) == {"quick": True, "write": False, "reps": 3, "rounds": 2}
    bare = cli.parser(None, write=False, reps=None, rounds=None)
    assert vars(bare.parse_args([])) == {"quick": False}
    with pytest.raises(SystemExit):
        bare.parse_args(["--write"])  # a flag the script did not ask for is an error
