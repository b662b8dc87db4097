"""Tests for seqlstm/tasks/reverse.py: the reversed-sequence task; and seqlstm/data/batching.py:
resumable batching."""

import numpy as np
import pytest

from seqlstm.data import epoch_permutation, eval_batches, steps_per_epoch, train_batches
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


def test_epoch_order_is_a_function_of_seed_and_epoch():
    np.testing.assert_array_equal(epoch_permutation(0, 3, 100), epoch_permutation(0, 3, 100))
    assert not np.array_equal(epoch_permutation(0, 3, 100), epoch_permutation(0, 4, 100))
    assert not np.array_equal(epoch_permutation(0, 3, 100), epoch_permutation(1, 3, 100))
    assert sorted(epoch_permutation(5, 0, 100)) == list(range(100))


def test_batches_cover_the_epoch_and_resume_mid_epoch():
    split = make_reverse_task(length=3, num_train=70, val_fraction=0.0)["train"]
    full = list(train_batches(split, 32, seed=4, epoch=2))
    assert [i for i, _ in full] == [0, 1, 2] == list(range(steps_per_epoch(70, 32)))
    assert all(b["targets"].shape == (32, 3) for _, b in full)
    last = full[-1][1]
    assert last["mask"][:6].all() and not last["mask"][6:].any()  # 70 = 32 + 32 + 6
    seen = np.concatenate([b["inputs"][b["mask"][:, 0]] for _, b in full])
    assert len(seen) == 70
    order = epoch_permutation(4, 2, 70)
    np.testing.assert_array_equal(seen, split["inputs"][order])
    resumed = list(train_batches(split, 32, seed=4, epoch=2, start=1))
    assert [i for i, _ in resumed] == [1, 2]
    for (_, a), (_, b) in zip(full[1:], resumed):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_eval_batches_are_in_order_and_padded():
    split = make_reverse_task(length=2, num_train=10, num_test=45, val_fraction=0.0)["test"]
    batches = list(eval_batches(split, 20))
    assert len(batches) == 3
    valid = np.concatenate([b["targets"][b["mask"][:, 0]] for b in batches])
    np.testing.assert_array_equal(valid, split["targets"])
    assert batches[-1]["mask"].sum() == 5 * 2


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
