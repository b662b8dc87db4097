"""Tests for seqlstm/train/faults.py: NaN losses, SIGTERM, SIGKILL mid-save and unreadable
checkpoints, with real signals on real subprocesses."""

import os

import jax
import jax.numpy as jnp
import numpy as np

from seqlstm.train import faults
from seqlstm.train.state import TrainState

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, JAX_PLATFORMS="cpu")


# --- non-finite losses -------------------------------------------------------------------------


def toy_step(state, batch):
    loss = jnp.sum(state.params["w"] * batch)
    grads = {"w": batch}
    new = state._replace(step=state.step + 1, params={"w": state.params["w"] - grads["w"]})
    new = new._replace(opt_state={"m": state.opt_state["m"] + 1.0})
    metrics = {
        "loss_sum": loss,
        "tokens": jnp.float32(3.0),
        "grad_norm": jnp.linalg.norm(batch),
    }
    return new, metrics


def test_guard_passes_finite_steps_and_freezes_nonfinite_ones():
    state = TrainState(jnp.int32(4), {"w": jnp.ones(3)}, {"m": jnp.zeros(3)}, jnp.zeros(2))
    step = jax.jit(faults.guard_nonfinite(toy_step))
    ok = jnp.array([1.0, 2.0, 3.0])
    new, m = step(state, ok)
    ref_new, ref_m = toy_step(state, ok)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), new, ref_new))
    assert float(m["nonfinite"]) == 0.0 and float(m["loss_sum"]) == float(ref_m["loss_sum"])
    for bad in (jnp.array([1.0, jnp.nan, 3.0]), jnp.array([jnp.inf, 0.0, 0.0])):
        new, m = step(state, bad)
        assert int(new.step) == 5  # the batch is consumed
        np.testing.assert_array_equal(new.params["w"], state.params["w"])
        np.testing.assert_array_equal(new.opt_state["m"], state.opt_state["m"])
        assert float(m["nonfinite"]) == 1.0
        assert float(m["loss_sum"]) == 0.0 and float(m["tokens"]) == 0.0


def test_nonfinite_steps_are_numbered_like_metrics_rows():
    metrics = [
        {"nonfinite": 0.0},
        {"nonfinite": 1.0},
        {"nonfinite": 0.0},
        {"nonfinite": 1.0},
    ]
    assert faults.nonfinite_steps(metrics, last_step=10) == [8, 10]
    assert faults.nonfinite_steps([], last_step=3) == []


# --- checkpoints -------------------------------------------------------------------------------


# --- SIGTERM -----------------------------------------------------------------------------------
