"""Tests for seqlstm/task.py: the batch contract, tasks, model fields and the evaluation context."""

import numpy as np
import pytest

from seqlstm.data.bucketing import bucketed_batches
from seqlstm.task import (
    EvalContext,
    Task,
    as_task,
    batch_fields,
    check_split,
    model_args,
    scalars,
)


def split(n=4, t=3, **extra):
    s = {
        "inputs": np.zeros((n, t, 2), np.float32),
        "targets": np.zeros((n, t), np.int32),
        "mask": np.ones((n, t), bool),
    }
    s.update(extra)
    return s


def test_check_split_names_the_field_and_what_the_contract_wants():
    check_split(split(lengths=np.ones(4, np.int32)), "x")  # a task's own field is fine
    with pytest.raises(ValueError, match=r"x has no \['mask'\]"):
        check_split({"targets": np.zeros((2, 3), np.int32)}, "x")
    with pytest.raises(
        ValueError, match=r"field 'targets' has dtype float32 .*rank 2 of kind 'iu'"
    ):
        check_split(split(targets=np.zeros((4, 3), np.float32)), "x")
    with pytest.raises(ValueError, match=r"field 'mask' has 5 rows but 'inputs' has 4"):
        check_split(split(mask=np.ones((5, 3), bool)), "x")
    with pytest.raises(ValueError, match=r"mask \(4, 2\) and targets \(4, 3\)"):
        check_split(split(mask=np.ones((4, 2), bool)), "x")


def test_as_task_accepts_plain_splits_and_adds_an_empty_val():
    task = as_task({"train": split(), "test": split(2)}, "data task 'mine'")
    assert isinstance(task, Task) and task.hooks == ()
    assert task["val"]["inputs"].shape == (0, 3, 2) and sorted(task) == ["test", "train", "val"]
    with pytest.raises(ValueError, match=r"data task 'mine' returned list"):
        as_task([split()], "data task 'mine'")
    with pytest.raises(ValueError, match=r"returned splits \['train'\]; expected 'train', 'test'"):
        as_task({"train": split()}, "data task 'mine'")
    with pytest.raises(ValueError, match=r"data task 'mine', split 'test' has no \['targets'\]"):
        as_task({"train": split(), "test": {"mask": np.ones((1, 1), bool)}}, "data task 'mine'")


def test_model_fields_default_declared_and_checked():
    class Plain:
        pass

    class TwoFields:
        batch_fields = ("inputs", "lengths")

    class Bad:
        batch_fields = "inputs"

    assert batch_fields(Plain) == ("inputs",)
    assert model_args(batch_fields(TwoFields), {"lengths": 1, "inputs": 2, "x": 3}) == (2, 1)
    with pytest.raises(ValueError, match=r"Bad.batch_fields must be a tuple of field names"):
        batch_fields(Bad)


def test_the_context_builds_the_model_once_and_scalars_keep_numbers():
    built = []
    ctx = EvalContext("val", {}, {}, {}, 8, lambda: built.append(1) or "model")
    assert not built and ctx.model == "model" and ctx.model == "model" and built == [1]
    assert scalars({"a": 1, "b": {"c": 2.5, "d": [1, 2]}, "e": "x", "f": True}) == {
        "a": 1.0,
        "b_c": 2.5,
    }


def test_bucketing_serves_any_task_by_its_mask():
    mask = np.zeros((6, 8), bool)
    for row, n in enumerate([1, 2, 5, 8, 2, 6]):
        mask[row, :n] = True
    s = split(6, 8, mask=mask, targets=np.arange(48, dtype=np.int32).reshape(6, 8))
    seen = []
    for _, batch in bucketed_batches(s, 2, boundaries=(2, 4), seed=0, epoch=0):
        width = batch["mask"].shape[1]
        assert batch["inputs"].shape[1] == batch["targets"].shape[1] == width
        assert width in (2, 8) and batch["mask"].sum(1).max() <= width
        seen += [int(r) for r in batch["targets"][batch["mask"].any(1), 0] // 8]
    assert sorted(seen) == list(range(6))
