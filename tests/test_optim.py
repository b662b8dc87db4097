"""Tests for seqlstm/train/optim.py's clip_by_global_norm against optax's."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from seqlstm.train.optim import clip_by_global_norm, make_optimizer

GRADS = {"w": jnp.array([[3.0, -4.0], [0.5, 1.5]]), "b": jnp.array([2.0, 0.0, -1.0])}
NORM = float(np.sqrt(9 + 16 + 0.25 + 2.25 + 4 + 1))  # 5.70


@pytest.mark.parametrize("max_norm", [0.5, 5.0, NORM, 6.0, 100.0])
def test_clipping_equals_optax(max_norm):
    ours, theirs = clip_by_global_norm(max_norm), optax.clip_by_global_norm(max_norm)
    state = ours.init(GRADS)
    assert jax.tree.structure(state) == jax.tree.structure(theirs.init(GRADS))  # checkpoints
    got, _ = ours.update(GRADS, state)
    want, _ = theirs.update(GRADS, theirs.init(GRADS))
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=0)
    clipped_norm = float(optax.tree.norm(got))
    assert clipped_norm == pytest.approx(min(NORM, max_norm), rel=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_nonfinite_gradient_clips_as_optax_does(bad):
    grads = {"w": GRADS["w"].at[0, 0].set(bad), "b": GRADS["b"]}
    got, _ = clip_by_global_norm(1.0).update(grads, optax.EmptyState())
    want, _ = optax.clip_by_global_norm(1.0).update(grads, optax.EmptyState())
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_allclose(np.nan_to_num(a), np.nan_to_num(b), rtol=1e-6)


def test_the_factory_clips_before_adam():
    tx = make_optimizer({"name": "adam", "learning_rate": 0.1, "grad_clip_norm": 1.0})
    reference = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.1, eps=1e-7))
    got, _ = jax.jit(tx.update)(GRADS, tx.init(GRADS), GRADS)
    want, _ = reference.update(GRADS, reference.init(GRADS), GRADS)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
