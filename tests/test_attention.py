"""Tests for seqlstm/attention.py: masking, normalisation, hand-computed scores, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from seqlstm.attention import KINDS, Attention, attend, masked_softmax, project_keys

KEYS = np.array([[[1.0, 0.0], [0.0, 2.0], [5.0, 5.0]]], np.float32)  # [1, 3, 2]; step 2 padded
QUERY = np.array([[[1.0, 1.0]]], np.float32)  # [1, 1, 2]
LENGTHS = np.array([2], np.int32)


def expected(scores_valid, values_valid):
    w = np.exp(scores_valid - scores_valid.max())
    w /= w.sum()
    return np.concatenate([w, [0.0]]), w @ values_valid


def test_dot_by_hand():
    # q . k = [1, 2] on the two valid steps; the padded step (score 10) must not count.
    context, weights = attend({}, QUERY, KEYS, KEYS, LENGTHS, "dot")
    w, c = expected(np.array([1.0, 2.0]), KEYS[0, :2])
    np.testing.assert_allclose(weights[0, 0], w, rtol=1e-6)
    np.testing.assert_allclose(context[0, 0], c, rtol=1e-6)
    # e / (e + e^2) and e^2 / (e + e^2), written out.
    np.testing.assert_allclose(weights[0, 0, :2], [1 / (1 + np.e), np.e / (1 + np.e)], rtol=1e-6)


def test_general_by_hand():
    kernel = np.array([[2.0, 0.0], [1.0, -1.0]], np.float32)  # score = q . (W k)
    params = {"kernel": kernel}
    context, weights = attend(
        params, QUERY, project_keys(params, KEYS, "general"), KEYS, LENGTHS, "general"
    )
    # W k_0 = [2, 1] -> 3;  W k_1 = [0, -2] -> -2.
    w, c = expected(np.array([3.0, -2.0]), KEYS[0, :2])
    np.testing.assert_allclose(weights[0, 0], w, rtol=1e-6)
    np.testing.assert_allclose(context[0, 0], c, rtol=1e-6)


def test_additive_by_hand():
    params = {
        "query_kernel": np.array([[1.0], [0.0]], np.float32),  # W_q q = q_0 = 1
        "key_kernel": np.array([[0.5], [-1.0]], np.float32),  # W_k k_s = 0.5 k0 - k1
        "v": np.array([2.0], np.float32),
    }
    projected = project_keys(params, KEYS, "additive")
    context, weights = attend(params, QUERY, projected, KEYS, LENGTHS, "additive")
    # k_0: 2 tanh(1 + 0.5) ; k_1: 2 tanh(1 - 2).
    w, c = expected(np.array([2 * np.tanh(1.5), 2 * np.tanh(-1.0)]), KEYS[0, :2])
    np.testing.assert_allclose(weights[0, 0], w, rtol=1e-6)
    np.testing.assert_allclose(context[0, 0], c, rtol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_masked_positions_get_zero_weight_and_rows_sum_to_one(kind):
    b, t, s, h = 4, 3, 6, 5
    keys = jax.random.normal(jax.random.PRNGKey(0), (b, s, h))
    query = jax.random.normal(jax.random.PRNGKey(1), (b, t, h))
    lengths = jnp.array([6, 3, 1, 0], jnp.int32)
    att = Attention(kind, h, h, rngs=nnx.Rngs(0))
    # Garbage at padded positions must change nothing.
    valid = (jnp.arange(s)[None, :] < lengths[:, None])[:, :, None]
    noisy = jnp.where(valid, keys, 1e3)
    context, weights = att(query, keys, lengths)
    context2, weights2 = att(query, noisy, lengths)
    w = np.asarray(weights)
    for row, n in enumerate(np.asarray(lengths)):
        assert np.all(w[row, :, n:] == 0.0)
        if n:
            np.testing.assert_allclose(w[row].sum(-1), 1.0, rtol=1e-6)
    assert np.all(np.asarray(context[3]) == 0.0)  # empty source: zero context, no NaN
    np.testing.assert_allclose(weights2, weights, rtol=1e-6)
    np.testing.assert_allclose(context2, context, rtol=1e-5, atol=1e-6)


def test_empty_source_has_finite_gradients():
    att = Attention("additive", 3, 3, rngs=nnx.Rngs(0))
    keys = jnp.ones((2, 4, 3))
    query = jnp.ones((2, 1, 3))
    lengths = jnp.array([0, 2], jnp.int32)

    def loss(q):
        return jnp.sum(att(q, keys, lengths)[0] ** 2)

    g = jax.grad(loss)(query)
    assert np.all(np.isfinite(np.asarray(g)))
    assert np.all(np.asarray(g[0]) == 0.0)


def test_masked_softmax_all_masked_is_zero():
    w = masked_softmax(jnp.zeros((1, 2, 3)), jnp.array([0], jnp.int32))
    assert np.all(np.asarray(w) == 0.0)


def test_bad_input():
    with pytest.raises(ValueError, match="attention kind"):
        Attention("cosine", 2, 2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="query_size == key_size"):
        Attention("dot", 2, 4, rngs=nnx.Rngs(0))
    att = Attention("general", 2, 4, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="keys must be"):
        att(jnp.ones((1, 1, 2)), jnp.ones((1, 3, 2)), jnp.array([3]))
    with pytest.raises(ValueError, match="query must be"):
        att(jnp.ones((1, 2)), jnp.ones((1, 3, 4)), jnp.array([3]))
    with pytest.raises(ValueError, match="lengths must have shape"):
        att(jnp.ones((1, 1, 2)), jnp.ones((1, 3, 4)), jnp.array([3, 3]))
