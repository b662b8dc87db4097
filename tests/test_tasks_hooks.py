"""Tests for seqlstm/tasks/hooks.py: the evaluation hooks any task can use, by hand.

(`decoding_accuracy` runs a model: `tests/test_seq2seq_train.py` reads its `decoded` results, and
`seqlstm.decoding.evaluate_decoding`, which it calls, is tested in `tests/test_decoding.py`.)
"""

import numpy as np
import pytest

import seqlstm.task
from seqlstm.task import EvalContext
from seqlstm.tasks.hooks import bits_per_token, position_accuracy


def test_hooks_read_the_sums_by_hand():
    sums = {"position_correct": np.array([2.0, 1.0, 0.0]), "position_tokens": np.array([2, 4, 0])}
    ctx = EvalContext("val", {}, sums, {"loss": np.log(2.0) * 3}, 8)
    assert position_accuracy(ctx) == {"position_accuracy": [1.0, 0.25, 0.0]}
    assert bits_per_token(ctx) == {"bits_per_char": pytest.approx(3.0)}
    assert bits_per_token(EvalContext("val", {}, sums, {}, 8)) == {}  # no loss: nothing to convert


def test_the_old_names_in_seqlstm_task_are_the_hooks():
    assert seqlstm.task.position_accuracy is position_accuracy
    assert seqlstm.task.bits_per_token is bits_per_token
    with pytest.raises(AttributeError, match=r"has no attribute 'nope'"):
        seqlstm.task.nope  # noqa: B018
