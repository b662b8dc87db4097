"""experiments/study.py, the driver the studies share: statistics by hand, a toy study."""

import ast
import dataclasses
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
    with pytest.raises(ValueError, match=r"no rows named c/seed0; "):
        study.run_study(toy, root, out, only=["c/seed0"])
    assert "4 runs in" in capsys.readouterr().out

    # Only, with other settings than the results': refused before anything trains.
    with pytest.raises(ValueError) as e:
        study.run_study(toy, root, out, only=["a/seed1"], settings={"seeds": 1})
    assert str(e.value) == (
        f"--only: {out}/results.json holds runs made with other settings than these (seeds=1); "
        "give --seeds=2 to rerun rows into it, or another --results_dir"
    )
    # Only, with a grid smaller than the results' (one seed): the other runs are kept.
    one_seed = dataclasses.replace(toy, grid=[s for s in toy.grid if s["seed"] == 0])
    again = study.run_study(one_seed, root, out, only=["b/seed0"], settings={"seeds": 2})
    assert len(calls) == 6 and calls[5] == {"variant": "b", "seed": 0}
    assert [toy.name(r) for r in again["runs"]] == ["a/seed0", "b/seed0", "a/seed1", "b/seed1"]
    assert [r["accuracy"] for r in again["runs"]] == pytest.approx([0.51, 0.56, 0.65, 0.64])


def test_only_names_rows_as_results_json_does_and_refuses_others_in_one_line(tmp_path):
    names = ["a/seed0", "a/seed1", "b/seed0"]
    study.check_only([], names)
    study.check_only(["b/seed0", "a/seed0"], names)
    with pytest.raises(ValueError) as e:
        study.check_only(["a/seed0", "c", "d/seed9", "c"], names)
    assert str(e.value) == (
        "--only: no rows named c, d/seed9; this study's rows are a/seed0, a/seed1, b/seed0"
    )
    with pytest.raises(ValueError, match=r"^--only runs rows and --replot trains nothing: give"):
        study.check_only(["a/seed0"], names, replot=True)
    study.check_only([], names, replot=True)
    # The driver checks --only before it reads, trains or writes anything, --replot or not.
    calls: list = []
    for replot in (False, True):
        with pytest.raises(ValueError, match=r"^--only: no rows named nope; .* b/seed1$"):
            study.run_study(toy_study(calls), str(tmp_path), str(tmp_path), only=["nope"],
                            replot=replot)  # fmt: skip
    assert not calls and not list(tmp_path.iterdir())


def test_the_table_goes_between_the_markers_of_the_page_only(tmp_path):
    calls: list = []
    out = tmp_path / "results"
    out.mkdir()
    page = f"# Study\n\nintro\n{study.TABLE_BEGIN}\nold table\n{study.TABLE_END}\n\nafter\n"
    (out / study.PAGE).write_text(page)
    study.run_study(toy_study(calls), str(tmp_path / "runs"), str(out))
    table = (out / study.TABLE).read_text()
    assert table == "0.51\n0.62\n0.53\n0.64\n"
    assert (out / study.PAGE).read_text() == page.replace("old table\n", table)
    study.run_study(toy_study(calls), str(tmp_path / "runs"), str(out), replot=True)
    assert (out / study.PAGE).read_text() == page.replace("old table\n", table)
    # A hand-written page (no markers) is left alone; a page with one marker is an error.
    (out / study.PAGE).write_text("# Study\n\nold table\n")
    assert not study.sync_page(str(out), table)
    assert (out / study.PAGE).read_text() == "# Study\n\nold table\n"
    (out / study.PAGE).write_text(f"# Study\n{study.TABLE_END}\n")
    with pytest.raises(ValueError, match=r"README.md: expected the line .* fix the markers"):
        study.sync_page(str(out), table)
    assert not study.sync_page(str(tmp_path / "nowhere"), table)


STUDIES = ("reverse_study", "seq2seq_study", "g2p_study", "char_study", "stateful_study")
STUDY_FLAGS = {"workdir", "results_dir", "replot", "only", "seeds"}


@pytest.mark.parametrize("name", STUDIES)
def test_every_study_takes_its_study_flags_from_study_flags(name):
    """Each launcher defines none of the study flags itself: it calls `define_flags` once and
    runs its study through it, so `--only` (checked by `study.check_only`) works in all five."""
    tree = ast.parse((ROOT / "experiments" / f"{name}.py").read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]

    def called(func):
        return [c for c in calls if getattr(c.func, "id", getattr(c.func, "attr", None)) == func]

    defined = {c.args[0].value for c in calls if getattr(c.func, "attr", "").startswith("DEFINE")}
    assert not defined & STUDY_FLAGS, f"{name} defines {defined & STUDY_FLAGS} itself"
    (define,) = called("define_flags")  # STUDY = define_flags(...)
    keywords = {k.arg for k in define.keywords}
    assert {"workdir", "results_dir"} <= keywords
    assert ("seeds" in keywords) == (name in ("reverse_study", "char_study", "stateful_study"))
    runs = [c for c in called("run") if getattr(c.func.value, "id", None) == "STUDY"]
    assert len(runs) == 1 and not called("run_study")


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
