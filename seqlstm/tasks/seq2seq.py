"""Sequence-to-sequence tasks with variable-length input and output, as padded token arrays.

  reverse        `[5, 3, 9]` -> `[9, 3, 5]`; lengths fixed or drawn uniformly from a range
  dedup_reverse  reverse, then keep the first occurrence of each number:
                 `[3, 2, 3, 5, 2]` -> `[2, 5, 3]` (output shorter than input, data-dependent)
  addition       `"123+45"` -> `"168"`, characters as tokens, operands of 1..`num_digits` digits

Numbers are data tokens: number n is id `FIRST_ID + n` (`seqlstm.tokens`: PAD=0, BOS=1, EOS=2).
A split is a dict of arrays with a leading example axis (the layout of
`seqlstm.tokens.seq2seq_arrays`): `source`, `source_lengths`, `target_in`, `targets`, `mask`;
each split is padded to its own longest sequence. Everything is deterministic from `seed`; train,
validation and test come from independent streams.

Length generalisation: `test_min_length` / `test_max_length` draw the test split from other
lengths than training (e.g. train on 1..16, test on 17..32).

Evaluation adds free-running accuracy (`seqlstm.tasks.hooks.decoding_accuracy`, scored by
`seqlstm.decoding.evaluate_decoding`), the accuracy a user of the model sees.
"""

from __future__ import annotations

import numpy as np

from seqlstm.checks import check_int
from seqlstm.task import Task
from seqlstm.tasks.hooks import decoding_accuracy
from seqlstm.tokens import FIRST_ID, seq2seq_arrays

SEQ2SEQ_TASKS = ("reverse", "dedup_reverse", "addition")
ADDITION_CHARS = "0123456789+"


def vocab_sizes(task: str, num_symbols: int = 10) -> tuple[int, int]:
    """`(source_vocab_size, target_vocab_size)` of a task, reserved ids included."""
    if task not in SEQ2SEQ_TASKS:
        raise ValueError(f"unknown seq2seq task {task!r}; expected one of {SEQ2SEQ_TASKS}")
    if task == "addition":
        return FIRST_ID + len(ADDITION_CHARS), FIRST_ID + 10
    return FIRST_ID + num_symbols, FIRST_ID + num_symbols


def max_lengths(task: str, max_length: int, num_digits: int) -> tuple[int, int]:
    """`(max_source_len, max_target_len)` a task can produce (the target counts EOS)."""
    if task == "addition":
        return 2 * num_digits + 1, num_digits + 2
    return max_length, max_length + 1


def dedup_reverse(seq) -> list[int]:
    """Reverses `seq` and keeps the first occurrence of each number."""
    seen, out = set(), []
    for x in reversed(list(seq)):
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def encode_addition(text: str) -> list[int]:
    """`"12+3"` -> token ids (characters of `ADDITION_CHARS` from `FIRST_ID` on)."""
    bad = sorted(set(text) - set(ADDITION_CHARS))
    if bad:
        raise ValueError(f"addition input {text!r} has characters {bad}; expected digits and '+'")
    return [FIRST_ID + ADDITION_CHARS.index(ch) for ch in text]


def decode_addition(ids) -> str:
    """Token ids -> characters (data ids only)."""
    return "".join(ADDITION_CHARS[i - FIRST_ID] for i in ids)


def parse_source(text: str, task: str, num_symbols: int = 10) -> list[int]:
    """A user's input -> data token ids: `"5 3 9"` (numbers below `num_symbols`; commas allowed)
    for reverse and dedup_reverse, `"123+45"` for addition. `""` is the empty sequence.

    Raises:
      ValueError: for a token outside the task's vocabulary.
    """
    if task not in SEQ2SEQ_TASKS:
        raise ValueError(f"unknown seq2seq task {task!r}; expected one of {SEQ2SEQ_TASKS}")
    if task == "addition":
        return encode_addition(text.replace(" ", ""))
    ids = []
    for word in text.replace(",", " ").split():
        if not word.isdigit() or int(word) >= num_symbols:
            raise ValueError(
                f"input {text!r}: {word!r} is not a number in 0..{num_symbols - 1} (this task's "
                "vocabulary)"
            )
        ids.append(FIRST_ID + int(word))
    return ids


