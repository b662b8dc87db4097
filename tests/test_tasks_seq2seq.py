"""Tests for seqlstm/tasks/seq2seq.py and seqlstm/data/bucketing.py."""

import numpy as np
import pytest

from seqlstm.data.bucketing import bucket_ids, bucketed_batches, bucketed_steps_per_epoch
from seqlstm.tasks import get_task
from seqlstm.tasks.seq2seq import (
    decode_addition,
    dedup_reverse,
    encode_addition,
    format_tokens,
    make_seq2seq_task,
    parse_source,
)
from seqlstm.tokens import BOS, FIRST_ID, strip


def rows(split):
    for i in range(split["targets"].shape[0]):
        src = split["source"][i, : split["source_lengths"][i]].tolist()
        yield src, strip(split["targets"][i])


def test_dedup_reverse_example_from_the_issue():
    assert dedup_reverse([3, 2, 3, 5, 2]) == [2, 5, 3]


@pytest.mark.parametrize("task", ["reverse", "dedup_reverse", "addition"])
def test_tasks_are_correct_and_deterministic(task):
    kw = dict(task=task, min_length=0, max_length=9, num_train=60, num_val=5, num_test=20)
    data = get_task("seq2seq", **kw)
    again = make_seq2seq_task(**kw)
    for name in ("train", "val", "test"):
        for key, value in data[name].items():
            np.testing.assert_array_equal(value, again[name][key])
    split = data["train"]
    assert np.all(split["target_in"][:, 0] == BOS)
    np.testing.assert_array_equal(split["mask"].sum(1), [len(t) + 1 for _, t in rows(split)])
    for src, tgt in rows(split):
        if task == "reverse":
            assert tgt == src[::-1]
        elif task == "dedup_reverse":
            assert tgt == dedup_reverse(src) and len(tgt) == len(set(src))
        else:
            a, b = decode_addition(src).split("+")
            assert decode_addition(tgt) == str(int(a) + int(b))
    if task != "addition":
        lengths = split["source_lengths"]
        assert lengths.min() == 0 and lengths.max() == 9  # variable, empty ones included
    assert not np.array_equal(data["train"]["source"][:5], data["test"]["source"][:5])


def test_length_generalisation_split():
    data = make_seq2seq_task(
        min_length=1, max_length=4, test_min_length=5, test_max_length=8, num_train=50,
        num_val=5, num_test=30,
    )  # fmt: skip
    assert data["train"]["source_lengths"].max() <= 4 and data["train"]["source"].shape[1] == 4
    lengths = data["test"]["source_lengths"]
    assert lengths.min() >= 5 and lengths.max() <= 8 and data["test"]["source"].shape[1] == 8
    assert data["test"]["targets"].shape[1] == 9


def test_addition_encoding():
    assert encode_addition("12+3") == [FIRST_ID + 1, FIRST_ID + 2, FIRST_ID + 10, FIRST_ID + 3]
    with pytest.raises(ValueError, match="characters"):
        encode_addition("1-2")


def test_user_input_parsing():
    assert parse_source("5 3,9", "reverse") == [FIRST_ID + 5, FIRST_ID + 3, FIRST_ID + 9]
    assert parse_source("", "dedup_reverse") == []
    assert format_tokens(parse_source("12+3", "addition"), "addition") == list("12+3")
    assert format_tokens(parse_source("7 0", "reverse"), "reverse") == ["7", "0"]
    with pytest.raises(ValueError, match="'12' is not a number in 0..9"):
        parse_source("1 12", "reverse")
    with pytest.raises(ValueError, match="'x' is not a number in 0..4"):
        parse_source("x", "reverse", num_symbols=5)
    with pytest.raises(ValueError, match="characters"):
        parse_source("1*2", "addition")


def test_bad_task_arguments():
    with pytest.raises(ValueError, match="unknown seq2seq task"):
        make_seq2seq_task(task="sort")
    with pytest.raises(ValueError, match="min_length <= max_length"):
        make_seq2seq_task(min_length=5, max_length=4)
    with pytest.raises(ValueError, match="num_train must be"):
        make_seq2seq_task(num_train=0)
    with pytest.raises(ValueError, match="unknown arguments"):
        get_task("seq2seq", length=4)


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
