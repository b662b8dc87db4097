r"""Decodes sequences given on the command line with a trained encoder-decoder.

    python -m experiments.train --config=configs/seq2seq.py --workdir=runs/seq2seq
    python -m experiments.decode --workdir=runs/seq2seq --input="5 3 9 1 1 0 2 4 8 7 6 5 4 3 2 1"
    python -m experiments.decode --workdir=runs/add --input=123+45 --input=9+9 --beam_size=4

Inputs are numbers separated by spaces (reverse, dedup_reverse; each below the task's
`num_symbols`), or a sum such as `123+45` (addition). An empty input is an empty sequence. Prints
each input and its output; with attention, writes the attention weights of every output step over
the input as a heat-map PNG (`--heatmap`, default `<workdir>/attention.png`; one that cannot be
written is a warning). A run of another family (a G2P run: `experiments.pronounce`) is refused in
one line, as is a run whose config names code (an import path) without `--trust_run_code`.
"""

from __future__ import annotations

from absl import app, flags

from experiments.decoding import decode_inputs
from experiments.launch import one_line_errors

_WORKDIR = flags.DEFINE_string("workdir", None, "A run of configs/seq2seq.py.")
_INPUT = flags.DEFINE_multi_string("input", None, "A sequence to decode (repeat the flag).")
_BEAM = flags.DEFINE_integer("beam_size", 1, "1 decodes greedily; more runs beam search.")
_PENALTY = flags.DEFINE_float("length_penalty", 0.6, "Beam search's length penalty alpha.")
_HEATMAP = flags.DEFINE_string("heatmap", None, "PNG path (default <workdir>/attention.png).")
_TRUST = flags.DEFINE_bool(
    "trust_run_code", False, "Import the code a run's config names (only for runs you trust)."
)
flags.mark_flags_as_required(["workdir", "input"])


def main(argv: list[str]) -> None:
    decode_inputs(
        _WORKDIR.value,
        _INPUT.value,
        beam_size=_BEAM.value,
        length_penalty=_PENALTY.value,
        heatmap_path=_HEATMAP.value,
        trust_run_code=_TRUST.value,
    )


if __name__ == "__main__":
    app.run(one_line_errors(main))
