"""Synthetic sequence tasks as numpy arrays, and a resumable, deterministic batch order.

A dataset split is a dict of numpy arrays with a leading example axis:

  inputs:  float32[n, time, vocab_size]   one-hot tokens
  targets: int32[n, time]                 class ids
  mask:    bool[n, time]                  valid target steps (right padding)

The batch order of epoch `e` is a pure function of `(seed, e)`, so a run restarted from a
checkpoint at (epoch, batch index) sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import numpy as np

from seqlstm.checks import check_positive

Split = dict[str, np.ndarray]


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
) -> dict[str, Split]:
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
      `{"train", "val", "test"}` splits (see the module docstring); `val` is empty when
      `val_fraction` rounds to zero sequences.

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
    return {
        "train": {k: v[:cut] for k, v in train.items()},
        "val": {k: v[cut:] for k, v in train.items()},
        "test": test,
    }


TASKS = {"reverse": make_reverse_task}


def get_task(name: str, **kwargs) -> dict[str, Split]:
    """Builds the task `name` (a key of `TASKS`) from keyword arguments, e.g. `config.data`.

    Raises:
      ValueError: for an unknown task or argument, or a bad argument value.
    """
    if name not in TASKS:
        raise ValueError(f"unknown data task {name!r}; expected one of {sorted(TASKS)}")
    params = inspect.signature(TASKS[name]).parameters
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise ValueError(
            f"data task {name!r} got unknown arguments {unknown}; it takes {list(params)}"
        )
    return TASKS[name](**kwargs)


def split_size(split: Split) -> int:
    """Number of examples in a split."""
    return int(split["targets"].shape[0])


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The example order of `epoch`: a function of `(seed, epoch)` only, never of past draws."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Batches per epoch; the last one is padded, so every example is seen once per epoch."""
    check_positive("batch_size", batch_size)
    return -(-n // batch_size)


def take(split: Split, index: np.ndarray, batch_size: int) -> Split:
    """Gathers `index` rows of `split` into a batch of exactly `batch_size` rows.

    Rows past `len(index)` are padding: zero inputs, zero targets and an all-False mask, so they
    carry no weight in masked losses and every batch has one shape (one compilation).
    """
    batch = {k: v[index] for k, v in split.items()}
    pad = batch_size - len(index)
    if pad:
        batch = {
            k: np.concatenate([v, np.zeros((pad, *v.shape[1:]), v.dtype)]) for k, v in batch.items()
        }
    return batch


def train_batches(
    split: Split, batch_size: int, *, seed: int, epoch: int, start: int = 0
) -> Iterator[tuple[int, Split]]:
    """The batches of one training epoch, from batch index `start` on.

    Yields:
      `(index, batch)`, `index` counting batches within the epoch from 0.
    """
    n = split_size(split)
    order = epoch_permutation(seed, epoch, n)
    for i in range(start, steps_per_epoch(n, batch_size)):
        yield i, take(split, order[i * batch_size : (i + 1) * batch_size], batch_size)


def eval_batches(split: Split, batch_size: int) -> Iterator[Split]:
    """The batches of a split in order, the last one padded to `batch_size` rows."""
    n = split_size(split)
    for i in range(steps_per_epoch(n, batch_size)):
        yield take(split, np.arange(i * batch_size, min((i + 1) * batch_size, n)), batch_size)
