r"""Pronunciations (ARPAbet) of words from a trained G2P model (`configs/g2p.py`).

    python -m experiments.train --config=configs/g2p.py --workdir=runs/g2p
    python -m experiments.pronounce --workdir=runs/g2p hello zyzzyva
    python -m experiments.pronounce --workdir=runs/g2p --words_file=names.txt --output=names.tsv
    python -m experiments.pronounce --workdir=runs/g2p --plot=hello.png hello

prints the `--nbest` best pronunciations of each word (beam search) with their log-probabilities;
`--words_file` (UTF-8, one word per line) writes a TSV lexicon, `word<TAB>phones`, of each word's
best pronunciation (default `<words_file stem>.phones.tsv`; never over the words file) and prints
the words per second; `--plot` saves the attention of each output phone over the letters as a
PNG. Words are kept as given (the model reads them lowercased); a character outside the model's
alphabet (a-z and the apostrophe), a word with no letters, or an empty word is an error, reported
before the model loads. A run whose config names code (an import path) loads only with
`--trust_run_code`.
"""

from __future__ import annotations

from absl import app, flags

from experiments.launch import one_line_errors
from experiments.pronouncing import pronounce

_WORKDIR = flags.DEFINE_string("workdir", None, "A run of configs/g2p.py.")
_NBEST = flags.DEFINE_integer("nbest", 3, "Pronunciations per word (the beam size).")
_PENALTY = flags.DEFINE_float("length_penalty", 0.0, "Beam search's length penalty alpha.")
_WORDS_FILE = flags.DEFINE_string("words_file", None, "A UTF-8 file of words, one per line.")
_OUTPUT = flags.DEFINE_string(
    "output", None, "The TSV lexicon (default <words_file stem>.phones.tsv)."
)
_PLOT = flags.DEFINE_string("plot", None, "A PNG path: the attention of the words given.")
_BATCH = flags.DEFINE_integer("batch_size", 256, "Words decoded at once.")
_TRUST = flags.DEFINE_bool(
    "trust_run_code", False, "Import the code a run's config names (only for runs you trust)."
)
flags.mark_flag_as_required("workdir")


def main(argv: list[str]) -> None:
    words = argv[1:]
    if not words and not _WORDS_FILE.value:
        raise app.UsageError("give words to pronounce, or --words_file")
    pronounce(
        _WORKDIR.value,
        words,
        words_file=_WORDS_FILE.value,
        output=_OUTPUT.value,
        plot=_PLOT.value,
        nbest=_NBEST.value,
        length_penalty=_PENALTY.value,
        batch_size=_BATCH.value,
        trust_run_code=_TRUST.value,
    )


if __name__ == "__main__":
    app.run(one_line_errors(main, takes_args=True))
