"""Pronunciations from a trained G2P model's workdir (flag-free: `experiments/pronounce.py` and
the tests import it alike)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable

import numpy as np

from experiments import joint_sequence, plots
from experiments.commands import check_output, load_run_config, save_plot
from experiments.g2p_rescoring import read_rescoring
from seqlstm.checks import check_int
from seqlstm.data.batching import fixed_batches
from seqlstm.decoding import beam_search
from seqlstm.tasks.g2p import decode_phones, encode_phones, encode_word
from seqlstm.tokens import BOS, EOS, PAD, pad_batch, strip
from seqlstm.train.ensembles import ensemble_members, load_ensemble


def default_output(words_file: str) -> str:
    """The lexicon's path when `--output` is not given: `<stem>.phones.tsv` beside the words
    file, never the words file itself (`names.tsv` -> `names.phones.tsv`)."""
    return os.path.splitext(words_file)[0] + ".phones.tsv"


def read_words(path: str) -> list[str]:
    """The words of a file, one a line, stripped, empty lines kept (their line numbers count).

    Raises:
      ValueError: the file is not UTF-8 text (naming it, the byte and its offset).
    """
    try:
        with open(path, encoding="utf-8") as f:
            return [line.strip() for line in f.read().splitlines()]
    except UnicodeDecodeError as e:
        raise ValueError(
            f"--words_file={path!r} is not UTF-8 text (byte {e.object[e.start]:#04x} at offset "
            f"{e.start}); save it as UTF-8"
        ) from None


def encode_all(words: list[str], where: Callable[[int], str]) -> list[list[int]]:
    """Token ids of every word (lowercased); ValueError naming the word's place when one is bad
    (a character outside the alphabet, or no letter at all)."""
    out = []
    for i, word in enumerate(words):
        try:
            if word and not any(ch.isalpha() for ch in word):
                raise ValueError("no letters; give words of letters a-z (and apostrophes)")
            out.append(encode_word(word.lower()))
        except ValueError as e:
            raise ValueError(f"{where(i)}: {e}") from None
    return out


def decode(models, ids: list[list[int]], batch_size: int, beam: int, penalty: float):
    """Beam search over all words in fixed-shape batches: `(beams [n, k, T], scores [n, k])`.
    `models`: a list of one model, or of an ensemble's members."""
    first = models[0]
    beams, scores = [], []
    for rows, index in fixed_batches(len(ids), batch_size):
        padded = [ids[j] for j in index]
        src, lengths = pad_batch(padded, first.max_source_len, vocab_size=first.source_vocab_size)
        out = beam_search(models, src, lengths, beam_size=beam, length_penalty=penalty)
        beams.append(np.asarray(out.beams)[: len(rows)])
        scores.append(np.asarray(out.beam_scores)[: len(rows)])
    return np.concatenate(beams), np.concatenate(scores)


def pronunciations(models, words, ids, stress, nbest, penalty, batch_size, rescoring):
    """Each word's ranked pronunciations, `[[(phones, score), ...], ...]`, at most `nbest`: beam
    search's (the score a log-probability), or with `rescoring` (`g2p_rescoring.read_rescoring`)
    the rescored candidates (the score `lstm + weight * joint`)."""
    if rescoring is None:
        beams, scores = decode(models, ids, batch_size, nbest, penalty)
        return [
            [(decode_phones(row, stress), float(s)) for row, s in zip(b, c) if math.isfinite(s)]
            for b, c in zip(beams, scores)
        ]
    import tempfile

    from experiments.g2p_rescoring import rescore_words

    unique = sorted({w.lower() for w in words})
    with tempfile.TemporaryDirectory() as tmp:
        ranked = rescore_words(
            models, unique, stress, rescoring["joint_model"], rescoring["weight"], tmp
        )
    by_word = dict(zip(unique, ranked))
    return [by_word[w.lower()][:nbest] for w in words]


def plot_attention(path: str, models, words: list[str], ids, best, stress: bool) -> None:
    """The attention of each output phone over the letters, one panel per word (a teacher-forced
    pass over the decoded phones; an ensemble's weights are its members' mean, as
    `seqlstm.decoding` averages them)."""
    model = models[0]
    src, lengths = pad_batch(ids, max(map(len, ids)), vocab_size=model.source_vocab_size)
    target_in = np.full((len(ids), model.max_target_len), PAD, np.int32)
    target_in[:, 0] = BOS
    for i, row in enumerate(best):
        out = strip(row)[: model.max_target_len - 1]
        target_in[i, 1 : len(out) + 1] = out
    weights = sum(
        np.asarray(m(src, lengths, target_in, return_attention=True)[1]) for m in models
    ) / len(models)
    plots.plot_attention(
        weights,
        [list(word) for word in words],
        [[*decode_phones(row, stress), "<eos>"] for row in best],
        path,
        "attention of each phone over the letters",
        xlabel="letters",
        ylabel="phones",
        panel_size=(3.2, 3.6),
        fontsize=8,
    )


