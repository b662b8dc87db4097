"""Tests for seqlstm/attention.py: masking, normalisation, hand-computed scores, location-aware
attention against a loop reference and finite differences, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.test_util import check_grads

from seqlstm.attention import (
    KINDS,
    Attention,
    attend,
    initial_alignment,
    masked_softmax,
    project_keys,
)

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


def location_reference(params, query, keys, lengths):
    """Chorowski et al. (2015), eq. 8-9, written as loops over one row at a time."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    width, _ = p["conv_kernel"].shape
    batch, time, _ = query.shape
    source = keys.shape[1]
    weights = np.zeros((batch, time, source))
    for b in range(batch):
        n = int(lengths[b])
        prev = (
            np.array([1.0 / n if s < n else 0.0 for s in range(source)]) if n else np.zeros(source)
        )
        for t in range(time):
            e = np.zeros(source)
            for s in range(source):
                f = np.zeros(p["conv_kernel"].shape[1])
                for k in range(width):
                    j = s - width // 2 + k
                    if 0 <= j < source:
                        f += prev[j] * p["conv_kernel"][k]
                hidden = query[b, t] @ p["query_kernel"] + keys[b, s] @ p["key_kernel"]
                e[s] = p["v"] @ np.tanh(hidden + f @ p["location_kernel"])
            if n:
                w = np.exp(e[:n] - e[:n].max())
                weights[b, t, :n] = w / w.sum()
            prev = weights[b, t]
    return weights


def location_inputs():
    rng = np.random.default_rng(0)
    keys = rng.normal(size=(3, 5, 4)).astype(np.float32)
    query = rng.normal(size=(3, 4, 3)).astype(np.float32)
    return query, keys, np.array([5, 2, 0], np.int32)


def test_location_against_loop_reference():
    query, keys, lengths = location_inputs()
    att = Attention("location", 3, 4, attention_size=6, location_filters=2, location_width=3,
                    rngs=nnx.Rngs(1))  # fmt: skip
    context, weights = att(query, keys, lengths)
    expect = location_reference(att.params_dict(), query, keys, lengths)
    np.testing.assert_allclose(weights, expect, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(context, np.einsum("bts,bsk->btk", expect, keys), atol=1e-5)
    # Each step's scores read the previous step's weights: different from plain additive.
    additive = attend(att.params_dict(), query, project_keys(att.params_dict(), keys, "additive"),
                      keys, lengths, "additive")[1]  # fmt: skip
    assert not np.allclose(additive[0], weights[0], atol=1e-3)


def test_location_call_equals_steps_with_previous():
    query, keys, lengths = location_inputs()
    att = Attention("location", 3, 4, rngs=nnx.Rngs(2))
    _, weights = att(query, keys, lengths)
    projected = att.project_keys(keys)
    previous = initial_alignment(jnp.asarray(lengths), 5)
    np.testing.assert_allclose(previous[0], 0.2) and np.testing.assert_array_equal(previous[2], 0)
    for t in range(query.shape[1]):
        _, w = att.attend(query[:, t : t + 1], projected, keys, lengths, previous[:, None])
        np.testing.assert_allclose(w[:, 0], weights[:, t], rtol=1e-6, atol=1e-7)
        previous = w[:, 0]


def test_location_gradients_by_finite_differences():
    query, keys, lengths = location_inputs()
    att = Attention("location", 3, 4, location_filters=2, location_width=3, rngs=nnx.Rngs(3))
    with jax.enable_x64(True):
        params = {k: jnp.asarray(v, jnp.float64) for k, v in att.params_dict().items()}
        q, k = jnp.asarray(query, jnp.float64), jnp.asarray(keys, jnp.float64)

        n = jnp.asarray(lengths)

        def loss(params, q, k):
            previous = initial_alignment(n, 5).astype(jnp.float64)
            total = 0.0
            for t in range(q.shape[1]):
                projected = project_keys(params, k, "location")
                step = q[:, t : t + 1]
                context, w = attend(params, step, projected, k, n, "location", previous[:, None])
                total = (
                    total + jnp.sum(jnp.sin(context)) + jnp.sum(w * jnp.arange(5.0)[None, None, :])
                )
                previous = w[:, 0]
            return total

        check_grads(jax.jit(loss), (params, q, k), order=1, modes=["rev"], eps=1e-5)


def test_location_bad_input():
    with pytest.raises(ValueError, match="location_width must be odd"):
        Attention("location", 2, 2, location_width=4, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="location_filters"):
        Attention("location", 2, 2, location_filters=0, rngs=nnx.Rngs(0))
    att = Attention("location", 2, 2, rngs=nnx.Rngs(0))
    keys = jnp.ones((1, 3, 2))
    with pytest.raises(ValueError, match="pass previous"):
        att.attend(jnp.ones((1, 1, 2)), att.project_keys(keys), keys, jnp.array([3]))
