r"""The G2P study: the default model of `configs/g2p.py` and ablations, on the CMUdict test split.

    pip install -e ".[g2p]"
    python -m experiments.g2p_study --workdir=runs/g2p_study

Each row is one run of `configs/g2p.py` with a preset in its own workdir `<workdir>/<row>`, so an
interrupted study picks up where it stopped (`--only=default` runs just the headline row). After
training, each row decodes the test words greedily and with beams of 1, 4 and 8 and writes
`<workdir>/<row>/test_predictions.tsv` (word, predicted phones, closest reference, distance;
`seqlstm.tasks.g2p.score_tsv` re-scores it). Writes `results.json`, `table.md`,
`learning_curve.png` and the default row's `test_predictions.tsv` to `--results_dir`.

Issue 21's recipe rows (`g2p_results.RECIPE_ROWS`): the default model (label smoothing 0.1)
with seeds 0, 1 and 2, each also averaged over its last 5 checkpoints; their ensembles of 2 and 3
(`ensemble_ls2`, `ensemble_ls3`: ensemble folders that `experiments.pronounce` serves); the
3-model ensemble's n-best lists rescored with Phonetisaurus's (`rescore_ls3`, the recipe,
`g2p_results.RECIPE`: 20.66% test WER, its weight chosen on validation; needs the g2p-baseline
extra); and the stress row. The recipe in one command (about 1.5 hours on 2 quiet cores):

  python -m experiments.g2p_study --only=label_smoothing,ls_seed1,ls_seed2,ensemble_ls3,rescore_ls3
"""

from __future__ import annotations

import os
import shutil

from absl import app

from experiments import study
from experiments.g2p_results import (
    PREDICTIONS,
    RECIPE,
    grid,
    markdown_table,
    plot,
    progress,
    run_row,
)
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
    tsv = os.path.join(STUDY.workdir, RECIPE, PREDICTIONS)
    if not STUDY.replot and os.path.exists(tsv):
        shutil.copy(tsv, os.path.join(STUDY.results_dir, PREDICTIONS))


if __name__ == "__main__":
    app.run(one_line_errors(main))
