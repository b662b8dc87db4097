"""Tests for seqlstm/tasks/seq2seq.py: reverse, dedup_reverse and addition, input parsing (length
buckets: tests/test_data_bucketing.py)."""

import numpy as np
import pytest

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
