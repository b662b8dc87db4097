"""experiments/study.py, the driver the studies share: statistics by hand, a toy study."""

import ast
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from experiments import study

ROOT = Path(__file__).resolve().parents[1]


def test_mean_std_by_hand():
    m, s = study.mean_std([1.0, 2.0, 4.0], ddof=1)
    assert m == pytest.approx(7 / 3) and s == pytest.approx(math.sqrt(7 / 3))  # 42/9 / 2
    m, s = study.mean_std([1.0, 2.0, 4.0], ddof=0)
    assert m == pytest.approx(7 / 3) and s == pytest.approx(math.sqrt(14 / 9))  # 42/9 / 3
    # A run without the value (NaN) is left out; one run has no spread; none has no mean.
    assert study.mean_std([1.0, np.nan, 3.0], ddof=1) == pytest.approx((2.0, math.sqrt(2.0)))
    assert study.mean_std([5.0], ddof=1) == (5.0, 0.0)
    assert all(np.isnan(study.mean_std([], ddof=1)))
    # One list per run (per-position accuracy): statistics per position.
    m, s = study.mean_std([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], ddof=0)
    assert m.tolist() == pytest.approx([2 / 3, 2 / 3])
    assert s.tolist() == pytest.approx([math.sqrt(2 / 9)] * 2)
    assert study.mean([2.0, np.nan, 4.0]) == 3.0


def test_format_mean_std():
    assert study.format_mean_std(*study.mean_std([0.5, 0.7], ddof=1)) == "0.600 ± 0.141"
    assert study.format_mean_std(*study.mean_std([np.nan], ddof=1)) == "-"


def toy_study(calls: list) -> study.Study:
    """Two seeds of two variants; a run's record is its accuracy, made up from its spec."""

    def run(spec, workdir):
        calls.append(spec)
        os.makedirs(workdir, exist_ok=True)
        return {**spec, "accuracy": 0.5 + 0.1 * spec["seed"] + 0.01 * len(calls)}

    def plot(results, out_dir):
        Path(out_dir, "plot.txt").write_text(str(len(results["runs"])))

    return study.Study(
        grid=[{"variant": v, "seed": s} for v in ("a", "b") for s in (0, 1)],
        name=lambda spec: f"{spec['variant']}/seed{spec['seed']}",
        run=run,
        progress=lambda r: f"acc {r['accuracy']:.2f}",
        table=lambda results: "".join(f"{r['accuracy']:.2f}\n" for r in results["runs"]),
        plot=plot,
        summarize=lambda records: {"mean": study.mean([r["accuracy"] for r in records])},
    )


def test_run_study_resumes_replots_and_reruns(tmp_path, capsys):
    calls: list = []
    toy, root, out = toy_study(calls), str(tmp_path / "runs"), str(tmp_path / "results")
    first = study.run_study(toy, root, out, settings={"seeds": 2})
    assert len(calls) == 4 and list(first) == ["wall_clock_seconds", "mean", "seeds", "runs"]
    assert (tmp_path / "runs/b/seed1" / study.RECORD).exists()
    assert json.loads(Path(out, study.RESULTS).read_text()) == first
    assert Path(out, study.TABLE).read_text() == "0.51\n0.62\n0.53\n0.64\n"
    assert Path(out, "plot.txt").read_text() == "4"

    # Again: every run is read back from its workdir, none trains.
    first = study.run_study(toy, root, out, settings={"seeds": 2})
    assert [r["accuracy"] for r in first["runs"]] == pytest.approx(
        [0.51, 0.62, 0.53, 0.64]
    ) and len(calls) == 4
    results = Path(out, study.RESULTS).read_text()
    # Replot: nothing trains, results.json stays as it is unless the summary changes.
    Path(out, study.TABLE).unlink()
    study.run_study(toy, root, out, replot=True)
    assert Path(out, study.RESULTS).read_text() == results and Path(out, study.TABLE).exists()
    Path(out, study.RESULTS).write_text(json.dumps({**first, "mean": 0.0}))
    assert study.run_study(toy, root, out, replot=True)["mean"] == first["mean"]
    assert json.loads(Path(out, study.RESULTS).read_text()) == first and len(calls) == 4

    # Only: that run trains again and replaces its record; the time it took is logged.
    rerun = study.run_study(toy, root, out, only=["a/seed1"])
    assert calls[4:] == [{"variant": "a", "seed": 1}]
    assert [r["accuracy"] for r in rerun["runs"]] == pytest.approx([0.51, 0.65, 0.53, 0.64])
    assert rerun["reruns"][0]["runs"] == ["a/seed1"] and rerun["seeds"] == 2
    with pytest.raises(ValueError, match=r"no runs named \['c/seed0'\]"):
        study.run_study(toy, root, out, only=["c/seed0"])
    assert "4 runs in" in capsys.readouterr().out


def _imported_experiments_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.startswith("experiments.")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("experiments"):
            if node.module == "experiments":
                names |= {f"experiments.{a.name}" for a in node.names}
            else:
                names.add(node.module)
    return names


def test_no_test_imports_a_module_that_defines_flags():
    """A launcher defines absl flags at import; a test importing one would clash with another."""
    imported = set().union(*map(_imported_experiments_modules, ROOT.glob("tests/*.py")))
    assert "experiments.study" in imported
    for module in sorted(imported):
        source = (ROOT / (module.replace(".", "/") + ".py")).read_text()
        assert "DEFINE_" not in source, f"tests import {module}, which defines flags"
