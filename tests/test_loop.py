"""Tests for seqlstm/train/loop.py: a NaN validation loss is never the best one, and
results.json and metrics.jsonl never hold a bare NaN (issue 23)."""

import json
import math

import numpy as np
import optax
import pytest
from tiny_task import tiny_config

from seqlstm.train import loop, nonfinite, run, train_and_evaluate
from seqlstm.train.metrics import json_safe
from seqlstm.train.workdir import write_json


def strict_json(path, lines=False):
    """The JSON in `path` (with `lines`, one value a line); a bare NaN or Infinity, which is not
    JSON, fails the test."""

    def refuse(constant):
        raise AssertionError(f"{path} holds a bare {constant}, which is not JSON")

    with open(path) as f:
        text = f.read()
    if lines:
        return [json.loads(line, parse_constant=refuse) for line in text.splitlines()]
    return json.loads(text, parse_constant=refuse)


def test_nan_validation_losses_drive_nothing_and_are_written_as_null(tmp_path, monkeypatch, capsys):
    # A model whose loss is NaN on every evaluation (as a NaN in one validation input made it;
    # such data is now refused when the run is built, see tests/test_run.py).
    evaluate = loop.evaluate

    def nan_loss(*args, **kwargs):
        return dict(evaluate(*args, **kwargs), loss=math.nan)

    monkeypatch.setattr(loop, "evaluate", nan_loss)
    config = tiny_config(train=dict(patience=5))  # 2 epochs of 2 steps: evaluated at 2 and 4
    results = train_and_evaluate(config, str(tmp_path))
    out = capsys.readouterr().out
    # Today: "parameters of the best validation loss, step 2", its (initial) parameters restored.
    assert results["best_step"] is None and results["restored_best"] is False
    assert "warning: validation loss at step 2 is nan, not counted as an improvement" in out
    assert "(epoch limit; final parameters: no validation loss was finite)" in out
    assert "Test: loss null, token accuracy" in out
    saved = strict_json(tmp_path / "results.json")
    assert saved == results
    for split in ("val", "test"):
        assert saved[split]["loss"] is None
        assert saved[split]["loss_null_reason"] == "non-finite value: nan"
        assert 0.0 <= saved[split]["token_accuracy"] <= 1.0
    rows = strict_json(tmp_path / "metrics.jsonl", lines=True)
    assert [(r["step"], r["eval_loss"], r["eval_best_loss"]) for r in rows] == [
        (2, None, None),
        (4, None, None),
    ]
    assert all(np.isfinite(r["train_loss"]) for r in rows)


def test_json_safe_nulls_nonfinite_numbers_with_the_reason_beside_them(tmp_path):
    value = {"a": np.float32("nan"), "b": [1.0, math.inf], "c": {"d": -math.inf}, "e": 2, "f": "x"}
    assert json_safe(value) == {
        "a": None,
        "a_null_reason": "non-finite value: nan",
        "b": [1.0, None],
        "b_null_reason": "non-finite values (NaN or Inf) in it",
        "c": {"d": None, "d_null_reason": "non-finite value: -inf"},
        "e": 2,
        "f": "x",
    }
    # A NaN that got past json_safe is refused, never written as a bare NaN; nothing is left.
    with pytest.raises(ValueError, match=r"cannot write .*x.json as JSON: Out of range float"):
        write_json(str(tmp_path / "x.json"), [math.nan])
    assert list(tmp_path.iterdir()) == []


def test_nan_parameters_from_finite_gradients_stop_the_run_and_are_never_checkpointed(
    tmp_path, monkeypatch
):
    # Adam with b1 = 1 (the config check now refuses it; built here by hand) divides 0 by 0 in
    # its first update. Today: step 1's NaN parameters were saved as "the last good checkpoint",
    # and step 2's NaN loss was blamed on the learning rate.
    monkeypatch.setattr(run, "make_optimizer", lambda optim: optax.adam(1e-3, b1=1.0))
    config = tiny_config(train=dict(checkpoint_every_steps=1))
    with pytest.raises(nonfinite.NonFiniteLossError) as info:
        train_and_evaluate(config, str(tmp_path))
    assert (info.value.step, info.value.checkpoint) == (1, None)  # today: (2, 1)
    assert info.value.cause == "update"
    message = str(info.value)
    assert message.startswith(
        "Non-finite parameters or optimizer state after the update at step 1: stopped without "
        "checkpointing it; no checkpoint was saved"
    )
    assert "check --config.optim (eps, b1, b2, learning_rate)" in message and "\n" not in message
    assert not (tmp_path / "checkpoints").exists() or not list((tmp_path / "checkpoints").iterdir())
