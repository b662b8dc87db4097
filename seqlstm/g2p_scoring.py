"""Scoring pronunciations as the grapheme-to-phoneme literature does (pure Python, no JAX).

A word may have several reference pronunciations. A prediction is

  correct  when it equals any reference;
  closest  to the reference of smallest edit distance (Levenshtein over phones: insertions,
           deletions and substitutions cost 1), the first such reference on a tie.

  WER = wrong words / words
  PER = sum over words of the distance to the closest reference
        / sum over words of the length of that closest reference

A TSV of predictions (`write_predictions`) holds, per word, the prediction, its closest reference
and the distance, so anyone can re-score it (`score_tsv`) without the model or the dictionary.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence

TSV_HEADER = ("word", "predicted", "closest_reference", "distance")


PREDICTIONS = "test_predictions.tsv"  # what a run writes into its workdir


def edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    """Levenshtein distance between two token sequences (unit costs)."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def closest_reference(
    predicted: Sequence[str], references: Sequence[Sequence[str]]
) -> tuple[tuple[str, ...], int]:
    """The reference nearest to `predicted` and its distance (the first one on a tie).

    Raises:
      ValueError: if `references` is empty.
    """
    if not references:
        raise ValueError("a word needs at least one reference pronunciation")
    best = min(range(len(references)), key=lambda i: edit_distance(predicted, references[i]))
    return tuple(references[best]), edit_distance(predicted, references[best])


def score(
    predictions: Sequence[Sequence[str]], references: Sequence[Sequence[Sequence[str]]]
) -> dict[str, float]:
    """WER and PER of one prediction per word against that word's references.

    Args:
      predictions: one phone sequence per word.
      references: per word, its reference pronunciations (at least one).

    Returns:
      `wer`, `per` (fractions, not percent), `words`, `wrong_words`, `edits` (summed distances)
      and `reference_phones` (summed lengths of the closest references).

    Raises:
      ValueError: for different numbers of predictions and references, or a word without one.
    """
    if len(predictions) != len(references):
        raise ValueError(f"got {len(predictions)} predictions for {len(references)} words")
    wrong = edits = phones = 0
    for pred, refs in zip(predictions, references):
        ref, dist = closest_reference(pred, refs)
        wrong += dist > 0
        edits += dist
        phones += len(ref)
    n = len(predictions)
    return {
        "wer": wrong / max(n, 1),
        "per": edits / max(phones, 1),
        "words": n,
        "wrong_words": wrong,
        "edits": edits,
        "reference_phones": phones,
    }


def prediction_rows(
    words: Sequence[str],
    predictions: Sequence[Sequence[str]],
    references: Sequence[Sequence[Sequence[str]]],
) -> list[tuple[str, str, str, int]]:
    """`(word, predicted, closest reference, distance)` per word, phones space-separated."""
    rows = []
    for word, pred, refs in zip(words, predictions, references, strict=True):
        ref, dist = closest_reference(pred, refs)
        rows.append((word, " ".join(pred), " ".join(ref), dist))
    return rows


def write_predictions(path: str, rows: Sequence[tuple[str, str, str, int]]) -> None:
    """Writes `prediction_rows` as a TSV with one header line (`TSV_HEADER`)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(TSV_HEADER)
        writer.writerows(rows)


def score_tsv(path: str) -> dict[str, float]:
    """Re-scores a TSV of `write_predictions` from its prediction and closest-reference columns
    (the distance is recomputed, not read).

    Raises:
      ValueError: if the header is not `TSV_HEADER`.
    """
    with open(path, newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        header = tuple(next(reader, ()))
        if header != TSV_HEADER:
            raise ValueError(f"{path}: header {header} is not {TSV_HEADER}")
        rows = list(reader)
    return score([r[1].split() for r in rows], [[r[2].split()] for r in rows])