def pronounce(
    workdir: str,
    words: list[str],
    *,
    words_file: str | None = None,
    output: str | None = None,
    plot: str | None = None,
    nbest: int = 3,
    length_penalty: float = 0.0,
    batch_size: int = 256,
    trust_run_code: bool = False,
) -> None:
    """Prints the `nbest` pronunciations of each of `words`; writes the best of each word of
    `words_file` to a TSV lexicon, `word<TAB>phones`, the words as the file gives them.

    Everything the command is given is checked before the model loads: the flags, the words,
    the words file, and the output paths (their folders exist; none is an input).

    Args:
      workdir: a run of `configs/g2p.py`, an ensemble folder of such runs
        (`seqlstm.train.ensembles`, decoded as one model), or a rescoring folder
        (`experiments.g2p_rescoring`: the ensemble's candidates and the joint-sequence model's,
        rescored; needs the `g2p-baseline` extra).
      words: words to pronounce (printed as given).
      words_file: a UTF-8 file of words, one a line.
      output: the lexicon's path (default `default_output(words_file)`).
      plot: a PNG path for the attention of `words`; one that cannot be written is a warning.
      nbest: pronunciations per word (the beam size).
      length_penalty: beam search's length penalty alpha.
      batch_size: words decoded at once.
      trust_run_code: allow import paths in the run's config (`seqlstm.train.restore`).

    Raises:
      ValueError: one line, for anything above that is wrong.
    """
    check_int("--nbest", nbest, 1)
    check_int("--batch_size", batch_size, 1)
    if output is not None and not words_file:
        raise ValueError("--output is the lexicon of --words_file; give --words_file too")
    if plot is not None and not words:
        raise ValueError("--plot draws the words given on the command line; give some")
    ids = encode_all(words, lambda i: f"word {i + 1} ({words[i]!r})")
    file_words: list[str] = []
    if words_file:
        file_words = read_words(words_file)
        file_ids = encode_all(file_words, lambda i: f"{words_file}, line {i + 1}")
        if not file_ids:
            raise ValueError(f"--words_file={words_file!r} holds no words")
        output = output or default_output(words_file)
        check_output(output, "--output", [("--words_file", words_file)])
    if plot:
        check_output(plot, "--plot", [("--words_file", words_file)] if words_file else [])
    rescoring = read_rescoring(workdir)
    if rescoring is not None:
        joint_sequence.environment()  # Phonetisaurus is installed, or one line naming the extra
    lstm = workdir if rescoring is None else rescoring["ensemble"]
    for member in ensemble_members(lstm):
        load_run_config(member, "pronounce", trust_run_code=trust_run_code)
    config, models = load_ensemble(lstm, trust_run_code=trust_run_code)
    stress = bool(config.data.stress)
    kw = dict(stress=stress, nbest=nbest, penalty=length_penalty, batch_size=batch_size)
    if words:
        ranked = pronunciations(models, words, ids, rescoring=rescoring, **kw)
        for word, hyps in zip(words, ranked):
            print(word)
            for rank, (phones, s) in enumerate(hyps, 1):
                phones = " ".join(phones)
                if rescoring is None:
                    print(f"  {rank}. {phones:<40s} log p {s:8.3f}  (p {math.exp(s):.3f})")
                else:
                    print(f"  {rank}. {phones:<40s} score {s:8.3f}  (LSTM + joint model)")
        if plot:
            best = [[*encode_phones(hyps[0][0], stress), EOS] for hyps in ranked]

            def draw(path):
                plot_attention(path, models, words, ids, best, stress)

            if save_plot(draw, plot, "attention plot"):
                print(f"attention: {plot}")
    if file_words:
        start = time.perf_counter()
        ranked = pronunciations(models, file_words, file_ids, rescoring=rescoring, **kw)
        seconds = time.perf_counter() - start
        with open(output, "w", encoding="utf-8") as f:
            for word, hyps in zip(file_words, ranked):
                f.write(f"{word}\t{' '.join(hyps[0][0]) if hyps else ''}\n")
        how = f"beam {nbest}" if rescoring is None else "rescored with the joint model"
        print(
            f"{len(file_words)} words -> {output} in {seconds:.2f} s "
            f"({len(file_words) / seconds:.0f} words/s, {how}, compile included)"
        )
