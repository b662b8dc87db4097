"""Tests for seqlstm/data/bucketing.py: length buckets (on the seq2seq task's splits)."""

import numpy as np
import pytest

from seqlstm.data.bucketing import bucket_ids, bucketed_batches, bucketed_steps_per_epoch
from seqlstm.tasks.seq2seq import make_seq2seq_task


def test_bucketing_covers_each_example_once_cut_to_its_bucket():
    data = make_seq2seq_task(min_length=1, max_length=30, num_train=300, num_val=0, num_test=1)
    split = data["train"]
    boundaries = (8, 16, 32)
    ids = bucket_ids(split, boundaries)
    n = bucketed_steps_per_epoch(split, 32, boundaries)
    batches = list(bucketed_batches(split, 32, boundaries=boundaries, seed=1, epoch=0))
    assert [i for i, _ in batches] == list(range(n))
    seen = []
    for _, batch in batches:
        width = batch["source"].shape[1]  # a bucket's boundary, or the split's 30 for 32
        assert width in (8, 16, 30) and batch["targets"].shape[1] == width + 1
        assert batch["source"].shape[0] == 32
        real = batch["mask"].any(1)
        assert np.all(batch["mask"].sum(1) <= width + 1)  # no valid step was cut
        assert np.all(batch["source_lengths"] <= width)
        # One bucket per batch: every real row needs more than the previous boundary.
        sizes = batch["source_lengths"][real]  # reversal: as many target tokens
        lower = {8: 0, 16: 8, 30: 16}[width]
        assert np.all(sizes > lower)
        seen += [tuple(s[:n]) for s, n in zip(batch["source"][real], batch["source_lengths"])]
    expected = [tuple(s[:n]) for s, n in zip(split["source"], split["source_lengths"])]
    assert sorted(seen) == sorted(expected)
    assert len(set(ids.tolist())) == 3
    # Resuming at batch k gives the same batches; another epoch another order.
    tail = list(bucketed_batches(split, 32, boundaries=boundaries, seed=1, epoch=0, start=3))
    for (i, a), (j, b) in zip(batches[3:], tail):
        assert i == j and all(np.array_equal(a[k], b[k]) for k in a)
    other = list(bucketed_batches(split, 32, boundaries=boundaries, seed=1, epoch=1))
    assert any(
        not np.array_equal(a["source"], b["source"]) for (_, a), (_, b) in zip(batches, other)
    )


def test_bad_boundaries():
    split = make_seq2seq_task(max_length=4, num_train=10, num_val=0, num_test=1)["train"]
    for bad in ((), (8, 4), (0, 4)):
        with pytest.raises(ValueError, match="bucket boundaries"):
            list(bucketed_batches(split, 4, boundaries=bad, seed=0, epoch=0))
