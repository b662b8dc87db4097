"""The driver the studies share: a grid of runs -> results.json -> table.md -> plots.

A study (`reverse_study.py`, `seq2seq_study.py`, `g2p_study.py`, `char_study.py`,
`stateful_study.py`) is a `Study`: its grid, how one run trains, and how its results are shown.
`run_study` does the rest:

* every run trains in its own workdir `<root>/<name>` and its record is kept there as
  `study_record.json`, so an interrupted study skips the runs it finished;
* `results.json` holds `wall_clock_seconds`, what `summarize` derives from the records, the
  launcher's settings and the records (`runs`); `table.md` and the plots are drawn from it alone,
  so `replot=True` redraws them without training;
* `only=` runs just the named runs, even finished ones (their checkpoints still resume), and
  merges them into the results already there;
* the study's page, `README.md` in the results folder, gets table.md between its table
  markers (`TABLE_BEGIN`, `TABLE_END`) when it has them; a hand-written page has none.

It defines no flags: launchers and tests import it alike (`experiments/study_flags.py` defines
the study command line the five launchers share).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

RECORD = "study_record.json"
RESULTS = "results.json"
TABLE = "table.md"
PAGE = "README.md"
# A study's page (`<results_dir>/README.md`) may hold its table.md between these two lines; the
# driver then rewrites what lies between them. Pages without them are left as they are.
TABLE_BEGIN = "<!-- table:begin (written by the study's driver from table.md) -->"
TABLE_END = "<!-- table:end -->"


def _runs_with_values(values: Sequence[Any]) -> np.ndarray:
    """`float64[runs, ...]`, without the runs that lack the value (NaN anywhere in theirs)."""
    v = np.asarray(values, np.float64)
    if not v.size:
        return v.reshape(0)
    return v[~np.isnan(v.reshape(len(v), -1)).any(axis=1)]


def mean_std(values: Sequence[Any], *, ddof: int) -> tuple[Any, Any]:
    """Mean and standard deviation over runs, leaving out runs that lack the value (NaN).

    Args:
      values: one number (or one equal-shaped list of numbers) per run: `[runs, ...]`.
      ddof: delta degrees of freedom of the std: 1 for the sample std, 0 for the population std.
        Each study passes the one its published tables use.

    Returns:
      `(mean, std)` over the first axis, `std` 0 for a single run, both NaN for none.
    """
    v = _runs_with_values(values)
    if not len(v):
        return np.nan, np.nan
    # One run: ddof 0, so its spread is 0 rather than NaN.
    return v.mean(axis=0), v.std(axis=0, ddof=min(ddof, len(v) - 1))


def mean(values: Sequence[Any]) -> Any:
    """The mean over runs of `mean_std`, NaN for none."""
    return mean_std(values, ddof=0)[0]


def format_mean_std(m: float, s: float) -> str:
    """`"0.123 ± 0.004"`, or `"-"` when there is nothing to average (NaN)."""
    return "-" if np.isnan(m) else f"{m:.3f} ± {s:.3f}"


def train(config: Any, workdir: str) -> tuple[dict, float]:
    """`train_and_evaluate` without a progress bar: its results and the seconds it took."""
    # Imported here: --replot and the tests of the tables need no training stack.
    from seqlstm.train import train_and_evaluate

    config.train.progress_bar = False
    start = time.perf_counter()
    res = train_and_evaluate(config, workdir)
    return res, time.perf_counter() - start


@dataclasses.dataclass(frozen=True)
class Study:
    """One study: its grid of runs, how one trains, and how the results are shown.

    Attributes:
      grid: one spec per run, in the order they run and are listed.
      name: a spec's (and its record's) name, unique in the grid: its workdir under the root.
      run: `(spec, workdir) -> record`, a JSON-able dict holding the spec's fields `name` reads.
      progress: a record's one-line summary for the console.
      table: `results -> markdown`, the contents of `table.md`.
      plot: `(results, results_dir)`: draws the plots into `results_dir`.
      summarize: `records -> entries of results.json` derived from the records (recomputed by
        `replot`), e.g. means over seeds.
    """

    grid: Sequence[dict]
    name: Callable[[dict], str]
    run: Callable[[dict, str], dict]
    progress: Callable[[dict], str]
    table: Callable[[dict], str]
    plot: Callable[[dict, str], None]
    summarize: Callable[[list[dict]], dict] = lambda records: {}


def _read_json(path: str) -> Any:
    with open(path) as f:
        return json.load(f)


def _write_json(path: str, obj: Any) -> None:
    # Written aside, then renamed: a study killed mid-write leaves the old file, not a torn one.
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(path + ".tmp", path)


def check_only(only: Sequence[str], names: Sequence[str], *, replot: bool = False) -> None:
    """Checks the rows named by `--only` against the study's rows, before anything runs.

    Args:
      only: the row names given (`--only=ROW[,ROW]`).
      names: the study's row names, as its results.json names them, in the grid's order.
      replot: `--replot` was given too (which trains nothing, so `only` has nothing to pick).

    Raises:
      ValueError: one line, naming the unknown rows and listing the known ones, or saying that
        `--only` and `--replot` do not go together.
    """
    if unknown := [n for n in dict.fromkeys(only) if n not in set(names)]:
        raise ValueError(
            f"--only: no rows named {', '.join(unknown)}; this study's rows are {', '.join(names)}"
        )
    if only and replot:
        raise ValueError(
            "--only runs rows and --replot trains nothing: give one of them (--replot "
            "redraws every row from results.json)"
        )


def sync_page(results_dir: str, table: str) -> bool:
    """Writes `table` between the table markers of the study's page, `<results_dir>/README.md`.

    Args:
      results_dir: the study's results folder.
      table: the contents of table.md.

    Returns:
      Whether the page has the markers (and so was brought in step); a page without them, or
      none, is left alone.

    Raises:
      ValueError: a page with one marker and not the other, or with them out of order.
    """
    path = os.path.join(results_dir, PAGE)
    if not os.path.exists(path):
        return False
    with open(path) as f:
        page = f.read()
    begin, end = page.find(TABLE_BEGIN), page.find(TABLE_END)
    if begin < 0 and end < 0:
        return False
    if begin < 0 or end < begin:
        raise ValueError(
            f"{path}: expected the line {TABLE_BEGIN!r} and then the line {TABLE_END!r} around "
            "its table; fix the markers, or remove both"
        )
    head, tail = page[: begin + len(TABLE_BEGIN)], page[end:]
    new = head + "\n" + table.rstrip("\n") + "\n" + tail
    if new != page:
        with open(path + ".tmp", "w") as f:
            f.write(new)
        os.replace(path + ".tmp", path)
    return True


def check_same_settings(saved: dict, settings: dict, path: str) -> None:
    """Raises ValueError, before anything trains, when `--only` would merge runs made with other
    settings (steps, seeds) into the results at `path`: one line naming each flag to give."""
    if differ := [k for k in settings if k in saved and saved[k] != settings[k]]:
        given = ", ".join(f"{k}={settings[k]}" for k in differ)
        held = " ".join(f"--{k}={saved[k]}" for k in differ)
        raise ValueError(
            f"--only: {path} holds runs made with other settings than these ({given}); give {held}"
            " to rerun rows into it, or another --results_dir"
        )


def run_grid(study: Study, specs: Sequence[dict], root: str, *, rerun: bool = False) -> list[dict]:
    """Trains each spec's run in `<root>/<name>`, or reads back its record when it has one.

    Args:
      study: the study.
      specs: the runs to do, a part of `study.grid`.
      root: the root of the runs' workdirs.
      rerun: run again the runs that already have a record.

    Returns:
      One record per spec, in order.
    """
    records = []
    for i, spec in enumerate(specs):
        name = study.name(spec)
        workdir = os.path.join(root, name)
        path = os.path.join(workdir, RECORD)
        start = time.perf_counter()
        if os.path.exists(path) and not rerun:
            record, took = _read_json(path), "read back"
        else:
            record = study.run(spec, workdir)
            os.makedirs(workdir, exist_ok=True)
            _write_json(path, record)
            took = f"{time.perf_counter() - start:.0f}s"
        records.append(record)
        print(f"[{i + 1}/{len(specs)}] {name}: {study.progress(record)} ({took})", flush=True)
    return records


def run_study(
    study: Study,
    root: str,
    results_dir: str,
    *,
    replot: bool = False,
    only: Sequence[str] = (),
    settings: dict | None = None,
) -> dict:
    """Runs (or reads back) the grid, then writes results.json, table.md and the plots.

    Args:
      study: the study.
      root: the root of the runs' workdirs.
      results_dir: where results.json, table.md and the plots go.
      replot: train nothing: redraw the table and plots from the results.json there (rewritten
        only when `summarize` now derives something else).
      only: names of runs to do, even when finished; their records replace those of the same
        name in the results.json there (which keeps its other runs), and the time they took is
        logged under `reruns`. The settings must be those the results.json holds.
      settings: the launcher's settings, kept in results.json beside the records.

    Returns:
      The contents of results.json.

    Raises:
      ValueError: for a name in `only` that is not in the grid, for `only` with `replot`, for
        `only` with `settings` other than those of the results.json there, or with `replot`,
        for a `results_dir` without results.json (the launchers print it as one line).
    """
    path = os.path.join(results_dir, RESULTS)
    names = [study.name(spec) for spec in study.grid]
    check_only(only, names, replot=replot)
    if replot:
        if not os.path.exists(path):
            raise ValueError(f"--replot needs {path}: run the study first, or name --results_dir")
        saved = _read_json(path)
        results = {**saved, **study.summarize(saved["runs"])}
        if json.dumps(results) != json.dumps(saved):
            _write_json(path, results)
    else:
        saved = _read_json(path) if only and os.path.exists(path) else None
        if saved is not None:
            check_same_settings(saved, settings or {}, path)
        specs = [spec for spec in study.grid if not only or study.name(spec) in only]
        start = time.perf_counter()
        records = run_grid(study, specs, root, rerun=bool(only))
        seconds = time.perf_counter() - start
        if saved is not None:
            results = saved
            new = {study.name(r): r for r in records}
            old = {study.name(r): r for r in results["runs"]}
            runs = [new.get(n, old.get(n)) for n in names if n in new or n in old]
            # Runs of the results outside this grid (say, more seeds) are kept, not dropped.
            runs += [r for n, r in old.items() if n not in set(names)]
            results.update({**study.summarize(runs), "runs": runs})
            results.setdefault("reruns", []).append(
                {"runs": sorted(new), "wall_clock_seconds": seconds}
            )
        else:
            derived = study.summarize(records)
            results = {"wall_clock_seconds": seconds, **derived, **(settings or {})}
            results["runs"] = records
        os.makedirs(results_dir, exist_ok=True)
        _write_json(path, results)
    table = study.table(results)
    with open(os.path.join(results_dir, TABLE), "w") as f:
        f.write(table)
    sync_page(results_dir, table)
    study.plot(results, results_dir)
    print(table)
    if replot:
        print(f"{len(results['runs'])} runs in {results_dir}")
    else:
        what = f"{len(records)} of them" if only else "the study"
        print(
            f"{len(results['runs'])} runs in {results_dir}; wall clock of {what} "
            f"{seconds / 60:.1f} min"
        )
    return results
