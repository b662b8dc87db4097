"""seqlstm.interop.{from_keras, to_keras}: Keras 3's LSTM and Bidirectional as the oracles.

What Keras 3 (JAX backend, keras/src/backend/jax/rnn.py) returns with a mask, found here:
* A plain LSTM returning sequences repeats the last valid output at masked steps
  (`zero_output_for_mask=False`, its default); seqlstm writes zeros. Valid steps agree exactly.
* Keras's `Bidirectional` sets `zero_output_for_mask=return_sequences` on both layers, so its
  sequences are zero at masked steps, as seqlstm's are: whole sequences agree.
* The last output is the output carried to the final step, i.e. the last valid output; for a fully
  masked row it is the initial `h`, as seqlstm's (test_initial_state_and_empty_row).
* Final states are the states at each row's last valid step (the initial state for empty rows).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import seqlstm
from seqlstm.interop import from_keras, to_keras

keras = pytest.importorskip("keras")

B, T, D, H = 4, 7, 5, 4
ATOL = 1e-5
LENGTHS = np.array([T, 2, 0, 5], np.int32)  # full, short, empty (Keras accepts it), in between
MASK = np.arange(T)[None, :] < LENGTHS[:, None]


def inputs(seed=0):
    return np.random.default_rng(seed).normal(size=(B, T, D)).astype(np.float32)


# Keras's own ops (initialisers, the cell) broadcast across ranks, which conftest makes an error
# for seqlstm's sake: Keras runs under "allow", seqlstm never does.
keras_ops = jax.numpy_rank_promotion("allow")


def keras_call(layer, x, **kwargs):
    with keras_ops:
        return [np.asarray(a) for a in jax.tree.leaves(layer(x, **kwargs))]


def build(layer, shape=(None, None, D), seed=1):
    """Builds a Keras layer for `shape` with a random, non-trivial bias."""
    with keras_ops:
        layer.build(shape)
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        if w.path.endswith("bias"):
            w.assign(rng.normal(size=w.shape).astype(np.float32))
    return layer


def close(a, b):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=ATOL, rtol=0)


@pytest.mark.parametrize("return_state", [False, True], ids=["out", "state"])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "seq"])
def test_lstm_parity_masked(return_sequences, return_state):
    """Masked input; unmasked parity is checked by test_round_trips."""
    k = build(keras.layers.LSTM(H, return_sequences=return_sequences, return_state=return_state))
    model = from_keras(k)
    assert (model.return_sequences, model.return_state) == (return_sequences, return_state)
    x = inputs()
    theirs = keras_call(k, x, mask=MASK)
    ours = [np.asarray(a) for a in jax.tree.leaves(model(jnp.asarray(x), mask=jnp.asarray(MASK)))]
    assert len(ours) == len(theirs) == (3 if return_state else 1)
    if return_sequences:
        close(ours[0][MASK], theirs[0][MASK])
        assert not ours[0][~MASK].any()
        # Keras repeats each row's last valid output over its padding (zeros for the empty row).
        last = np.take_along_axis(theirs[0], np.maximum(LENGTHS - 1, 0)[:, None, None], 1)
        last = np.where((LENGTHS > 0)[:, None, None], last, 0)
        close(theirs[0], np.where(MASK[..., None], theirs[0], last))
    else:  # the last output: the last valid one, zeros for the empty row, in both
        close(ours[0], theirs[0])
    for a, b in zip(ours[1:], theirs[1:], strict=True):  # h, c
        close(a, b)


@pytest.mark.parametrize(
    "merge_mode, return_sequences",
    [(mode, True) for mode in ("concat", "sum", "mul", "ave", None)]
    + [("concat", False), (None, False)],  # the last outputs take the same merge code
)
def test_bidirectional_parity_masked(merge_mode, return_sequences):
    lstm = keras.layers.LSTM(H, return_sequences=return_sequences, return_state=True)
    k = build(keras.layers.Bidirectional(lstm, merge_mode=merge_mode))
    model = from_keras(k)
    assert isinstance(model, seqlstm.Bidirectional) and model.merge_mode == merge_mode
    x = inputs()
    # Keras: [out, h_f, c_f, h_b, c_b], or [out_f, out_b, h_f, ...] when merge_mode is None.
    theirs = keras_call(k, x, mask=MASK)
    out, (fwd, bwd) = model(jnp.asarray(x), mask=jnp.asarray(MASK))
    ours = [*jax.tree.leaves(out), fwd.h, fwd.c, bwd.h, bwd.c]
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):  # whole sequences: both zero where masked
        close(a, b)


def test_initial_state_and_empty_row():
    k = build(keras.layers.LSTM(H, return_state=True))
    model = from_keras(k)
    x = inputs()
    rng = np.random.default_rng(2)
    h0, c0 = (rng.normal(size=(B, H)).astype(np.float32) for _ in range(2))
    k_last, k_h, k_c = keras_call(k, x, mask=MASK, initial_state=[h0, c0])
    init = seqlstm.LSTMState(jnp.asarray(h0), jnp.asarray(c0))
    last, state = model(jnp.asarray(x), mask=jnp.asarray(MASK), initial_state=init)
    close(state.h, k_h)
    close(state.c, k_c)
    # Every row's last output is its final h; for the empty row that is h0, in both libraries.
    close(last, k_last)
    close(k_last[LENGTHS == 0], h0[LENGTHS == 0])
    close(np.asarray(state.h)[LENGTHS == 0], h0[LENGTHS == 0])


@pytest.mark.parametrize("kind", ["lstm", "bidirectional"])
def test_round_trips(kind):
    if kind == "lstm":
        k = build(keras.layers.LSTM(H, return_sequences=True, return_state=True))
    else:
        k = build(keras.layers.Bidirectional(keras.layers.LSTM(H), merge_mode="ave"))
    model = from_keras(k)
    back = to_keras(model)
    assert type(back) is type(k) and back.built
    assert (back.return_sequences, back.return_state) == (k.return_sequences, k.return_state)
    assert getattr(back, "merge_mode", None) == getattr(k, "merge_mode", None)
    for a, b in zip(back.weights, k.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a.value), np.asarray(b.value))
    again = from_keras(back)
    for a, b in zip(
        jax.tree.leaves(nnx.state(model, nnx.Param)),
        jax.tree.leaves(nnx.state(again, nnx.Param)),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    x = inputs(3)
    for a, b in zip(keras_call(back, x), jax.tree.leaves(model(jnp.asarray(x))), strict=True):
        close(b, a)


def test_no_bias_becomes_zero_bias():
    k = build(keras.layers.LSTM(H, use_bias=False, return_sequences=True))
    model = from_keras(k)
    assert not np.asarray(model.bias[...]).any()
    x = inputs()
    close(model(jnp.asarray(x)), keras_call(k, x)[0])
    assert len(to_keras(model).weights) == 3  # back in Keras with an explicit zero bias


def test_param_counts_match_keras():
    lstm = build(keras.layers.LSTM(64), (None, None, 2))
    assert seqlstm.count_params(from_keras(lstm)) == lstm.count_params() == 17_152
    bi = build(keras.layers.Bidirectional(keras.layers.LSTM(64)), (None, None, 2))
    assert seqlstm.count_params(from_keras(bi)) == bi.count_params() == 2 * 17_152
    with keras_ops:
        stack = keras.Sequential(
            [
                keras.Input((None, 2)),
                keras.layers.LSTM(64, return_sequences=True),
                keras.layers.LSTM(32),
            ]
        )
    assert stack.count_params() == 17_152 + 12_416
    ours = sum(seqlstm.count_params(from_keras(layer)) for layer in stack.layers)
    assert ours == stack.count_params()
    assert seqlstm.count_params(seqlstm.StackedLSTM(2, (64, 32), rngs=nnx.Rngs(0))) == ours


@pytest.mark.parametrize(
    "kwargs, option",
    [
        ({"activation": "relu"}, "activation"),
        ({"recurrent_activation": "hard_sigmoid"}, "recurrent_activation"),
        ({"go_backwards": True}, "go_backwards"),
        ({"stateful": True}, "stateful"),
    ],
)
def test_rejects_unsupported_options(kwargs, option):
    k = build(keras.layers.LSTM(H, **kwargs), (B, None, D))
    with pytest.raises(ValueError, match=option):
        from_keras(k)


def test_rejects_unbuilt_and_foreign_layers():
    with pytest.raises(ValueError, match="not built"):
        from_keras(keras.layers.LSTM(H))
    with pytest.raises(TypeError, match="LSTM"):
        from_keras(keras.layers.GRU(H))
    gru = build(keras.layers.Bidirectional(keras.layers.GRU(H)))
    with pytest.raises(TypeError, match="forward_layer"):
        from_keras(gru)
    with pytest.raises(ValueError, match="reverse"):
        to_keras(seqlstm.LSTM(D, H, reverse=True, rngs=nnx.Rngs(0)))


def test_dropout_and_recurrent_dropout_carry_over_and_match_keras_in_distribution():
    keras.utils.set_random_seed(0)  # the kernels: the same spread of outputs in any test order
    k = build(keras.layers.LSTM(H, dropout=0.3, recurrent_dropout=0.4, return_sequences=True))
    model = from_keras(k)
    assert (model.dropout, model.recurrent_dropout) == (0.3, 0.4)
    assert seqlstm.count_params(model) == k.count_params()  # dropout adds no parameters
    back = to_keras(model)
    assert (back.cell.dropout, back.cell.recurrent_dropout) == (0.3, 0.4)
    x = inputs()
    model.eval()
    close(model(jnp.asarray(x)), keras_call(k, x, training=False)[0])
    # Training: one sequence in 3000 rows, each row its own masks; the mean and spread over the
    # rows of Keras's outputs and of seqlstm's agree (different draws, same distribution).
    model.train()
    many = np.repeat(x[:1], 3000, axis=0)
    ours = np.asarray(model(jnp.asarray(many)))
    theirs = keras_call(k, many, training=True)[0]
    assert ours.std(0).mean() > 0.02  # dropout is on (without it every row is the same)
    np.testing.assert_allclose(ours.mean(0), theirs.mean(0), atol=0.02)
    np.testing.assert_allclose(ours.std(0), theirs.std(0), atol=0.02)
    bi = build(keras.layers.Bidirectional(keras.layers.LSTM(H, dropout=0.1)))
    assert from_keras(bi).backward_layer.dropout == 0.1


def test_to_keras_rejects_variants_keras_lacks():
    for kw in (dict(proj_size=2), dict(layer_norm=True), dict(peepholes=True)):
        with pytest.raises(ValueError, match=f"keras.layers.LSTM has no {next(iter(kw))}"):
            to_keras(seqlstm.LSTM(D, H, rngs=nnx.Rngs(0), **kw))
    with pytest.raises(ValueError, match="zoneout_cell"):
        to_keras(seqlstm.Bidirectional(D, H, zoneout_cell=0.1, rngs=nnx.Rngs(0)))
