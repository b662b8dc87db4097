"""Tests for seqlstm/tasks/reverse.py: the reversed-sequence task (its batching:
tests/test_data_batching.py)."""

import numpy as np
import pytest

from seqlstm.data import train_batches
from seqlstm.tasks import get_task
from seqlstm.tasks.reverse import make_reverse_task


def test_targets_are_reversed_inputs():
    data = make_reverse_task(length=5, num_train=20, num_test=7, val_fraction=0.1, seed=3)
    for split in data.values():
        ids = split["inputs"].argmax(-1)
        np.testing.assert_array_equal(split["targets"], ids[:, ::-1])
        np.testing.assert_array_equal(split["inputs"].sum(-1), 1.0)
        assert split["inputs"].dtype == np.float32 and split["targets"].dtype == np.int32
        assert split["mask"].all()
    assert [len(data[k]["targets"]) for k in ("train", "val", "test")] == [18, 2, 7]


def test_same_seed_same_data_other_seed_other_data():
    a = make_reverse_task(length=6, seed=1)
    b = make_reverse_task(length=6, seed=1)
    c = make_reverse_task(length=6, seed=2)
    for split in ("train", "val", "test"):
        for key in ("inputs", "targets", "mask"):
            np.testing.assert_array_equal(a[split][key], b[split][key])
    assert not np.array_equal(a["train"]["targets"], c["train"]["targets"])
    # Train and test come from independent streams.
    assert not np.array_equal(a["train"]["targets"][:200], a["test"]["targets"])


def test_validation_is_the_tail_of_the_training_sequences():
    full = make_reverse_task(length=4, num_train=50, val_fraction=0.0, seed=0)
    split = make_reverse_task(length=4, num_train=50, val_fraction=0.2, seed=0)
    np.testing.assert_array_equal(split["train"]["targets"], full["train"]["targets"][:40])
    np.testing.assert_array_equal(split["val"]["targets"], full["train"]["targets"][40:])
    assert len(full["val"]["targets"]) == 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(length=0), "length must be a positive int"),
        (dict(length=-3), "length must be a positive int"),
        (dict(length=4, num_train=0), "num_train"),
        (dict(length=4, vocab_size=1.5), "vocab_size"),
        (dict(length=4, val_fraction=1.0), "val_fraction"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_reverse_task(**kwargs)


def test_bad_batch_size_and_task_raise():
    split = make_reverse_task(length=2, num_train=10)["train"]
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        next(train_batches(split, 0, seed=0, epoch=0))
    with pytest.raises(ValueError, match="unknown data task 'copy'"):
        get_task("copy", length=4)
    with pytest.raises(ValueError, match=r"unknown arguments \['lenght'\]"):
        get_task("reverse", lenght=4)
