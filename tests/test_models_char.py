"""Character models: shapes, the slice each branch reads, causality, sampling, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from seqlstm.models import get_model, param_count, units_for_budget
from seqlstm.models.char import generate
from seqlstm.summary import count_params

V, N, M = 11, 12, 4


def two_branch(**kwargs):
    kw = dict(vocab_size=V, long_context=N, short_context=M, long_units=5, short_units=3)
    kw.update(embed_dim=4, dense_units=7)
    return get_model("two_branch", rngs=nnx.Rngs(0), **{**kw, **kwargs})


def ids(batch=3, width=N, seed=0):
    return jnp.asarray(np.random.default_rng(seed).integers(0, V, (batch, width)), jnp.int32)


def test_two_branch_shapes_and_parameter_count():
    model = two_branch()
    x = ids()
    assert model(x).shape == (3, 1, V)
    np.testing.assert_allclose(model.next_logits(x), model(x)[:, 0, :])
    # Keras: Embedding V*E; Bidirectional(LSTM(u)) on E inputs: 2 * 4u(E + u + 1); two Dense.
    lstm = lambda u: 2 * 4 * u * (4 + u + 1)  # noqa: E731
    expected = 2 * V * 4 + lstm(5) + lstm(3) + (10 + 6) * 7 + 7 + 7 * V + V
    assert count_params(model) == expected == param_count("two_branch", **_kw(model))


def _kw(model):
    return dict(
        vocab_size=V,
        long_context=N,
        short_context=M,
        long_units=5,
        short_units=3,
        embed_dim=4,
        dense_units=7,
        branches=model.branches,
    )


def test_branches_read_exactly_their_slices():
    model = two_branch()
    x = ids()
    outside = x.at[:, N - M - 1].set((x[:, N - M - 1] + 1) % V)  # just before the short slice
    inside = x.at[:, N - M].set((x[:, N - M] + 1) % V)  # first character of the short slice
    np.testing.assert_array_equal(model.short_features(outside), model.short_features(x))
    assert not np.allclose(model.long_features(outside), model.long_features(x))
    assert not np.allclose(model.short_features(inside), model.short_features(x))
    assert not np.allclose(model.long_features(inside), model.long_features(x))
    # The short branch is its own LSTM over the last M embedded characters.
    direct = model.short_branch.lstm(model.short_branch.embed(x[:, N - M :]))
    np.testing.assert_array_equal(model.short_features(x), direct)
    # Overriding one branch's input changes only that branch's contribution.
    other = ids(seed=1)
    mixed = model(x, short_x=other)
    feats = jnp.concatenate([model.long_features(x), model.short_features(other)], axis=-1)
    np.testing.assert_allclose(mixed[:, 0, :], model.head(feats), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(model(x, long_x=x, short_x=x), model(x))


@pytest.mark.parametrize("branches", ["long", "short"])
def test_single_branch_models_have_only_that_branch(branches):
    model = two_branch(branches=branches)
    assert (model.long_branch is None) == (branches == "short")
    assert (model.short_branch is None) == (branches == "long")
    x = ids()
    assert model(x).shape == (3, 1, V)
    changed = x.at[:, 0].set((x[:, 0] + 1) % V)  # outside the short slice
    same = np.allclose(model(changed), model(x))
    assert same == (branches == "short")


def test_units_for_budget_matches_parameter_counts():
    kw = _kw(two_branch())
    full = param_count("two_branch", **kw)

    def count(u):
        return param_count("two_branch", **{**kw, "branches": "long", "long_units": u})

    u = units_for_budget(count, full)
    assert abs(count(u) - full) <= min(abs(count(u - 1) - full), abs(count(u + 1) - full))
    assert 0.9 * full < count(u) < 1.1 * full


def test_char_lm_is_causal_and_stacks_layers():
    model = get_model("char_lm", vocab_size=V, embed_dim=4, num_layers=3, units=6, rngs=nnx.Rngs(0))
    assert len(model.lstm.layers) == 3
    x = ids(width=10)
    logits = model(x)
    assert logits.shape == (3, 10, V)
    changed = model(x.at[:, 6].set((x[:, 6] + 1) % V))
    np.testing.assert_array_equal(changed[:, :6], logits[:, :6])  # the past ignores the future
    assert not np.allclose(changed[:, 6:], logits[:, 6:])
    np.testing.assert_array_equal(model.next_logits(x), logits[:, -1])


def test_generate_is_seeded_and_greedy_takes_the_argmax():
    model = two_branch()
    a = generate(model, np.array([1, 2, 3]), context=N, num_chars=6, temperature=1.0, seed=4)
    b = generate(model, np.array([1, 2, 3]), context=N, num_chars=6, temperature=1.0, seed=4)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.int32 and a.shape == (6,) and ((0 <= a) & (a < V)).all()
    greedy = generate(model, np.array([1, 2, 3]), context=N, num_chars=2, temperature=0.0, pad_id=5)
    window = np.array([[5] * (N - 3) + [1, 2, 3]], np.int32)
    assert greedy[0] == int(jnp.argmax(model.next_logits(jnp.asarray(window))[0]))
    window = np.concatenate([window[:, 1:], greedy[None, :1]], axis=1)
    assert greedy[1] == int(jnp.argmax(model.next_logits(jnp.asarray(window))[0]))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(long_context=0), r"model.long_context must be a positive int, got 0"),
        (dict(short_context=0), r"model.short_context must be a positive int, got 0"),
        (dict(short_context=N + 1), r"short_context \(13\) must be at most model.long_context"),
        (dict(branches="middle"), r"model.branches must be one of"),
        (dict(long_units=-1), r"model.long_units must be a positive int"),
        (dict(dense_units=-1), r"model.dense_units must be an int >= 0"),
        (dict(hidden=3), r"got unknown arguments \['hidden'\]"),
    ],
)
def test_bad_model_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        two_branch(**kwargs)


def test_bad_inputs_and_sampling_arguments():
    model = two_branch()
    with pytest.raises(ValueError, match=r"x has 10 characters per row .*expected long_context=12"):
        model(ids(width=10))
    with pytest.raises(ValueError, match=r"x must be integer character ids"):
        model(jnp.zeros((2, N)))
    with pytest.raises(ValueError, match="unknown model 'char_rnn'"):
        get_model("char_rnn", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        generate(model, np.array([1]), context=N, num_chars=2, temperature=-1.0)
    with pytest.raises(ValueError, match="context must be a positive int, got 0"):
        generate(model, np.array([1]), context=0, num_chars=2)
    with pytest.raises(ValueError, match="num_chars must be a positive int"):
        generate(model, np.array([1]), context=N, num_chars=0)


def test_two_branch_gradients_reach_both_branches():
    model = two_branch()
    x, y = ids(), jnp.array([1, 2, 3])
    graphdef, params = nnx.split(model, nnx.Param)

    def loss(p):
        logits = nnx.merge(graphdef, p)(x)[:, 0, :]
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))

    grads = jax.grad(loss)(params)
    for branch in ("long_branch", "short_branch"):
        kernel = grads[branch]["lstm"]["backward_layer"]["kernel"][...]
        assert np.abs(np.asarray(kernel)).sum() > 0, branch
