"""Tests for seqlstm/train/run.py: a run is checked before anything is written or compiled.

A model and data that break the batch contract, data a loss cannot be computed on, optimizer
settings that make every parameter NaN, and a dtype JAX would not compute in each end in one
ValueError naming the field (the launcher prints it as `error: ...`), where before each trained
to a wrong number with exit 0 (issue 23). Each case costs milliseconds: nothing compiles.
"""

import jax
import pytest
from tiny_task import tiny_config

from seqlstm.train import build_run, train_and_evaluate
from seqlstm.train.run import check_task_data


@pytest.mark.parametrize(
    "sections, match",
    [
        # [B, 8, 2] logits for targets [B, 1] broadcast: trained, "token accuracy 3.25".
        (
            dict(model=dict(out_t=8)),
            r"model 'tiny_task:TinyModel' returned logits of shape \(4, 8, 2\) for targets of "
            r"shape \(4, 1\); the batch contract wants \[4, 1, classes\]",
        ),
        # [B, 1, 2] for targets [B, 8]: believable numbers.
        (
            dict(data=dict(t=8), model=dict(out_t=1)),
            r"logits of shape \(4, 1, 2\) for targets of shape \(4, 8\); .* \[4, 8, classes\]",
        ),
        # Integer logits trained with zero gradient.
        (
            dict(model=dict(int_logits=True)),
            r"returned logits of dtype int32; logits must be floating point",
        ),
        # A model returning (logits, something): a 35-line traceback.
        (dict(model=dict(as_tuple=True)), r"returned tuple, not an array of logits"),
        # -1 was scored as class C-1, -2 as class 0.
        (
            dict(data=dict(target_shift=-1)),
            r"split 'train': field 'targets' holds values in \[-1, 0\] where mask is True "
            r"\(\d+ outside the range\); the model's logits have 2 classes, so targets must lie "
            r"in \[0, 2\)",
        ),
        # Targets >= C: "Non-finite loss ... lower learning_rate"; with on_nan=skip every step
        # was skipped, exit 0, and results.json held a bare NaN.
        (dict(data=dict(target_shift=1)), r"field 'targets' holds values in \[1, 2\]"),
        (
            dict(data=dict(target_shift=1), train=dict(on_nan="skip")),
            r"field 'targets' holds values in \[1, 2\]",
        ),
        # A NaN input: a data error, not "lower the learning rate" (in validation it drove
        # early stopping: "parameters of the best validation loss" of NaN losses).
        (
            dict(data=dict(nan_in="val")),
            r"split 'val': field 'inputs' \(4, 1, 3\) holds 1 NaN or Inf value\(s\) \(the first "
            r"in row 0\).*a data error",
        ),
        (dict(data=dict(nan_in="train")), r"split 'train': field 'inputs' .* 1 NaN or Inf"),
        # An all-False training mask trained nothing (grad norm 0) and ended in "Done".
        (
            dict(data=dict(all_false_train=True)),
            r"split 'train': field 'mask' \(8, 1\) is False everywhere.*nothing would train",
        ),
        # b1 = 1 divided by zero in Adam's bias correction: NaN parameters, checkpointed.
        (dict(optim=dict(b1=1.0)), r"optim.b1 must be in \[0, 1\), got 1.0"),
        (dict(optim=dict(b2=-0.1)), r"optim.b2 must be in \[0, 1\), got -0.1"),
        (dict(optim=dict(eps=0.0)), r"optim.eps must be a positive number, got 0.0"),
        (
            dict(optim=dict(name="rmsprop", eps=-1e-7)),
            r"optim.eps must be a positive number, got -1e-07",
        ),
        # float64 ran in float32 (6 JAX warnings) while config.json said float64.
        (
            dict(model=dict(dtype="float64")),
            r"config.model.dtype='float64' needs JAX's 64-bit mode, which is off: JAX would "
            r"silently compute in float32 instead. Use float32 \(or bfloat16\), or run with "
            r"JAX_ENABLE_X64=1",
        ),
    ],
    ids=[
        "logits_T8_for_targets_T1",
        "logits_T1_for_targets_T8",
        "integer_logits",
        "tuple_model",
        "negative_targets",
        "targets_ge_C",
        "targets_ge_C_on_nan_skip",
        "nan_val_input",
        "nan_train_input",
        "all_false_train_mask",
        "adam_b1_1",
        "adam_b2_negative",
        "adam_eps_0",
        "rmsprop_eps_negative",
        "float64_without_x64",
    ],
)
def test_a_run_that_would_train_to_a_wrong_number_is_refused_in_one_line(tmp_path, sections, match):
    workdir = tmp_path / "run"
    with pytest.raises(ValueError, match=match) as info:
        train_and_evaluate(tiny_config(**sections), str(workdir))
    assert "\n" not in str(info.value)
    assert not workdir.exists()  # checked before the workdir is touched


def test_the_contract_holds_where_it_should_not_refuse(tmp_path):
    # Targets outside [0, C) are not read where the mask is False (padding): C = 2 is found.
    config = tiny_config(data=dict(t=2))
    run = build_run(config)
    train = run.task["train"]
    train["targets"][:, 1], train["mask"][:, 1] = -1, False
    assert check_task_data(config, run.task, run.model_def, run.params) == 2
    train["mask"][0, 1] = True
    with pytest.raises(ValueError, match=r"holds values in \[-1, 1\] where mask is True \(1 "):
        check_task_data(config, run.task, run.model_def, run.params)
    # bfloat16 and float32 models pass; float64 does in JAX's 64-bit mode, computing in it.
    for dtype in ("bfloat16", "float32"):
        build_run(tiny_config(model=dict(dtype=dtype)))
    with jax.enable_x64(True):
        run = build_run(tiny_config(model=dict(dtype="float64")))
        assert {p.dtype for p in jax.tree.leaves(run.params)} == {jax.numpy.dtype("float64")}
