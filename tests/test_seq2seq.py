"""Tests for seqlstm/seq2seq.py and seqlstm/tokens.py: teacher forcing against step-by-step
decoding, padding independence of the encoder, bridges, empty sequences and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from seqlstm.seq2seq import EncoderDecoder
from seqlstm.tokens import BOS, EOS, PAD, pad_batch, seq2seq_arrays, strip

SRC_V, TGT_V = 9, 8
SOURCES = [[3, 4, 5, 6], [8, 7], [], [5, 5, 5, 5, 5, 3]]
TARGETS = [[7, 6], [], [3, 4, 5, 6, 7], [4]]


def make(**kwargs):
    kw = dict(
        source_vocab_size=SRC_V,
        target_vocab_size=TGT_V,
        hidden_size=8,
        max_source_len=8,
        max_target_len=7,
    )
    kw.update(kwargs)
    return EncoderDecoder(**kw, rngs=nnx.Rngs(0))


def batch(max_source_len=8, max_target_len=7):
    return seq2seq_arrays(
        SOURCES,
        TARGETS,
        max_source_len=max_source_len,
        max_target_len=max_target_len,
        source_vocab_size=SRC_V,
        target_vocab_size=TGT_V,
    )


CONFIGS = {
    "plain": dict(),
    "attention_no_feeding": dict(attention="dot", input_feeding=False),
    "additive_feeding_bidi_2layers": dict(
        attention="additive", bidirectional=True, num_layers=2, embed_dim=5
    ),
    "general_feeding_sum_bridge": dict(attention="general", bidirectional=True, bridge="sum"),
    "zeros_bridge_deeper_decoder": dict(bridge="zeros", decoder_layers=2, attention="dot"),
    "location_no_feeding_bidi": dict(attention="location", input_feeding=False, bidirectional=True),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_teacher_forcing_equals_step_by_step(name):
    model = make(**CONFIGS[name])
    d = batch()
    logits, weights = model(d["source"], d["source_lengths"], d["target_in"], return_attention=True)
    memory, carry = model.encode(jnp.asarray(d["source"]), jnp.asarray(d["source_lengths"]))
    step = nnx.jit(lambda decoder, c, token, m: decoder.step(c, token, m))  # one compile
    for t in range(d["target_in"].shape[1]):
        carry, step_logits, step_weights = step(model.decoder, carry, d["target_in"][:, t], memory)
        np.testing.assert_allclose(step_logits, logits[:, t], rtol=1e-5, atol=1e-5)
        if weights is not None:
            np.testing.assert_allclose(step_weights, weights[:, t], rtol=1e-5, atol=1e-6)
    assert np.all(np.isfinite(np.asarray(logits)))


@pytest.mark.parametrize("bidirectional", [False, True])
def test_encoder_independent_of_padding(bidirectional):
    model = make(attention="general", bidirectional=bidirectional, num_layers=2)
    short = batch(max_source_len=6)
    long = batch(max_source_len=8)
    # Garbage (valid ids) after each row's end must not matter either.
    garbage = long["source"].copy()
    pad = np.arange(8)[None, :] >= long["source_lengths"][:, None]
    garbage[pad] = 7
    out_s, states_s = model.encoder(jnp.asarray(short["source"]), short["source_lengths"])
    for src in (long["source"], garbage):
        out_l, states_l = model.encoder(jnp.asarray(src), long["source_lengths"])
        np.testing.assert_allclose(out_l[:, :6], out_s, rtol=1e-6, atol=1e-6)
        assert np.all(np.asarray(out_l)[pad] == 0.0)
        for a, b in zip(jax.tree.leaves(states_l), jax.tree.leaves(states_s)):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
        logits_s = model(short["source"], short["source_lengths"], short["target_in"])
        logits_l = model(src, long["source_lengths"], long["target_in"])
        np.testing.assert_allclose(logits_l, logits_s, rtol=1e-5, atol=1e-6)


def test_sum_bridge_adds_directions():
    model = make(bidirectional=True, bridge="sum")
    d = batch()
    _, states = model.encoder(jnp.asarray(d["source"]), d["source_lengths"])
    _, carry = model.encode(jnp.asarray(d["source"]), d["source_lengths"])
    fwd, bwd = states[-1]
    np.testing.assert_allclose(carry.states[0].h, fwd.h + bwd.h, rtol=1e-6)
    np.testing.assert_allclose(carry.states[0].c, fwd.c + bwd.c, rtol=1e-6)


def test_empty_source_is_defined():
    model = make(attention="additive")
    d = batch()
    logits, weights = model(d["source"], d["source_lengths"], d["target_in"], return_attention=True)
    assert np.all(np.isfinite(np.asarray(logits)))
    assert np.all(np.asarray(weights[2]) == 0.0)  # row 2 has an empty source


def test_tokens_layout():
    d = batch()
    np.testing.assert_array_equal(d["source_lengths"], [4, 2, 0, 6])
    np.testing.assert_array_equal(d["targets"][0], [7, 6, EOS, PAD, PAD, PAD, PAD])
    np.testing.assert_array_equal(d["target_in"][0], [BOS, 7, 6, PAD, PAD, PAD, PAD])
    np.testing.assert_array_equal(d["targets"][1], [EOS] + [PAD] * 6)  # empty target: just EOS
    np.testing.assert_array_equal(d["mask"].sum(1), [3, 1, 6, 2])
    assert strip([5, 4, EOS, 6]) == [5, 4]


def test_bad_input():
    model = make(attention="dot")
    d = batch()
    src, lens, tin = d["source"], d["source_lengths"], d["target_in"]
    with pytest.raises(ValueError, match="max_source_len=8"):
        model(np.zeros((4, 9), np.int32), lens, tin)
    with pytest.raises(ValueError, match="max_target_len=7"):
        model(src, lens, np.ones((4, 8), np.int32))
    with pytest.raises(ValueError, match="source holds id 9"):
        model(np.where(src == 8, 9, src), lens, tin)
    with pytest.raises(ValueError, match="target_in holds id -1"):
        model(src, lens, np.where(tin == 7, -1, tin))
    with pytest.raises(ValueError, match="source_lengths must lie"):
        model(src, lens + 3, tin)
    with pytest.raises(ValueError, match="source must be int"):
        model(src.astype(np.float32), lens, tin)
    with pytest.raises(ValueError, match="no time steps"):
        model(np.zeros((4, 0), np.int32), np.zeros(4, np.int32), tin)
    with pytest.raises(ValueError, match="more than the maximum length 4"):
        pad_batch([[3, 4, 5, 6, 7]], 4, vocab_size=SRC_V)
    with pytest.raises(ValueError, match="plus BOS/EOS"):
        pad_batch([[3, 4, 5, 6]], 4, vocab_size=SRC_V, eos=True)
    with pytest.raises(ValueError, match="outside the data ids"):
        pad_batch([[3, 1]], 4, vocab_size=SRC_V)
    with pytest.raises(ValueError, match="outside the data ids"):
        seq2seq_arrays([[3]], [[TGT_V]], max_source_len=2, max_target_len=3,
                       source_vocab_size=SRC_V, target_vocab_size=TGT_V)  # fmt: skip
    with pytest.raises(ValueError, match="bridge must be"):
        make(bridge="mean")
    with pytest.raises(ValueError, match="attention must be"):
        make(attention="luong")
    with pytest.raises(ValueError, match="decoder_layers"):
        make(decoder_layers=2)
    with pytest.raises(ValueError, match="exceed the 3 reserved ids"):
        make(target_vocab_size=3)
    with pytest.raises(ValueError, match="query_size == key_size"):
        make(attention="dot", bidirectional=True)


VARIANTS = dict(
    proj_size=5, layer_norm=True, peepholes=True, zoneout_cell=0.2, zoneout_hidden=0.1,
    recurrent_dropout=0.2, input_dropout=0.2,
)  # fmt: skip


def test_variants_teacher_forcing_equals_step_by_step_in_evaluation():
    """The whole-sequence path (lstm_scan) and decoding's steps (LSTM.step) agree for every
    variant; a bidirectional encoder's projected states reach the decoder through the bridge."""
    model = make(attention="general", input_feeding=False, bidirectional=True, **VARIANTS)
    model.eval()
    assert model.decoder.layers[0].proj_size == 5 and model.encoder.out_features == 10
    d = batch()
    logits = model(d["source"], d["source_lengths"], d["target_in"])
    memory, carry = model.encode(jnp.asarray(d["source"]), jnp.asarray(d["source_lengths"]))
    assert carry.states[0].h.shape == (4, 5) and carry.states[0].c.shape == (4, 8)
    step = nnx.jit(lambda decoder, c, token, m: decoder.step(c, token, m))
    for t in range(d["target_in"].shape[1]):
        carry, step_logits, _ = step(model.decoder, carry, d["target_in"][:, t], memory)
        np.testing.assert_allclose(step_logits, logits[:, t], rtol=1e-5, atol=1e-5)


def test_variants_train_with_input_feeding():
    stochastic = dict(proj_size=5, zoneout_cell=0.2, recurrent_dropout=0.2, input_dropout=0.2)
    model = make(attention="additive", **stochastic)
    d = batch()
    args = tuple(jnp.asarray(d[k]) for k in ("source", "source_lengths", "target_in"))
    loss_and_grads = nnx.jit(nnx.value_and_grad(lambda m: jnp.sum(m(*args) ** 2)))
    loss1, grads = loss_and_grads(model)
    loss2, _ = loss_and_grads(model)  # the same program, the next masks
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))
    assert np.isfinite(loss1) and loss1 != loss2
