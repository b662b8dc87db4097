"""Tests for seqlstm/train/evaluate.py: what hooks return, hooks that fail, and splits with no
target steps (issue 23, item 4)."""

import json
import os
import re

import jax.numpy as jnp
import numpy as np
import pytest

from configs.reverse import get_config
from seqlstm.task import Task
from seqlstm.tasks import get_task
from seqlstm.train import loop, train_and_evaluate
from seqlstm.train.evaluate import EvalHookError, evaluate
from seqlstm.train.workdir import write_json


def split(n=3, t=2, mask=True):
    return {
        "inputs": np.zeros((n, t, 2), np.float32),
        "targets": np.zeros((n, t), np.int32),
        "mask": np.full((n, t), mask),
    }


def fake_eval_step(params, batch):
    """Sums as `masked_sums` gives them for logits that are right on every second row."""
    mask = np.asarray(batch["mask"], np.float32)
    right = (np.arange(len(mask)) % 2 == 0)[:, None] * mask
    tokens = mask.sum()
    return {
        "loss_sum": np.float32(0.5 * tokens), "tokens": np.float32(tokens),
        "token_correct": np.float32(right.sum()), "sequences": np.float32(len(mask)),
        "seq_correct": np.float32((right.sum(1) > 0).sum()),
        "position_correct": right.sum(0), "position_tokens": mask.sum(0),
    }  # fmt: skip


def numbers_hook(ctx):
    return {
        "np_float": np.float32(0.5), "np_int": np.int64(3), "np_bool": np.bool_(True),
        "np_array": np.arange(3, dtype=np.int32), "jax_scalar": jnp.float32(1.5),
        "jax_array": jnp.ones((2, 2)), "by_length": {np.int64(4): np.float64(0.25)},
        "pair": (np.float32(1.0), "x"),
    }  # fmt: skip


def none_hook(ctx):
    return None


def failing_hook(ctx):
    return ctx.sums["no_such_sum"]


def test_hook_numbers_and_arrays_become_json_and_none_counts_as_empty():
    out = evaluate(fake_eval_step, None, split(4), 2, hooks=(numbers_hook, none_hook))
    assert out == {
        "loss": 0.5, "token_accuracy": 0.5, "sequence_accuracy": 0.5,
        "np_float": 0.5, "np_int": 3, "np_bool": True, "np_array": [0, 1, 2],
        "jax_scalar": 1.5, "jax_array": [[1.0, 1.0], [1.0, 1.0]], "by_length": {4: 0.25},
        "pair": [1.0, "x"],
    }  # fmt: skip
    assert type(out["np_int"]) is int and type(out["np_float"]) is float
    json.dumps(out)  # before: "Object of type float32 is not JSON serializable"


def test_a_failing_hook_is_one_error_naming_it_and_the_split():
    with pytest.raises(EvalHookError) as e:
        evaluate(fake_eval_step, None, split(), 2, hooks=(failing_hook,), split_name="val")
    assert str(e.value).startswith(
        "evaluation hook test_evaluate.failing_hook on the val split failed: KeyError: "
        "'no_such_sum'"
    )
    assert isinstance(e.value.__cause__, KeyError)  # its traceback, for --verbosity=0
    with pytest.raises(EvalHookError, match=r"returned list; a hook returns a dict \(or None\)"):
        evaluate(fake_eval_step, None, split(), 2, hooks=(lambda ctx: [1.0],))
    with pytest.raises(
        EvalHookError,
        match=r"returned builtin_function_or_method '<built-in function print>' at key 'f'",
    ):
        evaluate(fake_eval_step, None, split(), 2, hooks=(lambda ctx: {"f": print},))


@pytest.mark.parametrize(
    "empty, reason",
    [
        (split(n=0), "the test split has no examples"),
        (
            split(mask=False),
            r"the test split has no target steps \(its mask \[3, 2\] is all False\)",
        ),
        (split(t=0), r"the test split has no target steps \(its mask \[3, 0\] is all False\)"),
    ],
)
def test_a_split_without_target_steps_has_its_metrics_marked_absent(empty, reason):
    out = evaluate(fake_eval_step, None, empty, 2, hooks=(failing_hook,), split_name="test")
    assert re.fullmatch(reason, out.pop("absent"))  # no hook ran: failing_hook would raise
    assert out == {"loss": None, "token_accuracy": None, "sequence_accuracy": None}


def test_a_value_json_cannot_hold_leaves_no_tmp_file(tmp_path):
    path = str(tmp_path / "results.json")
    write_json(path, {"a": 1})
    with pytest.raises(TypeError, match="not JSON serializable"):
        write_json(path, {"a": object()})
    assert os.listdir(tmp_path) == ["results.json"]  # before: results.json.tmp was left too


# --- in a run -----------------------------------------------------------------------------------


def edge_task(*, no_val=False, hook=None, **kwargs):
    """The reverse task with its edges cut: no validation split and a hook (`no_val`, `hook`),
    or a validation split whose mask is all False and a test split of T = 0."""
    splits = {k: dict(v) for k, v in get_task("reverse", **kwargs).splits.items()}
    if no_val:
        splits.pop("val")
    else:
        splits["val"]["mask"] = np.zeros_like(splits["val"]["mask"])
        splits["test"]["targets"] = splits["test"]["targets"][:, :0]
        splits["test"]["mask"] = splits["test"]["mask"][:, :0]
    return Task(splits, hooks=(failing_hook,) if hook == "failing" else ())


def smoke(**data):
    config = get_config("smoke")
    config.train.progress_bar = False
    config.data.name = "test_evaluate:edge_task"
    config.data.update(data)
    return config


def test_with_no_validation_split_hooks_fail_before_training_and_val_is_marked_absent(
    tmp_path, monkeypatch
):
    steps = []
    monkeypatch.setattr(loop.Run, "epoch", lambda self, e, start=0: steps.append(e) or iter(()))
    with pytest.raises(EvalHookError, match=r"test_evaluate.failing_hook on the test split"):
        train_and_evaluate(smoke(no_val=True, hook="failing"), str(tmp_path))
    assert steps == [] and not os.path.exists(tmp_path / "results.json.tmp")
    steps.clear()
    monkeypatch.undo()
    config = smoke(no_val=True)  # without the hook, one step
    config.train.num_steps = 1
    results = train_and_evaluate(config, str(tmp_path))
    assert results["val"] == {
        "loss": None, "token_accuracy": None, "sequence_accuracy": None,
        "absent": "the val split has no examples",
    }  # fmt: skip


def test_splits_without_target_steps_finish_with_metrics_marked_absent(tmp_path, capsys):
    results = train_and_evaluate(smoke(), str(tmp_path))
    out = capsys.readouterr().out
    assert "Note: the val split has no target steps (its mask [32, 4] is all False)" in out
    assert "Test: no metrics, the test split has no target steps (its mask [40, 0]" in out
    with open(tmp_path / "results.json") as f:
        assert json.load(f) == results
    assert results["val"]["loss"] is None and results["test"]["token_accuracy"] is None
    assert results["best_step"] is None and not results["restored_best"]
