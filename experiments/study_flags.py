"""The study command line, defined once for the five study launchers.

    python -m experiments.<name>_study [--workdir=DIR] [--results_dir=DIR] [--seeds=N]
                                       [--only=ROW[,ROW]] [--replot]

A launcher calls `define_flags` once at import, with its own defaults, and hands its `Study` to
`StudyFlags.run`; its study-specific flags (char_study's `--q1_steps`, reverse_study's `--dtype`)
stay in the launcher. `experiments/study.py` is the flag-free driver underneath (tests import
it; this module they do not, as it defines flags).
"""

from __future__ import annotations

import sys
from typing import Any

from absl import flags

from experiments import study
from seqlstm.checks import check_int


class StudyFlags:
    """The study flags of one launcher; read their values after absl has parsed the command line.

    Attributes:
      workdir: `--workdir`, the root of the runs' workdirs.
      results_dir: `--results_dir`, where results.json, table.md and the plots go (and the
        table between the markers of its README.md, `study.sync_page`).
      replot: `--replot`, redraw the table and plots from results.json, train nothing.
      only: `--only`, the rows to run (again, if finished), named as results.json names them.
      seeds: `--seeds`, seeds per variant (checked positive); only for studies with seeds.
    """

    def __init__(self, workdir: str, results_dir: str, seeds: int | None, module: str) -> None:
        # Declared as the launcher's own flags, so that its --help lists them.
        self._workdir = flags.DEFINE_string(
            "workdir", workdir, "Root of the runs' workdirs.", module_name=module
        )
        self._results_dir = flags.DEFINE_string(
            "results_dir",
            results_dir,
            "Where results.json, table.md and the plots go.",
            module_name=module,
        )
        self._replot = flags.DEFINE_bool(
            "replot",
            False,
            "Only rewrite table.md and the plots from --results_dir/results.json.",
            module_name=module,
        )
        self._only = flags.DEFINE_list(
            "only",
            [],
            "Run only these rows, again if finished, into results.json (named as in "
            "it, as the runs are printed).",
            module_name=module,
        )
        self._seeds = None
        if seeds is not None:
            self._seeds = flags.DEFINE_integer(
                "seeds", seeds, "Seeds per variant: 0, 1, ...", module_name=module
            )

    @property
    def workdir(self) -> str:
        return self._workdir.value

    @property
    def results_dir(self) -> str:
        return self._results_dir.value

    @property
    def replot(self) -> bool:
        return self._replot.value

    @property
    def only(self) -> list[str]:
        return list(self._only.value)

    @property
    def seeds(self) -> int:
        if self._seeds is None:
            raise AttributeError("this study has no --seeds (define_flags(seeds=None))")
        return check_int("--seeds", self._seeds.value, 1)

    def run(self, s: study.Study, settings: dict[str, Any] | None = None) -> dict:
        """`study.run_study` with the flags' workdir, results_dir, replot and only."""
        return study.run_study(
            s, self.workdir, self.results_dir, replot=self.replot, only=self.only,
            settings=settings,
        )  # fmt: skip


def define_flags(*, workdir: str, results_dir: str, seeds: int | None = None) -> StudyFlags:
    """Defines `--workdir`, `--results_dir`, `--replot`, `--only` and, for a study with seeds,
    `--seeds`; call once, at a launcher's import.

    Args:
      workdir: the default root of the runs' workdirs (`runs/<name>_study`).
      results_dir: the default results folder (`experiments/results/<name>`).
      seeds: the default number of seeds; None for a study without seeds (no `--seeds`).

    Returns:
      The flags, to read after parsing.
    """
    # The module that called this one, named as absl names it (the main module by its path).
    launcher = sys._getframe(1).f_globals["__name__"]
    if launcher == "__main__":
        launcher = sys.argv[0]
    return StudyFlags(workdir, results_dir, seeds, launcher)
