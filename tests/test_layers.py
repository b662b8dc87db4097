"""seqlstm/layers.py: Keras output/state semantics, padding, stacking, bidirectional, bad input."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import seqlstm
from seqlstm import LSTM, Bidirectional, LSTMState, RepeatVector, StackedLSTM
from seqlstm.scan import lstm_scan
from seqlstm.train.state import split_model

B, T, D, H = 3, 5, 4, 6


def _x(seed=0, shape=(B, T, D)):
    return jax.random.normal(jax.random.key(seed), shape)


@pytest.mark.parametrize(
    "return_sequences,return_state,want",
    [
        (False, False, (B, H)),
        (True, False, (B, T, H)),
        (False, True, ((B, H), (B, H), (B, H))),
        (True, True, ((B, T, H), (B, H), (B, H))),
    ],
)
def test_lstm_return_modes(return_sequences, return_state, want):
    layer = LSTM(
        D, H, return_sequences=return_sequences, return_state=return_state, rngs=nnx.Rngs(0)
    )
    out = layer(_x())
    if return_state:
        y, state = out
        assert isinstance(state, LSTMState)
        assert (y.shape, state.h.shape, state.c.shape) == want
    else:
        assert out.shape == want


def test_lstm_is_the_functional_core():
    layer = LSTM(D, H, return_sequences=True, return_state=True, rngs=nnx.Rngs(1))
    y, s = layer(_x())
    y_ref, s_ref = lstm_scan(layer.params_dict(), _x())
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(s.c, s_ref.c)
    last = LSTM(D, H, rngs=nnx.Rngs(1))(_x())
    np.testing.assert_array_equal(last, y_ref[:, -1])


def test_last_output_and_state_with_lengths():
    layer = LSTM(D, H, return_sequences=True, return_state=True, rngs=nnx.Rngs(2))
    lengths = jnp.array([5, 2, 0])
    h0 = jnp.full((B, H), 0.3)
    y, s = layer(_x(), seq_lengths=lengths, initial_state=LSTMState(h0, h0))
    np.testing.assert_array_equal(y[1, 2:], 0.0)
    np.testing.assert_array_equal(y[2], 0.0)
    np.testing.assert_array_equal(s.h[1], y[1, 1])
    np.testing.assert_array_equal(s.h[2], h0[2])  # length 0: the initial state
    last_layer = LSTM(D, H, rngs=nnx.Rngs(2))
    last = last_layer(_x(), seq_lengths=lengths, initial_state=LSTMState(h0, h0))
    np.testing.assert_array_equal(last[0], y[0, 4])
    np.testing.assert_array_equal(last[1], y[1, 1])
    np.testing.assert_array_equal(last[2], h0[2])  # as Keras: an empty row's last output is h0


def test_mask_equals_seq_lengths():
    layer = LSTM(D, H, return_sequences=True, return_state=True, rngs=nnx.Rngs(3))
    mask = jnp.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], bool)
    y1, s1 = layer(_x(), mask=mask)
    y2, s2 = layer(_x(), seq_lengths=jnp.array([5, 2, 0]))
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(s1.c, s2.c)


def test_lengths_from_ids_is_mask_zero():
    tokens = jnp.array([[4, 2, 7, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(seqlstm.lengths_from_ids(tokens), [3, 1, 0])
    np.testing.assert_array_equal(seqlstm.lengths_from_ids(tokens + 1, pad_id=1), [3, 1, 0])
    with pytest.raises(ValueError, match="right-padded"):
        seqlstm.lengths_from_ids(jnp.array([[0, 3, 4]]))


def test_reverse_starts_at_last_valid_step():
    layer = LSTM(D, H, reverse=True, return_sequences=True, return_state=True, rngs=nnx.Rngs(4))
    x = _x()
    y, s = layer(x, seq_lengths=jnp.array([5, 3, 5]))
    # Row 1 alone, cut to its 3 valid steps, run backwards: the same as with padding.
    y1, s1 = layer(x[1:2, :3])
    np.testing.assert_allclose(y[1:2, :3], y1, atol=1e-6)
    np.testing.assert_allclose(s.h[1:2], s1.h, atol=1e-6)
    np.testing.assert_array_equal(y[1, 3:], 0.0)
    # The state of a reversed layer is its state after step 0, which is its output there.
    np.testing.assert_array_equal(s.h, y[:, 0])


def _bidi_reference(layer, x, **kw):
    fwd, fs = lstm_scan(layer.forward_layer.params_dict(), x, **kw)
    bwd, bs = lstm_scan(layer.backward_layer.params_dict(), x, reverse=True, **kw)
    return fwd, bwd, fs, bs


@pytest.mark.parametrize(
    "merge_mode,fn",
    [
        ("concat", lambda a, b: jnp.concatenate([a, b], -1)),
        ("sum", lambda a, b: a + b),
        ("mul", lambda a, b: a * b),
        ("ave", lambda a, b: (a + b) / 2),
    ],
)
def test_bidirectional_merge_modes(merge_mode, fn):
    layer = Bidirectional(D, H, merge_mode=merge_mode, return_sequences=True, rngs=nnx.Rngs(5))
    fwd, bwd, _, _ = _bidi_reference(layer, _x())
    np.testing.assert_allclose(layer(_x()), fn(fwd, bwd), atol=1e-6)
    layer.return_sequences = False
    np.testing.assert_allclose(layer(_x()), fn(fwd[:, -1], bwd[:, 0]), atol=1e-6)


def test_bidirectional_none_pair_and_states():
    layer = Bidirectional(
        D, H, merge_mode=None, return_sequences=True, return_state=True, rngs=nnx.Rngs(6)
    )
    lengths = jnp.array([5, 3, 1])
    (fwd, bwd), (fs, bs) = layer(_x(), seq_lengths=lengths)
    rf, rb, rfs, rbs = _bidi_reference(layer, _x(), seq_lengths=lengths)
    np.testing.assert_allclose(fwd, rf, atol=1e-6)
    np.testing.assert_allclose(bwd, rb, atol=1e-6)
    assert isinstance(fs, LSTMState) and isinstance(bs, LSTMState)
    np.testing.assert_allclose(fs.c, rfs.c, atol=1e-6)
    np.testing.assert_allclose(bs.c, rbs.c, atol=1e-6)
    assert Bidirectional(D, H, rngs=nnx.Rngs(0))(_x()).shape == (B, 2 * H)


def test_bidirectional_initial_state_per_direction():
    layer = Bidirectional(D, H, return_state=True, rngs=nnx.Rngs(7))
    s_f = LSTMState(jnp.ones((B, H)), jnp.ones((B, H)))
    s_b = LSTMState(-jnp.ones((B, H)), jnp.zeros((B, H)))
    _, (fs, bs) = layer(_x(), initial_state=(s_f, s_b))
    _, rfs = lstm_scan(layer.forward_layer.params_dict(), _x(), s_f)
    _, rbs = lstm_scan(layer.backward_layer.params_dict(), _x(), s_b, reverse=True)
    np.testing.assert_allclose(fs.h, rfs.h, atol=1e-6)
    np.testing.assert_allclose(bs.h, rbs.h, atol=1e-6)


def test_stacked_equals_chained_layers():
    model = StackedLSTM(D, (6, 3), return_sequences=True, return_state=True, rngs=nnx.Rngs(8))
    lengths = jnp.array([5, 2, 0])
    init = (None, LSTMState(jnp.ones((B, 3)), jnp.ones((B, 3))))
    y, states = model(_x(), seq_lengths=lengths, initial_state=init)
    y0, s0 = lstm_scan(model.layers[0].params_dict(), _x(), seq_lengths=lengths)
    y1, s1 = lstm_scan(model.layers[1].params_dict(), y0, init[1], seq_lengths=lengths)
    np.testing.assert_allclose(y, y1, atol=1e-6)
    assert len(states) == 2 and all(isinstance(s, LSTMState) for s in states)
    np.testing.assert_allclose(states[0].c, s0.c, atol=1e-6)
    np.testing.assert_allclose(states[1].c, s1.c, atol=1e-6)
    model.return_sequences = False
    last, _ = model(_x(), seq_lengths=lengths, initial_state=init)
    np.testing.assert_allclose(last[:2], np.stack([y1[0, 4], y1[1, 1]]), atol=1e-6)
    np.testing.assert_array_equal(last[2], init[1].h[2])  # empty row: the last layer's initial h


def test_stacked_bidirectional_states_are_pairs():
    model = StackedLSTM(D, (4, 4), bidirectional=True, return_state=True, rngs=nnx.Rngs(9))
    out, states = model(_x())
    assert out.shape == (B, 8)
    assert all(isinstance(s, tuple) and isinstance(s[0], LSTMState) for s in states)
    np.testing.assert_allclose(out, jnp.concatenate([states[1][0].h, states[1][1].h], -1))


def test_dropout_between_layers_in_training_only():
    model = StackedLSTM(
        D, (6, 6, 6), dropout=0.5, return_sequences=True, return_state=True, rngs=nnx.Rngs(10)
    )
    model.eval()
    y_eval, s_eval = model(_x())
    y_eval2, _ = model(_x())
    np.testing.assert_array_equal(y_eval, y_eval2)
    model.train()
    y_train, s_train = model(_x())
    # Not before the first layer, so its state is unchanged; after it, the rest differ.
    np.testing.assert_array_equal(s_train[0].c, s_eval[0].c)
    assert not np.allclose(s_train[1].c, s_eval[1].c)
    # Not after the last layer: no exact zeros appear in its outputs.
    assert np.count_nonzero(y_train == 0.0) == 0


def test_repeat_vector():
    x = jnp.arange(6.0).reshape(2, 3)
    y = RepeatVector(4)(x)
    assert y.shape == (2, 4, 3)
    np.testing.assert_array_equal(y[:, 2], x)
    with pytest.raises(ValueError, match=r"x must be \[batch, features\]"):
        RepeatVector(4)(jnp.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="n must be a positive int"):
        RepeatVector(0)


def test_jit_through_the_module():
    model = StackedLSTM(D, (5, 3), rngs=nnx.Rngs(11))

    @nnx.jit
    def run(model, x, lengths):
        return model(x, seq_lengths=lengths)

    lengths = jnp.array([5, 3, 1])
    np.testing.assert_allclose(
        run(model, _x(), lengths), model(_x(), seq_lengths=lengths), atol=1e-6
    )


# ---------------------------------------------------------------------------- bad input


def test_wrong_rank_raises():
    with pytest.raises(ValueError, match=r"x must be \[batch, time, features\].*\(5, 4\)"):
        LSTM(D, H, rngs=nnx.Rngs(0))(jnp.zeros((5, 4)))


def test_feature_mismatch_raises():
    with pytest.raises(ValueError, match="x has 7 features.*in_features=4"):
        LSTM(D, H, rngs=nnx.Rngs(0))(jnp.zeros((2, 3, 7)))
    with pytest.raises(ValueError, match="in_features=4"):
        StackedLSTM(D, (3,), rngs=nnx.Rngs(0))(jnp.zeros((2, 3, 7)))


def test_seq_lengths_shape_and_range_raise():
    layer = LSTM(D, H, rngs=nnx.Rngs(0))
    with pytest.raises(
        ValueError, match=r"seq_lengths must have shape \[batch\] = \(3,\), got \(2,\)"
    ):
        layer(_x(), seq_lengths=jnp.array([1, 2]))
    with pytest.raises(ValueError, match=r"seq_lengths must lie in \[0, time\] = \[0, 5\].*max 6"):
        layer(_x(), seq_lengths=jnp.array([1, 6, 2]))
    with pytest.raises(ValueError, match="min -1"):
        layer(_x(), seq_lengths=jnp.array([1, -1, 2]))
    with pytest.raises(ValueError, match="integers"):
        layer(_x(), seq_lengths=jnp.array([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="not both"):
        layer(_x(), seq_lengths=jnp.array([1, 2, 3]), mask=jnp.ones((B, T), bool))


def test_non_right_padded_mask_raises():
    layer = LSTM(D, H, rngs=nnx.Rngs(0))
    mask = jnp.array([[1, 1, 1, 1, 1], [0, 1, 1, 0, 0], [1, 0, 0, 0, 0]], bool)
    with pytest.raises(ValueError, match=r"mask must be right-padded.*rows \[1\]"):
        layer(_x(), mask=mask)
    with pytest.raises(ValueError, match=r"mask must have shape \[batch, time\]"):
        layer(_x(), mask=jnp.ones((B, T + 1), bool))


def test_traced_bad_lengths_poison_only_their_rows():
    """Under jit values cannot raise: bad rows become NaN instead of silently wrong."""
    layer = LSTM(D, H, return_sequences=True, return_state=True, rngs=nnx.Rngs(0))
    run = nnx.jit(lambda m, x, mask: m(x, mask=mask))
    mask = jnp.array([[1, 1, 1, 1, 1], [0, 1, 1, 0, 0], [1, 0, 0, 0, 0]], bool)
    y, s = run(layer, _x(), mask)
    y, h, c = np.asarray(y), np.asarray(s.h), np.asarray(s.c)
    assert np.isnan(y[1]).all() and np.isnan(h[1]).all()
    assert np.isfinite(y[[0, 2]]).all() and np.isfinite(c[[0, 2]]).all()
    run_len = nnx.jit(lambda m, x, n: m(x, seq_lengths=n))
    y = np.asarray(run_len(layer, _x(), jnp.array([5, 9, 2]))[0])
    assert np.isnan(y[1]).all() and np.isfinite(y[[0, 2]]).all()


def test_unknown_merge_mode_raises():
    with pytest.raises(ValueError, match=r"merge_mode must be one of .*got 'max'"):
        Bidirectional(D, H, merge_mode="max", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="merge_mode of a bidirectional StackedLSTM"):
        StackedLSTM(D, (3, 3), bidirectional=True, merge_mode=None, rngs=nnx.Rngs(0))


def test_dropout_of_one_layer_warns_as_pytorch_does():
    """Between-layer dropout of a single layer does nothing (it equals the plain stack in
    training mode), so it warns, as `torch.nn.LSTM(num_layers=1, dropout=0.2)` does."""
    with pytest.warns(UserWarning, match="dropout=0.2 and 1 layer; input_dropout drops"):
        one = StackedLSTM(D, (H,), dropout=0.2, rngs=nnx.Rngs(4))
    plain = StackedLSTM(D, (H,), rngs=nnx.Rngs(4))
    np.testing.assert_array_equal(one(_x()), plain(_x()))  # training mode: still no effect
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        StackedLSTM(D, (H, H), dropout=0.2, rngs=nnx.Rngs(0))
        StackedLSTM(D, (H,), input_dropout=0.2, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_non_positive_hidden_size_raises(bad):
    with pytest.raises(ValueError, match=f"hidden_size must be a positive int, got {bad!r}"):
        LSTM(D, bad, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"hidden_sizes\[1\] must be a positive int"):
        StackedLSTM(D, (3, bad), rngs=nnx.Rngs(0))


def test_initial_state_wrong_shape_raises():
    layer = LSTM(D, H, rngs=nnx.Rngs(0))
    good = jnp.zeros((B, H))
    with pytest.raises(
        ValueError,
        match=r"initial_state.c must have shape \[batch, hidden\] = \(3, 6\), got \(3, 5\)",
    ):
        layer(_x(), initial_state=LSTMState(good, jnp.zeros((B, 5))))
    with pytest.raises(ValueError, match=r"initial_state.h must have shape"):
        layer(_x(), initial_state=LSTMState(jnp.zeros((H,)), good))
    with pytest.raises(ValueError, match="initial_state must be an LSTMState"):
        layer(_x(), initial_state=good)
    with pytest.raises(ValueError, match="one entry per layer"):
        StackedLSTM(D, (3, 3), rngs=nnx.Rngs(0))(_x(), initial_state=[None])
    with pytest.raises(ValueError, match="pair"):
        Bidirectional(D, H, rngs=nnx.Rngs(0))(_x(), initial_state=LSTMState(good, good)[0])


VARIANT_KW = dict(
    proj_size=3, layer_norm=True, peepholes=True, recurrent_dropout=0.3, zoneout_cell=0.2,
    zoneout_hidden=0.1,
)  # fmt: skip


def test_variants_through_bidirectional_and_stack_match_the_loop_in_evaluation():
    from test_variants import oracle  # the step-by-step numpy loop of tests/test_variants.py

    lengths = jnp.array([5, 2, 0])
    bi = Bidirectional(
        D, H, return_sequences=True, return_state=True, dropout=0.3, rngs=nnx.Rngs(1),
        **VARIANT_KW,
    )  # fmt: skip
    bi.eval()
    assert bi.out_features == 6
    out, (fwd, bwd) = bi(_x(), seq_lengths=lengths)
    rates = bi.forward_layer.rates
    n = np.array(lengths)
    want_f = oracle(bi.forward_layer.params_dict(), _x(), n, rates=rates)
    want_b = oracle(bi.backward_layer.params_dict(), _x(), n, reverse=True, rates=rates)
    np.testing.assert_allclose(out, np.concatenate([want_f[0], want_b[0]], -1), atol=2e-5)
    assert fwd.h.shape == (B, 3) and fwd.c.shape == (B, H)
    np.testing.assert_allclose(bwd.c, want_b[2], atol=2e-5)
    stack = StackedLSTM(
        D, (H, H), bidirectional=True, input_dropout=0.3, return_sequences=True,
        rngs=nnx.Rngs(2), **VARIANT_KW,
    )  # fmt: skip
    stack.eval()
    first, second = stack.layers
    assert first.forward_layer.dropout == 0.3 and second.backward_layer.proj_size == 3
    chained = second(first(_x(), seq_lengths=lengths)[0], seq_lengths=lengths)[0]
    np.testing.assert_allclose(stack(_x(), seq_lengths=lengths), chained, atol=1e-6)


def test_stochastic_options_in_training_mode_only_with_fresh_masks_each_call():
    layer = LSTM(D, H, return_sequences=True, dropout=0.5, recurrent_dropout=0.5, rngs=nnx.Rngs(3))
    plain = LSTM(D, H, return_sequences=True, rngs=nnx.Rngs(3))
    same_rows = jnp.broadcast_to(_x()[:1], (B, T, D))
    y1, y2 = layer(same_rows), layer(same_rows)
    assert not np.allclose(y1, y2)  # a new key per call: another step of training
    assert not np.allclose(y1[0], y1[1])  # each row its own masks
    grads = nnx.grad(lambda m: jnp.sum(m(_x()) ** 2))(layer)
    assert all(np.isfinite(g).all() and np.abs(g).sum() > 0 for g in jax.tree.leaves(grads))
    layer.eval()
    np.testing.assert_allclose(layer(_x()), plain(_x()), atol=1e-6)  # eval: the plain LSTM
    np.testing.assert_array_equal(layer(_x()), layer(_x()))
    # The training stack's evaluation graph (nnx.view, as split_model makes it) is the plain LSTM.
    model_def, params = split_model(StackedLSTM(D, (H,), input_dropout=0.5, rngs=nnx.Rngs(3)))
    plain_def, plain_params = split_model(StackedLSTM(D, (H,), rngs=nnx.Rngs(3)))
    evaluated = model_def.apply(params, _x())
    np.testing.assert_allclose(evaluated, plain_def.apply(plain_params, _x()), atol=1e-6)
    trained = model_def.apply(params, _x(), train=True, rng=jax.random.key(1))
    assert not np.allclose(evaluated, trained)


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(dropout=1.0), "dropout must be in"),
        (dict(recurrent_dropout=-0.1), "recurrent_dropout must be in"),
        (dict(zoneout_cell=1.5), "zoneout_cell must be in"),
        (dict(zoneout_hidden=None), "zoneout_hidden must be a float"),
        (dict(proj_size=H), "proj_size must be smaller than hidden_size=6"),
        (dict(proj_size=-1), "proj_size must be an int >= 0"),
        (dict(peepholes=True, backend="cudnn"), "backend='cudnn' runs the plain LSTM"),
        (dict(dtype=jnp.int32), "dtype must be a floating dtype"),
        (dict(param_dtype=jnp.int8), "param_dtype must be a floating dtype"),
    ],
)
def test_bad_variant_arguments_raise_naming_them(kw, match):
    with pytest.raises(ValueError, match=match):
        LSTM(D, H, rngs=nnx.Rngs(0), **kw)


def test_complex_input_raises():
    with pytest.raises(ValueError, match="x must be real, got dtype complex64"):
        LSTM(D, H, rngs=nnx.Rngs(0))(_x().astype(jnp.complex64))
    with pytest.raises(ValueError, match="x must be real"):
        StackedLSTM(D, (H,), rngs=nnx.Rngs(0))(_x().astype(jnp.complex64))
