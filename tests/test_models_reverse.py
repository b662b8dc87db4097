"""Tests for seqlstm/models/reverse.py: the five ways to connect two LSTMs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from seqlstm import LSTM, count_params
from seqlstm.models import VARIANTS, get_model
from seqlstm.train import split_model

B, T, V, H = 3, 5, 10, 16


def one_hot_batch(key=0, batch=B, length=T):
    ids = jax.random.randint(jax.random.PRNGKey(key), (batch, length), 0, V)
    return jax.nn.one_hot(ids, V)


def build(name, **kwargs):
    return get_model(name, length=T, rngs=nnx.Rngs(params=0, dropout=1), **kwargs)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_shapes_and_keras_parameter_counts(name):
    model = build(name)
    assert jax.eval_shape(model, one_hot_batch()).shape == (B, T, V)
    lstm1 = 4 * H * (V + H + 1)  # Keras LSTM(16) on 10 features: 1,728
    lstm2 = 4 * H * (H + H + 1)  # 2,112
    dense = H * V + V  # 170
    expected = lstm1 + dense if name == "last_repeat" else lstm1 + lstm2 + dense
    assert count_params(model) == expected


def forward(model):
    """The model as a jitted function of `(x, mask)` (eager NNX calls compile op by op)."""
    model_def, params = split_model(model)
    return jax.jit(lambda x, mask=None: model_def.apply(params, x, mask=mask))


def dependence(model, position):
    """Which input steps the output at `position` depends on (nonzero Jacobian)."""
    model_def, params = split_model(model)
    x = one_hot_batch(batch=1)
    jac = jax.jit(jax.jacobian(lambda x: model_def.apply(params, x)[0, position]))(x)
    return np.abs(np.asarray(jac)).sum(axis=(0, 1, 3)) > 0  # jac: [V, 1, T, V]


@pytest.mark.parametrize("name", ["last_repeat", "stacked_last_repeat"])
def test_repeat_variants_give_every_step_the_same_prediction(name):
    logits = forward(build(name))(one_hot_batch())
    np.testing.assert_allclose(logits, jnp.broadcast_to(logits[:, :1], logits.shape), rtol=1e-6)


def test_sequence_connection_is_causal_and_state_connection_is_not():
    # stacked_seq: output at step 0 sees only input step 0, so it cannot emit the last token.
    assert dependence(build("stacked_seq"), 0).tolist() == [True] + [False] * (T - 1)
    # Passing LSTM 1's final state gives LSTM 2 the whole sequence from step 0 on.
    assert dependence(build("state_seq"), 0).all()
    assert dependence(build("state_last_repeat"), 0).all()


def test_state_last_repeat_is_encoder_state_into_decoder():
    model = build("state_last_repeat")
    enc = LSTM(V, H, return_state=True, rngs=nnx.Rngs(0))
    nnx.update(enc, nnx.state(model.encoder))

    @jax.jit  # one compilation instead of op-by-op eager calls
    def both(x):
        last, state = enc(x)
        dec_in = jnp.repeat(last[:, None, :], T, axis=1)
        return model(x), model.dense(model.decoder(dec_in, initial_state=state))

    np.testing.assert_allclose(*both(one_hot_batch()), rtol=1e-6, atol=1e-6)


def test_state_seq_decoder_reads_encoder_sequence_from_its_state():
    model = build("state_seq")

    @jax.jit
    def both(x):
        seq, state = model.encoder(x)
        return model(x), model.dense(model.decoder(seq, initial_state=state))

    np.testing.assert_allclose(*both(one_hot_batch()), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_mask_drops_padding(name):
    """A right-padded row gives the same valid-step-dependent encoding whatever the padding."""
    f = forward(build(name))
    x = one_hot_batch()
    mask = jnp.arange(T)[None, :] < jnp.array([T, 3, 1])[:, None]
    other = jnp.where(mask[:, :, None], x, one_hot_batch(key=7))
    a, b = f(x, mask), f(other, mask)
    valid = np.asarray(mask)
    if name in ("stacked_seq", "state_seq"):
        np.testing.assert_allclose(np.asarray(a)[valid], np.asarray(b)[valid], atol=1e-6)
    else:  # the decoder reads only the encoding of the valid steps
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_dropout_follows_the_step_key_in_training_only():
    model = build("state_seq", dropout=0.5)
    model_def, params = split_model(model)
    x = one_hot_batch()
    k1, k2 = jax.random.PRNGKey(1), jax.random.PRNGKey(2)
    train = jax.jit(lambda r: model_def.apply(params, x, train=True, rng=r))
    a = train(k1)
    np.testing.assert_array_equal(a, train(k1))
    assert not np.allclose(a, train(k2))
    evaluation = jax.jit(lambda: model_def.apply(params, x, train=False))()
    np.testing.assert_allclose(evaluation, forward(build("state_seq"))(x), rtol=1e-6)
    # Reseeding under jit leaves no tracer in the static RNG state.
    leaves = jax.tree.leaves(model_def.rest)
    assert leaves and not any(isinstance(v, jax.core.Tracer) for v in leaves)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="unknown model 'seq2seq'"):
        get_model("seq2seq", length=T, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"unknown arguments \['hidden'\]"):
        get_model("state_seq", length=T, hidden=4, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="length must be a positive int, got 0"):
        get_model("last_repeat", length=0, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="hidden_size must be a positive int"):
        get_model("state_seq", length=T, hidden_size=-1, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="dropout must be in"):
        get_model("state_seq", length=T, dropout=1.0, rngs=nnx.Rngs(0))
    model = build("state_seq")
    with pytest.raises(ValueError, match="built with length=5"):
        model(one_hot_batch(length=6))
    with pytest.raises(ValueError, match="expected in_features=10"):
        model(jnp.zeros((B, T, 3)))
    with pytest.raises(ValueError, match="mask must have shape"):
        model(one_hot_batch(), mask=jnp.ones((B, T + 1), bool))


def test_dropout_is_reseeded_for_a_model_built_with_a_single_seed():
    """`nnx.Rngs(0)` has no "dropout" stream: dropout forks the default one, reseeded too."""
    model = get_model("stacked_seq", length=T, dropout=0.5, rngs=nnx.Rngs(0))
    model_def, params = split_model(model)
    assert model_def.streams == ("default",)
    x = one_hot_batch()
    train = jax.jit(lambda r: model_def.apply(params, x, train=True, rng=r))
    a, b = train(jax.random.PRNGKey(1)), train(jax.random.PRNGKey(2))
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(a, train(jax.random.PRNGKey(1)))


def test_bfloat16_models_track_float32():
    x = jax.nn.one_hot(jnp.arange(8).reshape(2, 4) % 10, 10)
    for name in ("stacked_seq", "state_seq"):
        m32 = get_model(name, length=4, rngs=nnx.Rngs(0))
        m16 = get_model(name, length=4, dtype="bfloat16", rngs=nnx.Rngs(0))
        y32, y16 = m32(x), m16(x)
        assert y16.dtype == jnp.bfloat16
        np.testing.assert_allclose(y16.astype(jnp.float32), y32, atol=0.05)
    with pytest.raises(ValueError, match="dtype must name a floating dtype, got 'int8'"):
        get_model("state_seq", length=4, dtype="int8", rngs=nnx.Rngs(0))
