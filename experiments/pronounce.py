r"""Pronunciations (ARPAbet) of words from a trained G2P model (`configs/g2p.py`).

    python -m experiments.train --config=configs/g2p.py --workdir=runs/g2p
    python -m experiments.pronounce --workdir=runs/g2p hello zyzzyva
    python -m experiments.pronounce --workdir=runs/g2p --words_file=names.txt --output=names.tsv
    python -m experiments.pronounce --workdir=runs/g2p --plot=hello.png hello

prints the `--nbest` best pronunciations of each word (beam search) with their log-probabilities;
`--words_file` (one word per line) writes a TSV lexicon, `word<TAB>phones`, of each word's best
pronunciation and prints the words per second; `--plot` saves the attention of each output phone
over the letters as a PNG. Words are lowercased; a character outside the model's alphabet (a-z
and the apostrophe), or an empty word, is an error.
"""

from __future__ import annotations

import math
import os
import time

import numpy as np
from absl import app, flags

from seqlstm.data.g2p import decode_phones, encode_word
from seqlstm.decoding import beam_search
from seqlstm.tokens import BOS, PAD, pad_batch, strip
from seqlstm.train.errors import one_line_errors
from seqlstm.train.restore import load_config, load_model

_WORKDIR = flags.DEFINE_string("workdir", None, "A run of configs/g2p.py.")
_NBEST = flags.DEFINE_integer("nbest", 3, "Pronunciations per word (the beam size).")
_PENALTY = flags.DEFINE_float("length_penalty", 0.0, "Beam search's length penalty alpha.")
_WORDS_FILE = flags.DEFINE_string("words_file", None, "A file of words, one per line.")
_OUTPUT = flags.DEFINE_string("output", None, "The TSV lexicon (default <words_file>.tsv).")
_PLOT = flags.DEFINE_string("plot", None, "A PNG path: the attention of the words given.")
_BATCH = flags.DEFINE_integer("batch_size", 256, "Words decoded at once.")
flags.mark_flag_as_required("workdir")


def encode_all(words: list[str], where: str) -> list[list[int]]:
    """Token ids of every word (lowercased); ValueError naming the word's place when one is bad."""
    out = []
    for i, word in enumerate(words):
        try:
            out.append(encode_word(word.lower()))
        except ValueError as e:
            raise ValueError(f"{where(i)}: {e}") from None
    return out


def decode(model, ids: list[list[int]], batch_size: int, beam: int, penalty: float):
    """Beam search over all words in fixed-shape batches: `(beams [n, k, T], scores [n, k])`."""
    beams, scores = [], []
    for i in range(0, len(ids), batch_size):
        chunk = ids[i : i + batch_size]
        padded = chunk + [chunk[0]] * (batch_size - len(chunk))  # one shape, one compile
        src, lengths = pad_batch(padded, model.max_source_len, vocab_size=model.source_vocab_size)
        out = beam_search(model, src, lengths, beam_size=beam, length_penalty=penalty)
        beams.append(np.asarray(out.beams)[: len(chunk)])
        scores.append(np.asarray(out.beam_scores)[: len(chunk)])
    return np.concatenate(beams), np.concatenate(scores)


def plot_attention(path: str, model, words: list[str], ids, best, stress: bool) -> None:
    """The attention of each output phone over the letters, one panel per word (a teacher-forced
    pass over the decoded phones)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    src, lengths = pad_batch(ids, max(map(len, ids)), vocab_size=model.source_vocab_size)
    target_in = np.full((len(ids), model.max_target_len), PAD, np.int32)
    target_in[:, 0] = BOS
    for i, row in enumerate(best):
        out = strip(row)[: model.max_target_len - 1]
        target_in[i, 1 : len(out) + 1] = out
    _, weights = model(src, lengths, target_in, return_attention=True)
    weights = np.asarray(weights)
    fig, axes = plt.subplots(1, len(words), figsize=(3.2 * len(words), 3.6), squeeze=False)
    for ax, word, row, w in zip(axes[0], words, best, weights):
        phones = [*decode_phones(row, stress), "<eos>"]
        ax.imshow(w[: len(phones), : len(word)], cmap="viridis", vmin=0.0, vmax=1.0)
        ax.set_xticks(range(len(word)), list(word), fontsize=8)
        ax.set_yticks(range(len(phones)), phones, fontsize=8)
        ax.set(xlabel="letters", ylabel="phones")
    fig.suptitle("attention of each phone over the letters", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str]) -> None:
    words = argv[1:]
    if not words and not _WORDS_FILE.value:
        raise app.UsageError("give words to pronounce, or --words_file")
    if _NBEST.value < 1:
        raise ValueError(f"--nbest must be >= 1, got {_NBEST.value}")
    config = load_config(_WORKDIR.value, example="configs/g2p.py")
    if config.data.name != "g2p":
        raise ValueError(f"{_WORKDIR.value} holds a {config.data.name!r} run, not configs/g2p.py")
    stress = bool(config.data.stress)
    ids = encode_all(words, lambda i: f"word {i + 1} ({words[i]!r})")
    file_words: list[str] = []
    if _WORDS_FILE.value:
        with open(_WORDS_FILE.value) as f:
            file_words = [line.strip() for line in f.read().splitlines()]
        file_ids = encode_all(file_words, lambda i: f"{_WORDS_FILE.value}, line {i + 1}")
        if not file_ids:
            raise ValueError(f"{_WORDS_FILE.value} holds no words")
    _, model, _ = load_model(_WORKDIR.value)
    if words:
        beams, scores = decode(model, ids, _BATCH.value, _NBEST.value, _PENALTY.value)
        for word, word_beams, word_scores in zip(words, beams, scores):
            print(word.lower())
            for rank, (row, s) in enumerate(zip(word_beams, word_scores), 1):
                if math.isfinite(float(s)):
                    phones = " ".join(decode_phones(row, stress))
                    print(f"  {rank}. {phones:<40s} log p {s:8.3f}  (p {math.exp(s):.3f})")
        if _PLOT.value:
            plot_attention(_PLOT.value, model, [w.lower() for w in words], ids, beams[:, 0], stress)
            print(f"attention: {_PLOT.value}")
    if file_words:
        start = time.perf_counter()
        beams, _ = decode(model, file_ids, _BATCH.value, _NBEST.value, _PENALTY.value)
        seconds = time.perf_counter() - start
        output = _OUTPUT.value or os.path.splitext(_WORDS_FILE.value)[0] + ".tsv"
        with open(output, "w") as f:
            for word, row in zip(file_words, beams[:, 0]):
                f.write(f"{word.lower()}\t{' '.join(decode_phones(row, stress))}\n")
        print(
            f"{len(file_words)} words -> {output} in {seconds:.2f} s "
            f"({len(file_words) / seconds:.0f} words/s, beam {_NBEST.value}, compile included)"
        )


if __name__ == "__main__":
    app.run(one_line_errors(main, takes_args=True))
