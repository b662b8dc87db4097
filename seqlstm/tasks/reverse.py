"""The reversed-sequence task (`"reverse"`): input a sequence of ids, target it reversed.

A split is a dict of numpy arrays with a leading example axis:

  inputs:  float32[n, time, vocab_size]   one-hot tokens
  targets: int32[n, time]                 class ids
  mask:    bool[n, time]                  valid target steps (right padding)

Batching (`seqlstm.data.batching`) serves these splits and every other task's alike; the
evaluation adds per-position accuracy (`seqlstm.tasks.hooks.position_accuracy`).
"""

from __future__ import annotations

import numpy as np

from seqlstm.checks import check_positive
from seqlstm.task import Split, Task
from seqlstm.tasks.hooks import position_accuracy


def one_hot(ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """`int[...]` ids to `float32[..., vocab_size]` one-hot vectors."""
    return (ids[..., None] == np.arange(vocab_size)).astype(np.float32)


def reversed_sequences(num: int, length: int, vocab_size: int, rng: np.random.Generator) -> Split:
    """`num` uniform random sequences of `length` ids in [0, vocab_size) and their reversals.

    Returns:
      A split: `inputs` one-hot `[num, length, vocab_size]`, `targets` `ids[:, ::-1]`, an all-True
      `mask`.
    """
    ids = rng.integers(0, vocab_size, size=(num, length), dtype=np.int32)
    return {
        "inputs": one_hot(ids, vocab_size),
        "targets": np.ascontiguousarray(ids[:, ::-1]),
        "mask": np.ones((num, length), dtype=bool),
    }


def make_reverse_task(
    *,
    length: int,
    vocab_size: int = 10,
    num_train: int = 2000,
    num_test: int = 200,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> Task:
    """The reversed-sequence task: input a sequence of ids, target the same sequence reversed.

    Train and test sequences come from independent streams of `seed`; the validation split is the
    last `val_fraction` of the training sequences (as Keras's `validation_split`), so it never
    overlaps the `num_train - num_val` sequences trained on.

    Args:
      length: time steps T of every sequence.
      vocab_size: number of distinct ids (the one-hot width and the number of classes).
      num_train: training sequences, validation included.
      num_test: test sequences.
      val_fraction: fraction of `num_train` held out for validation, in [0, 1).
      seed: the data seed.

    Returns:
      The `{"train", "val", "test"}` splits (see the module docstring; `val` is empty when
      `val_fraction` rounds to zero sequences), evaluated with per-position accuracy.

    Raises:
      ValueError: on a non-positive size or length, or a fraction outside [0, 1).
    """
    for name, value in (
        ("length", length),
        ("vocab_size", vocab_size),
        ("num_train", num_train),
        ("num_test", num_test),
    ):
        check_positive(name, value)
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    train = reversed_sequences(num_train, length, vocab_size, np.random.default_rng([seed, 0]))
    test = reversed_sequences(num_test, length, vocab_size, np.random.default_rng([seed, 1]))
    num_val = int(round(num_train * val_fraction))
    cut = num_train - num_val
    splits = {
        "train": {k: v[:cut] for k, v in train.items()},
        "val": {k: v[cut:] for k, v in train.items()},
        "test": test,
    }
    return Task(splits, hooks=(position_accuracy,))
