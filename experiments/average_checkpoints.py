r"""Averages the parameters of a run's last checkpoints into a run of its own.

    python -m experiments.train --config=configs/g2p.py:average=5 --workdir=runs/g2p_avg
    python -m experiments.average_checkpoints --workdir=runs/g2p_avg --last=5 \
        --out=runs/g2p_avg/averaged

`--out` holds the run's config and one checkpoint at its last step with the mean of the last
`--last` checkpoints' parameters (`seqlstm.train.averaging`): decode it, evaluate it or serve it as
any workdir. The run must have kept that many checkpoints (`config.train.max_to_keep`).
"""

from __future__ import annotations

from absl import app, flags

from experiments.launch import one_line_errors
from seqlstm.train.averaging import write_averaged

_WORKDIR = flags.DEFINE_string("workdir", None, "The run whose checkpoints are averaged.")
_LAST = flags.DEFINE_integer("last", 5, "How many of its newest checkpoints to average.")
_OUT = flags.DEFINE_string("out", None, "A new directory for the averaged run.")
_TRUST = flags.DEFINE_bool(
    "trust_run_code", False, "Allow import paths in the run's config.json (runs its code)."
)
flags.mark_flags_as_required(["workdir", "out"])


def main(argv: list[str]) -> None:
    del argv
    meta = write_averaged(_WORKDIR.value, _OUT.value, _LAST.value, trust_run_code=_TRUST.value)
    print(f"{_OUT.value}: the mean of steps {meta['averaged_steps']} of {_WORKDIR.value}")


if __name__ == "__main__":
    app.run(one_line_errors(main))
