"""Tests for seqlstm/train/steps.py and the guard around it (seqlstm/train/nonfinite.py): the batch
contract checked when a step is traced, and a non-finite update refused like a non-finite loss."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from tiny_task import TinyModel, make_task

from seqlstm.train import create_train_state, make_train_step, masked_sums, nonfinite, split_model
from seqlstm.train.state import TrainState
from seqlstm.train.steps import make_eval_step


def tiny_step_setup(tx=None, **model):
    model_def, params = split_model(TinyModel(rngs=nnx.Rngs(0), **model))
    tx = tx or optax.adam(1e-3)
    return model_def, tx, create_train_state(params, tx, 0, model_def.carry)


def batch(t=1, **task):
    return {k: v[:4] for k, v in make_task(t=t, **task)["train"].items()}


@pytest.mark.parametrize(
    "model, t, match",
    [
        (dict(out_t=8), 1, r"the model returned logits of shape \(4, 8, 2\) for targets of shape"),
        (dict(out_t=1), 8, r"logits of shape \(4, 1, 2\) for targets of shape \(4, 8\)"),
        (dict(int_logits=True), 1, r"logits of dtype int32; logits must be floating point"),
    ],
    ids=["logits_T8_for_targets_T1", "logits_T1_for_targets_T8", "integer_logits"],
)
def test_steps_check_the_logits_when_traced(model, t, match):
    model_def, tx, state = tiny_step_setup(**model)
    b = batch(t)
    with pytest.raises(ValueError, match=match):
        jax.eval_shape(make_train_step(model_def, tx), state, b)
    with pytest.raises(ValueError, match=match):
        jax.eval_shape(make_eval_step(model_def), state.params, b)


def test_float64_logits_are_scored_in_float64_with_x64():
    logits = np.array([[[0.0, 1e-9]]])  # a difference float32 cannot hold beside 1.0
    with jax.enable_x64(True):
        s = masked_sums(jnp.asarray(logits + 1.0), jnp.array([[1]]), jnp.array([[True]]))
        assert s["loss_sum"].dtype == jnp.float64
        np.testing.assert_allclose(s["loss_sum"], np.log1p(np.exp(-1e-9)), rtol=1e-12)


def toy_step(state, batch):
    """Loss and gradient finite; the update divides by `batch` (0: Inf parameters) and the
    optimizer state by `batch - 1` (1: Inf state)."""
    new = state._replace(
        step=state.step + 1,
        params={"w": state.params["w"] / batch},
        opt_state={"m": state.opt_state["m"] / (batch - 1.0), "count": state.opt_state["count"]},
    )
    return new, {"loss_sum": jnp.sum(batch), "tokens": jnp.float32(3.0), "grad_norm": 1.0}


def test_the_guard_refuses_a_nonfinite_update_of_finite_gradients():
    # Today `optim.b1=1.0` gave NaN parameters from finite gradients, saved as "the last good
    # checkpoint": the guard read the loss and gradient only.
    opt = {"m": jnp.ones(3), "count": jnp.int32(0)}
    state = TrainState(jnp.int32(4), {"w": jnp.ones(3)}, opt, jnp.zeros(2))
    step = jax.jit(nonfinite.guard_nonfinite(toy_step))
    new, m = step(state, jnp.full(3, 2.0))
    np.testing.assert_array_equal(new.params["w"], [0.5, 0.5, 0.5])
    assert (float(m["nonfinite"]), float(m["nonfinite_update"])) == (0.0, 0.0)
    for bad in (jnp.array([2.0, 0.0, 2.0]), jnp.array([2.0, 1.0, 2.0])):  # params, opt state
        new, m = step(state, bad)
        assert int(new.step) == 5
        np.testing.assert_array_equal(new.params["w"], state.params["w"])
        np.testing.assert_array_equal(new.opt_state["m"], state.opt_state["m"])
        assert (float(m["nonfinite"]), float(m["nonfinite_update"])) == (1.0, 1.0)
        assert float(m["loss_sum"]) == 0.0
    host = [{"nonfinite": 0.0}, {"nonfinite": 1.0, "nonfinite_update": 1.0}]
    assert nonfinite.nonfinite_cause(host, last_step=7, step=7) == "update"
    assert nonfinite.nonfinite_cause([{"nonfinite": 1.0}], last_step=3, step=3) == "loss"
