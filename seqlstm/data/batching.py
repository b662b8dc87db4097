"""Deterministic, resumable batching of any task's splits (`seqlstm.task`).

The batch order of epoch `e` is a pure function of `(seed, e)`, so a run restarted from a
checkpoint at (epoch, batch index) sees exactly the batches an uninterrupted run would. Every batch
has `batch_size` rows (one shape, one compilation): the rows past the split's end are padding,
zeros with an all-False mask, which masked losses give no weight.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from seqlstm.checks import check_positive
from seqlstm.task import Split, split_size


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


def fixed_batches(n: int, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """`(rows, index)` over `n` rows in order, `batch_size` at a time, for decoding in one shape
    (one compilation): `rows` are the batch's rows, `index` the same padded to `batch_size` with
    row 0 (whose outputs the caller drops: keep the first `len(rows)`)."""
    check_positive("batch_size", batch_size)
    for i in range(0, n, batch_size):
        rows = np.arange(i, min(i + batch_size, n))
        yield rows, np.concatenate([rows, np.zeros(batch_size - len(rows), np.int64)])


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
