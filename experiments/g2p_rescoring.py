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

from experiments import joint_sequence
from seqlstm.data.batching import fixed_batches
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
from seqlstm.train.workdir import read_json, write_json

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


def _encode_words(models, words: Sequence[str]):
    """`(source, lengths)` of words, padded to the longest word the task keeps."""
    return pad_batch(
        [encode_word(w) for w in words], MAX_LETTERS, vocab_size=models[0].source_vocab_size
    )


def lstm_lists(models, words: Sequence[str], stress: bool, batch_size: int = 500) -> dict:
    """`{word: [(phones, log p), ...]}`: each word's 4-best list from beam search, in
    fixed-shape batches (one compilation)."""
    symbols = phone_set(stress)
    lists = {}
    for rows, index in fixed_batches(len(words), batch_size):
        src, lens = _encode_words(models, [words[j] for j in index])
        found = n_best(models, src, lens, LSTM_BEAMS)
        for word, hyps in zip([words[j] for j in rows], found):
            lists[word] = [
                (tuple(symbols[t - FIRST_ID] for t in tokens), logp) for tokens, logp in hyps
            ]
    return lists


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
    for rows, index in fixed_batches(len(todo), batch_size):
        padded = [todo[j] for j in index]
        src, lens = _encode_words(models, [w for w, _ in padded])
        logp = sequence_log_probs(models, src, lens, [encode_phones(p, stress) for _, p in padded])
        for (w, p), s in zip([todo[j] for j in rows], logp[: len(rows)].tolist()):
            cands[w][p][0] = s


def combine(words: Sequence[str], cands: Candidates, weight: float) -> list[list[str]]:
    """Each word's candidate of the highest `lstm + weight * joint` (ties: the first listed)."""
    out = []
    for word in words:
        best = max(cands[word].items(), key=lambda kv: kv[1][0] + weight * kv[1][1])
        out.append(list(best[0]))
    return out


def scored_candidates(models, words, stress, model_path, workdir) -> Candidates:
    """Both lists of every word, both models' scores filled in."""
    lstm = lstm_lists(models, words, stress)
    joint = joint_sequence.apply_nbest(model_path, words, workdir, JOINT_NBEST)
    cands = candidates(words, lstm, joint)
    force_missing(models, cands, stress)
    return cands


def rescored_split(models, split, stress, model_path, workdir) -> tuple[list, list, Candidates]:
    """`(words, references, candidates)` of a split (`scored_candidates`)."""
    _, words, refs = split_references(split, stress)
    return words, refs, scored_candidates(models, words, stress, model_path, workdir)


def rescore(models, data, stress: bool, workdir: str) -> dict:
    """Chooses the weight on the validation words, then decodes the test words with it.

    Returns:
      `weight`, `val_by_weight` (validation WER per weight), `val` and `test` (`score`'s fields,
      `words_per_sec` of the whole rescoring: both lists, forced decoding, the choice),
      `joint_train_seconds`, `joint_model` (its path), and `test_rows` (`(words, predictions,
      references)` for the TSV).
    """
    model_path, train_seconds = joint_model(os.path.join(workdir, "joint"), stress)
    val_words, val_refs, val_cands = rescored_split(
        models, data["val"], stress, model_path, workdir
    )
    val_preds = {w: combine(val_words, val_cands, w) for w in WEIGHTS}
    val_scores = {w: score(preds, val_refs) for w, preds in val_preds.items()}
    weight = min(WEIGHTS, key=lambda w: (val_scores[w]["wer"], w))
    start = time.perf_counter()
    words, refs, cands = rescored_split(models, data["test"], stress, model_path, workdir)
    preds = combine(words, cands, weight)
    seconds = time.perf_counter() - start
    return {
        "weight": weight,
        "val_by_weight": {str(w): s["wer"] for w, s in val_scores.items()},
        "val": val_scores[weight],
        "test": {**score(preds, refs), "words_per_sec": len(words) / seconds},
        "joint_train_seconds": train_seconds,
        "joint_model": model_path,
        "test_rows": (words, preds, refs),
    }


# --- a rescoring folder: what `experiments.pronounce --workdir` serves -------------------------

RESCORING = "rescoring.json"


def write_rescoring(workdir: str, ensemble: str, joint_model: str, weight: float) -> None:
    """Writes `<workdir>/rescoring.json`: the LSTM run or ensemble folder, the joint model and
    the chosen weight, paths relative to `workdir`."""
    os.makedirs(workdir, exist_ok=True)
    rel = lambda p: os.path.relpath(os.path.realpath(p), os.path.realpath(workdir))  # noqa: E731
    write_json(
        os.path.join(workdir, RESCORING),
        {"ensemble": rel(ensemble), "joint_model": rel(joint_model), "weight": float(weight)},
    )


def read_rescoring(workdir: str) -> dict | None:
    """`{"ensemble", "joint_model", "weight"}` (paths resolved) of a rescoring folder, else None.

    Raises:
      ValueError: a `rescoring.json` without those keys, or naming a joint model that is gone.
    """
    path = os.path.join(workdir, RESCORING)
    if not os.path.isfile(path):
        return None
    spec = read_json(path)
    if not isinstance(spec, dict) or set(spec) != {"ensemble", "joint_model", "weight"}:
        raise ValueError(f"{path} must hold exactly 'ensemble', 'joint_model' and 'weight'")
    out = {k: os.path.normpath(os.path.join(workdir, spec[k])) for k in ("ensemble", "joint_model")}
    if not os.path.isfile(out["joint_model"]):
        raise ValueError(f"{path}: the joint model {out['joint_model']!r} does not exist")
    return {**out, "weight": float(spec["weight"])}


def rescore_words(
    models, words: Sequence[str], stress: bool, joint_model: str, weight: float, workdir: str
) -> list[list[tuple[list[str], float]]]:
    """Every word's candidates ranked by `lstm + weight * joint`, best first:
    `[[(phones, combined score), ...], ...]`. `words` must be lowercase, without repeats."""
    cands = scored_candidates(models, words, stress, joint_model, workdir)
    return [
        sorted(((list(p), s[0] + weight * s[1]) for p, s in cands[w].items()), key=lambda c: -c[1])
        for w in words
    ]
