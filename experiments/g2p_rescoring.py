"""N-best rescoring: the LSTM (an ensemble) combined with the joint-sequence model, Rao et al.
2015's system combination, on our split (the G2P study's `rescore` rows, `g2p_results`).

For each word the candidates are the union of the LSTM's 4-best list (beam search, 4 beams) and
Phonetisaurus's 8-best list (`experiments.joint_sequence`, trained on our training split).
Every candidate gets both models' log-probabilities: the LSTM's by forced decoding
(`seqlstm.sequence_log_probs`, the beam search's own score for what it found), the joint model's
from its list (minus Phonetisaurus's cost); a candidate outside that list gets the list's worst
score, a bound from above (the joint model ranks it lower). A word's prediction is the candidate
with the highest `lstm + weight * joint`; the weight is chosen on the validation words over
`WEIGHTS`, then the test words are decoded once with it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import numpy as np

from experiments import joint_sequence
from seqlstm.decoding import n_best, sequence_log_probs
from seqlstm.tasks.g2p import (
    MAX_LETTERS,
    encode_phones,
    encode_word,
    phone_set,
    score,
    split_references,
)
from seqlstm.tokens import FIRST_ID, pad_batch

LSTM_BEAMS = 4
JOINT_NBEST = 8
WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0)

Candidates = dict[str, dict[tuple[str, ...], list[float]]]  # word -> phones -> [lstm, joint]


def joint_model(workdir: str, stress: bool) -> tuple[str, float]:
    """Phonetisaurus trained on our training split in `<workdir>` (read back when it exists):
    `(model path, training seconds)`; the seconds are saved beside the model."""
    path = os.path.join(workdir, "train", "model.fst")
    seconds_file = os.path.join(workdir, "train_seconds.txt")
    if os.path.exists(path) and os.path.exists(seconds_file):
        with open(seconds_file) as f:
            return path, float(f.read())
    os.makedirs(workdir, exist_ok=True)
    lexicon = os.path.join(workdir, "train.lexicon")
    joint_sequence.write_lexicon(lexicon, joint_sequence.split_lexicon("train", stress))
    path, seconds = joint_sequence.train(lexicon, workdir)
    with open(seconds_file, "w") as f:
        f.write(f"{seconds}\n")
    return path, seconds


def lstm_lists(models, split: dict, stress: bool, batch_size: int = 500):
    """`(words, references, {word: [(phones, log p), ...]})`: each word's 4-best list."""
    first, words, refs = split_references(split, stress)
    symbols = phone_set(stress)
    source, lengths = split["source"][first], split["source_lengths"][first]
    lists = {}
    for i in range(0, len(words), batch_size):
        rows = np.arange(i, min(i + batch_size, len(words)))
        index = np.concatenate([rows, np.zeros(batch_size - len(rows), np.int64)])
        found = n_best(models, source[index], lengths[index], LSTM_BEAMS)
        for r, hyps in zip(rows, found):
            lists[words[r]] = [
                (tuple(symbols[t - FIRST_ID] for t in tokens), logp) for tokens, logp in hyps
            ]
    return words, refs, lists


def candidates(words: Sequence[str], lstm: dict, joint: dict) -> Candidates:
    """The union of both lists per word, each candidate with `[lstm log p or None, joint log p]`
    (the joint score of a candidate outside the joint list: that list's worst)."""
    out: Candidates = {}
    for word in words:
        hyps = joint.get(word, [])
        floor = min((-cost for _, cost in hyps), default=0.0)
        found = {tuple(phones): -cost for phones, cost in hyps}
        cands = {phones: [logp, found.get(phones, floor)] for phones, logp in lstm[word]}
        for phones, logp in found.items():
            cands.setdefault(phones, [None, logp])
        out[word] = cands
    return out


def force_missing(models, cands: Candidates, stress: bool, batch_size: int = 500) -> None:
    """Fills in the LSTM's log-probability of the joint model's candidates it did not find, by
    forced decoding, in fixed-shape batches (one compilation)."""
    todo = [(w, p) for w, c in cands.items() for p, s in c.items() if s[0] is None]
    for i in range(0, len(todo), batch_size):
        chunk = todo[i : i + batch_size]
        padded = chunk + [chunk[0]] * (batch_size - len(chunk))
        src, lens = pad_batch(
            [encode_word(w) for w, _ in padded], MAX_LETTERS, vocab_size=models[0].source_vocab_size
        )
        targets = [encode_phones(p, stress) for _, p in padded]
        logp = sequence_log_probs(models, src, lens, targets)
        for (w, p), s in zip(chunk, logp[: len(chunk)].tolist()):
            cands[w][p][0] = s


def combine(words: Sequence[str], cands: Candidates, weight: float) -> list[list[str]]:
    """Each word's candidate of the highest `lstm + weight * joint` (ties: the first listed)."""
    out = []
    for word in words:
        best = max(cands[word].items(), key=lambda kv: kv[1][0] + weight * kv[1][1])
        out.append(list(best[0]))
    return out


def rescored_split(models, split, stress, model_path, workdir) -> tuple[list, list, Candidates]:
    """`(words, references, candidates)` of a split, both models' scores filled in."""
    words, refs, lstm = lstm_lists(models, split, stress)
    joint = joint_sequence.apply_nbest(model_path, words, workdir, JOINT_NBEST)
    cands = candidates(words, lstm, joint)
    force_missing(models, cands, stress)
    return words, refs, cands


def rescore(models, data, stress: bool, workdir: str) -> dict:
    """Chooses the weight on the validation words, then decodes the test words with it.

    Returns:
      `weight`, `val_by_weight` (validation WER per weight), `val` and `test` (`score`'s fields,
      `words_per_sec` of the whole rescoring: both lists, forced decoding, the choice),
      `joint_train_seconds`, and `test_rows` (`(words, predictions, references)` for the TSV).
    """
    model_path, train_seconds = joint_model(os.path.join(workdir, "joint"), stress)
    val_words, val_refs, val_cands = rescored_split(
        models, data["val"], stress, model_path, workdir
    )
    by_weight = {w: score(combine(val_words, val_cands, w), val_refs)["wer"] for w in WEIGHTS}
    weight = min(WEIGHTS, key=lambda w: (by_weight[w], w))
    start = time.perf_counter()
    words, refs, cands = rescored_split(models, data["test"], stress, model_path, workdir)
    preds = combine(words, cands, weight)
    seconds = time.perf_counter() - start
    val_preds = combine(val_words, val_cands, weight)
    return {
        "weight": weight,
        "val_by_weight": {str(w): v for w, v in by_weight.items()},
        "val": score(val_preds, val_refs),
        "test": {**score(preds, refs), "words_per_sec": len(words) / seconds},
        "joint_train_seconds": train_seconds,
        "test_rows": (words, preds, refs),
    }
