r"""The same-split peer of the G2P study: Phonetisaurus's joint-sequence model on our split.

    pip install -e ".[g2p-baseline]"
    python -m experiments.g2p_baseline --workdir=runs/g2p_baseline

trains Phonetisaurus 0.3.0 (`phonetisaurus-train --seq2_del`, an 8-gram joint-sequence model) on
the 112,272 training words of `seqlstm.tasks.g2p`'s split, every distinct pronunciation, without
stress and with it, and scores each on the 6,418 test words with `seqlstm.tasks.g2p` (a word is
right when it equals any of its references): measured 25.66% WER, 6.08% PER without stress
(33.62% and 8.64% with stress), each in 1.5 minutes of training on one quiet core
(`experiments/joint_sequence.py` says what runs). Writes `baseline.json`, `baseline.md` and each
variant's test predictions (`TSVS`) to `--results_dir`, and each variant's lexicon and model to
`<workdir>/<variant>`.

Sequitur (`sequitur-g2p`) is not a peer here: its PyPI builds (the 1.0.1668.30 cp311 wheel, the
1.0.1668.23 source) fail at the first EM iteration (`'SwigPyObject' object has no attribute
'thisown'`), and once patched, one EM iteration on our training words took about 14 s at order 1
and over 100 s (7.5 GB resident) at order 2, far from a useful order (6-8) within 30 minutes.
"""

from __future__ import annotations

import json
import os
import shutil
import time

from absl import app, flags

from experiments import joint_sequence
from experiments.launch import one_line_errors
from seqlstm.tasks.g2p import PREDICTIONS

RESULTS, TABLE = "baseline.json", "baseline.md"
VARIANTS = {"no_stress": False, "stress": True}
# Each variant's test predictions (`seqlstm.tasks.g2p.score_tsv` re-scores them), kept in
# --results_dir.
TSVS = {"no_stress": "baseline_test_predictions.tsv", "stress": "baseline_stress_predictions.tsv"}

_WORKDIR = flags.DEFINE_string("workdir", "runs/g2p_baseline", "Root of the variants' workdirs.")
_RESULTS_DIR = flags.DEFINE_string(
    "results_dir", "experiments/results/g2p", "Where baseline.json and baseline.md go."
)
_ONLY = flags.DEFINE_list(
    "only", list(VARIANTS), f"Variants to run, of {list(VARIANTS)}; the others' results are kept."
)


def main(argv: list[str]) -> None:
    del argv
    if unknown := sorted(set(_ONLY.value) - set(VARIANTS)):
        raise ValueError(f"--only: no variants named {unknown}; expected some of {list(VARIANTS)}")
    joint_sequence.environment()  # the missing package as one line, before any work
    start = time.perf_counter()
    runs = []
    for name in (n for n in VARIANTS if n in _ONLY.value):
        workdir = os.path.join(_WORKDIR.value, name)
        record = joint_sequence.run_variant(VARIANTS[name], workdir)
        runs.append({"name": name, **record})
        os.makedirs(_RESULTS_DIR.value, exist_ok=True)
        shutil.copy(
            os.path.join(workdir, PREDICTIONS), os.path.join(_RESULTS_DIR.value, TSVS[name])
        )
        t = record["test"]
        print(
            f"{name}: WER {100 * t['wer']:.2f}% PER {100 * t['per']:.2f}% on {t['words']} test "
            f"words; trained in {record['train_seconds'] / 60:.1f} min",
            flush=True,
        )
    path = os.path.join(_RESULTS_DIR.value, RESULTS)
    if set(_ONLY.value) != set(VARIANTS) and os.path.exists(path):
        with open(path) as f:  # keep the variants not run this time
            old = {r["name"]: r for r in json.load(f)["runs"]}
        new = {r["name"]: r for r in runs}
        runs = [new.get(n, old.get(n)) for n in VARIANTS if n in new or n in old]
    results = {
        "phonetisaurus": joint_sequence.VERSION,
        "wall_clock_seconds": time.perf_counter() - start,
        "runs": runs,
    }
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    table = joint_sequence.markdown_table(results)
    with open(os.path.join(_RESULTS_DIR.value, TABLE), "w") as f:
        f.write(table)
    print(table)


if __name__ == "__main__":
    app.run(one_line_errors(main))
