"""Tests for seqlstm/data/batching.py: epoch order, resumable training batches, padded evaluation
batches (on the reversal task's splits)."""

import numpy as np

from seqlstm.data import epoch_permutation, eval_batches, steps_per_epoch, train_batches
from seqlstm.tasks.reverse import make_reverse_task


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


def test_fixed_batches_by_hand():
    from seqlstm.data.batching import fixed_batches

    got = [(r.tolist(), i.tolist()) for r, i in fixed_batches(5, 2)]
    assert got == [([0, 1], [0, 1]), ([2, 3], [2, 3]), ([4], [4, 0])]
    assert list(fixed_batches(0, 3)) == []
