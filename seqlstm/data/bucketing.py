"""Length bucketing: batches of similar-length sequences, each cut to its bucket's width.

Plain padding pads every batch to the longest sequence of the data set, so on length-skewed data
most steps of most batches compute on padding. With bucketing, each example goes to the smallest
bucket boundary `b` that holds it (at most `b` valid target steps; for an encoder-decoder, source
and target of at most `b` tokens); a batch takes examples of one bucket only, and is cut to `b`
steps (an encoder-decoder's target to `b + 1`, for EOS). It reads only the fields
`seqlstm.task.LENGTH_FIELDS` names. One boundary is
one shape, so the train step compiles once per bucket.

Like `seqlstm.data.batching.train_batches`, the batches of epoch `e` are a pure function of
`(seed, e)` (examples shuffled within buckets, then the batches shuffled), so a run resumed at a
batch index sees exactly the batches of an uninterrupted run. The number of batches per epoch
depends only on the bucket sizes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from seqlstm.data.batching import take
from seqlstm.task import SOURCE_FIELDS, Split


def check_boundaries(boundaries: Sequence[int]) -> tuple[int, ...]:
    """Returns `boundaries` as a strictly increasing tuple of positive ints, or raises."""
    b = tuple(boundaries)
    if not b or any(not isinstance(x, (int, np.integer)) or x <= 0 for x in b):
        raise ValueError(f"bucket boundaries must be positive ints, got {boundaries!r}")
    if any(x >= y for x, y in zip(b, b[1:])):
        raise ValueError(f"bucket boundaries must increase strictly, got {boundaries!r}")
    return tuple(int(x) for x in b)


def _has_source(split: Split) -> bool:
    return "source_lengths" in split


def example_sizes(split: Split) -> np.ndarray:
    """Tokens of each example: its valid target steps; for an encoder-decoder, the longer of its
    source and its target (EOS not counted)."""
    target_tokens = split["mask"].sum(axis=1)
    if not _has_source(split):
        return target_tokens.astype(np.int64)
    return np.maximum(split["source_lengths"], target_tokens - 1).astype(np.int64)


def bucket_ids(split: Split, boundaries: Sequence[int]) -> np.ndarray:
    """The bucket of every example; examples longer than the last boundary go to a last bucket
    as wide as the split itself."""
    boundaries = check_boundaries(boundaries)
    return np.searchsorted(np.asarray(boundaries), example_sizes(split), side="left")


def _plan(split: Split, batch_size: int, boundaries, seed: int, epoch: int):
    ids = bucket_ids(split, boundaries)
    order = np.random.default_rng([seed, epoch, 1]).permutation(len(ids))
    batches = []
    for bucket in np.unique(ids):
        members = order[ids[order] == bucket]
        for i in range(0, len(members), batch_size):
            batches.append((int(bucket), members[i : i + batch_size]))
    shuffle = np.random.default_rng([seed, epoch, 2]).permutation(len(batches))
    return [batches[i] for i in shuffle]


def bucketed_steps_per_epoch(split: Split, batch_size: int, boundaries: Sequence[int]) -> int:
    """Batches per epoch with bucketing (each bucket's last batch padded with empty rows)."""
    ids = bucket_ids(split, boundaries)
    return int(sum(-(-int(n) // batch_size) for n in np.bincount(ids) if n))


def cut(batch: Split, width: int) -> Split:
    """Cuts a batch of examples of at most `width` tokens along its time axes: source fields
    (`seqlstm.task.SOURCE_FIELDS`) to `width` steps, every other field with a time axis to
    `width` steps, or `width + 1` (EOS) for an encoder-decoder; no valid step is lost."""
    target_width = width + 1 if _has_source(batch) else width
    return {
        k: v[:, : width if k in SOURCE_FIELDS else target_width] if v.ndim > 1 else v
        for k, v in batch.items()
    }


def bucketed_batches(
    split: Split,
    batch_size: int,
    *,
    boundaries: Sequence[int],
    seed: int,
    epoch: int,
    start: int = 0,
) -> Iterator[tuple[int, Split]]:
    """The bucketed batches of one training epoch, from batch index `start` on.

    Args:
      split: any task's split (`seqlstm.task`).
      batch_size: rows per batch (a bucket's last batch is padded with empty rows).
      boundaries: increasing bucket widths in tokens, e.g. `(8, 16, 32, 64)`.
      seed, epoch: fix the order.
      start: first batch index to yield.

    Yields:
      `(index, batch)`: the source cut to its bucket's width, the target to one step more.
    """
    boundaries = check_boundaries(boundaries)
    plan = _plan(split, batch_size, boundaries, seed, epoch)
    for i in range(start, len(plan)):
        bucket, index = plan[i]
        batch = take(split, index, batch_size)
        if bucket < len(boundaries):
            batch = cut(batch, boundaries[bucket])
        yield i, batch
