r"""The G2P study: the default model of `configs/g2p.py` and ablations, on the CMUdict test split.

    pip install -e ".[g2p]"
    python -m experiments.g2p_study --workdir=runs/g2p_study

Each row is one run of `configs/g2p.py` with a preset in its own workdir `<workdir>/<row>`, so an
interrupted study picks up where it stopped (`--only=default` runs just the headline row). After
training, each row decodes the test words greedily and with beams of 1, 4 and 8 and writes
`<workdir>/<row>/test_predictions.tsv` (word, predicted phones, closest reference, distance;
`seqlstm.tasks.g2p.score_tsv` re-scores it). Writes `results.json`, `table.md`,
`learning_curve.png` and the default row's `test_predictions.tsv` to `--results_dir`.

Issue 21's candidates (`g2p_results.RECIPE_ROWS`: a second seed, label smoothing, dropout with
longer training, each also averaged over its last 5 checkpoints, and the ensemble of two seeds)
have not run yet; they take about 3 hours on 2 quiet cores (2.7 of training), one at a time:

    python -m experiments.g2p_study --only=seed1,label_smoothing,dropout_long,ensemble2

(and `--only=stress`, 44 minutes more: the default with stress kept, issue 21's stress item),
and the recipe is the row with the lowest validation WER with 4 beams (`val WER beam 4`) whose
training fits 2 hours.
"""

from __future__ import annotations

import os
import shutil

from absl import app

from experiments import study
from experiments.g2p_results import PREDICTIONS, grid, markdown_table, plot, progress, run_row
from experiments.launch import one_line_errors
from experiments.study_flags import define_flags

STUDY = define_flags(workdir="runs/g2p_study", results_dir="experiments/results/g2p")


def main(argv: list[str]) -> None:
    del argv  # one_line_errors refuses arguments and lowers absl's verbosity to WARNING
    g2p = study.Study(
        grid=grid(), name=lambda row: row["name"], run=run_row, progress=progress,
        table=markdown_table, plot=plot,
    )  # fmt: skip
    STUDY.run(g2p)
    tsv = os.path.join(STUDY.workdir, "default", PREDICTIONS)
    if not STUDY.replot and os.path.exists(tsv):
        shutil.copy(tsv, os.path.join(STUDY.results_dir, PREDICTIONS))


if __name__ == "__main__":
    app.run(one_line_errors(main))
