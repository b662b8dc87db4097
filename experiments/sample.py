r"""Generates text from a trained character model's checkpoint.

    python -m experiments.sample --workdir=runs/chars --prompt="def " --num_chars=300
    python -m experiments.sample --workdir=runs/char_lm --prompt=$'class A:\n    ' --temperature=0.5

Reads the run's `config.json` (which rebuilds the vocabulary from the same corpus) and its latest
checkpoint, then samples one character at a time from the last `data.context` characters. The
prompt may only hold characters of the model's vocabulary. A run of another family is refused in
one line (naming the command that serves it), as is a run whose config names code (an import
path) without `--trust_run_code`.
"""

from __future__ import annotations

import sys

from absl import app, flags

from experiments.launch import one_line_errors
from experiments.sampling import sample

_WORKDIR = flags.DEFINE_string("workdir", None, "A workdir holding a trained character model.")
_PROMPT = flags.DEFINE_string("prompt", "", "Text to continue (empty: the start of a file).")
_NUM_CHARS = flags.DEFINE_integer("num_chars", 200, "Characters to generate.")
_TEMPERATURE = flags.DEFINE_float("temperature", 0.8, "Sampling temperature; 0 is greedy.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")
_TRUST = flags.DEFINE_bool(
    "trust_run_code", False, "Import the code a run's config names (only for runs you trust)."
)
flags.mark_flags_as_required(["workdir"])


def main(argv: list[str]) -> None:
    text = sample(
        _WORKDIR.value,
        _PROMPT.value,
        num_chars=_NUM_CHARS.value,
        temperature=_TEMPERATURE.value,
        seed=_SEED.value,
        trust_run_code=_TRUST.value,
    )
    sys.stdout.write(_PROMPT.value + text + "\n")


if __name__ == "__main__":
    app.run(one_line_errors(main))