def format_tokens(ids, task: str) -> list[str]:
    """Data token ids -> one display string per token (numbers, or characters for addition)."""
    if task == "addition":
        return list(decode_addition(ids))
    return [str(int(i) - FIRST_ID) for i in ids]


def _examples(task, num, rng, *, min_length, max_length, num_symbols, num_digits):
    sources, targets = [], []
    if task == "addition":
        for _ in range(num):
            a, b = (_number(rng, num_digits) for _ in range(2))
            sources.append(encode_addition(f"{a}+{b}"))
            targets.append(encode_addition(str(a + b)))
        return sources, targets
    lengths = rng.integers(min_length, max_length + 1, size=num)
    for n in lengths:
        seq = (FIRST_ID + rng.integers(0, num_symbols, size=int(n))).tolist()
        sources.append(seq)
        targets.append(seq[::-1] if task == "reverse" else dedup_reverse(seq))
    return sources, targets


def _number(rng: np.random.Generator, num_digits: int) -> int:
    digits = int(rng.integers(1, num_digits + 1))
    low = 0 if digits == 1 else 10 ** (digits - 1)
    return int(rng.integers(low, 10**digits))


def make_seq2seq_task(
    *,
    task: str = "reverse",
    min_length: int = 1,
    max_length: int = 16,
    test_min_length: int | None = None,
    test_max_length: int | None = None,
    num_symbols: int = 10,
    num_digits: int = 3,
    num_train: int = 10000,
    num_val: int = 500,
    num_test: int = 1000,
    seed: int = 0,
) -> Task:
    """Builds a seq2seq task's train, validation and test splits (see the module docstring).

    Args:
      task: one of `SEQ2SEQ_TASKS`.
      min_length, max_length: source lengths of train and validation (reverse, dedup_reverse);
        equal for a fixed length; 0 allows empty sequences.
      test_min_length, test_max_length: source lengths of the test split (default: as training).
      num_symbols: distinct numbers (reverse, dedup_reverse).
      num_digits: most digits per operand (addition).
      num_train, num_val, num_test: examples per split.
      seed: the data seed.

    Returns:
      `{"train", "val", "test"}`, each a dict of padded arrays, evaluated with greedy decoding
      (`decoding_accuracy`).

    Raises:
      ValueError: for an unknown task, or sizes and lengths out of range.
    """
    if task not in SEQ2SEQ_TASKS:
        raise ValueError(f"unknown seq2seq task {task!r}; expected one of {SEQ2SEQ_TASKS}")
    test_min_length = min_length if test_min_length is None else test_min_length
    test_max_length = max_length if test_max_length is None else test_max_length
    for name, value, minimum in (
        ("min_length", min_length, 0),
        ("max_length", max_length, 1),
        ("test_min_length", test_min_length, 0),
        ("test_max_length", test_max_length, 1),
        ("num_symbols", num_symbols, 1),
        ("num_digits", num_digits, 1),
        ("num_train", num_train, 1),
        ("num_val", num_val, 0),
        ("num_test", num_test, 1),
        ("seed", seed, 0),
    ):
        check_int(name, value, minimum)
    if min_length > max_length or test_min_length > test_max_length:
        raise ValueError(
            f"need min_length <= max_length and test_min_length <= test_max_length, got "
            f"{min_length}..{max_length} and {test_min_length}..{test_max_length}"
        )
    src_vocab, tgt_vocab = vocab_sizes(task, num_symbols)
    splits = {}
    for index, (name, num, lo, hi) in enumerate(
        (
            ("train", num_train, min_length, max_length),
            ("val", num_val, min_length, max_length),
            ("test", num_test, test_min_length, test_max_length),
        )
    ):
        rng = np.random.default_rng([seed, index])
        kw = dict(min_length=lo, max_length=hi, num_symbols=num_symbols, num_digits=num_digits)
        sources, targets = _examples(task, num, rng, **kw)
        src_len, tgt_len = max_lengths(task, hi, num_digits)
        splits[name] = seq2seq_arrays(
            sources,
            targets,
            max_source_len=max(src_len, 1),
            max_target_len=tgt_len,
            source_vocab_size=src_vocab,
            target_vocab_size=tgt_vocab,
        )
    return Task(splits, hooks=(decoding_accuracy,))
