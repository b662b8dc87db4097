"""seqlstm.interop.{from_torch, to_torch}: PyTorch's nn.LSTM as the oracle, outputs to gradients."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import seqlstm
from seqlstm.interop import from_torch, to_torch, torch_states

torch = pytest.importorskip("torch")
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

B, T, D, H = 3, 7, 5, 4
ATOL = 1e-5
# A full row, a short row and one in between, unsorted: torch packs them with
# enforce_sorted=False and returns h_n, c_n in the original batch order. torch rejects length 0,
# so empty rows are checked on the seqlstm side only (test_zero_length_row).
LENGTHS = np.array([T, 2, 5], np.int32)


def make_torch(num_layers=1, bidirectional=False, seed=0, **kwargs) -> torch.nn.LSTM:
    torch.manual_seed(seed)
    m = torch.nn.LSTM(
        D, H, num_layers=num_layers, bidirectional=bidirectional, batch_first=True, **kwargs
    )
    with torch.no_grad():  # torch initialises both biases alike; make their sum non-trivial
        for name, p in m.named_parameters():
            if name.startswith("bias"):
                p.uniform_(-0.5, 0.5)
    return m


def inputs(seed=0, batch=B):
    return np.random.default_rng(seed).normal(size=(batch, T, D)).astype(np.float32)


def run_torch(module, x, lengths=None):
    """Torch outputs `[B, T, dirs * H]` (zeros past each length) and h_n, c_n; x requires grad."""
    x = torch.tensor(x, requires_grad=True)
    if lengths is None:
        out, (h_n, c_n) = module(x)
    else:
        packed = pack_padded_sequence(
            x, torch.tensor(lengths), batch_first=True, enforce_sorted=False
        )
        out, (h_n, c_n) = module(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=T)
    return x, out, h_n, c_n


def functional_weights(seed, out_shape, h_shape, num_layers, bidirectional, c_shape=None):
    """A fixed random linear functional: weights for the outputs and for h_n, c_n."""
    rng = np.random.default_rng(seed)
    w_out = rng.normal(size=out_shape).astype(np.float32)
    w_h, w_c = (rng.normal(size=s).astype(np.float32) for s in (h_shape, c_shape or h_shape))
    return w_out, w_h, w_c, torch_states(w_h, w_c, num_layers, bidirectional)


def assert_states_equal(ours, theirs):
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=ATOL, rtol=0)


@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "lengths"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_parity_outputs_states_and_input_gradients(num_layers, bidirectional, lengths):
    check_parity(make_torch(num_layers, bidirectional), num_layers, bidirectional, lengths)


@pytest.mark.parametrize(
    "num_layers,bidirectional,lengths", [(2, True, LENGTHS), (1, False, None)], ids=["2bi", "1uni"]
)
def test_proj_size_parity_outputs_states_and_input_gradients(num_layers, bidirectional, lengths):
    module = make_torch(num_layers, bidirectional, proj_size=3)
    check_parity(module, num_layers, bidirectional, lengths, out_size=3)


def check_parity(module, num_layers, bidirectional, lengths, out_size=H):
    """from_torch(module): outputs, h_n, c_n and input gradients equal torch's."""
    model = from_torch(module)
    assert model.return_sequences and model.return_state
    x_np = inputs()
    dirs = 2 if bidirectional else 1

    xt, out_t, h_n, c_n = run_torch(module, x_np, lengths)
    w_out, w_h, w_c, w_states = functional_weights(
        1, out_t.shape, h_n.shape, num_layers, bidirectional, c_n.shape
    )
    loss_t = (
        (out_t * torch.tensor(w_out)).sum()
        + (h_n * torch.tensor(w_h)).sum()
        + (c_n * torch.tensor(w_c)).sum()
    )
    loss_t.backward()

    kw = {} if lengths is None else {"seq_lengths": jnp.asarray(lengths)}

    def loss(x):
        out, states = model(x, **kw)
        terms = jax.tree.map(lambda s, w: jnp.sum(s * w), states, w_states)
        return jnp.sum(out * w_out) + sum(jax.tree.leaves(terms)), (out, states)

    (_, (out, states)), grad = jax.value_and_grad(loss, has_aux=True)(jnp.asarray(x_np))
    assert out.shape == (B, T, dirs * out_size)
    # pad_packed_sequence fills padded steps with zeros, and so does seqlstm: compare everything.
    np.testing.assert_allclose(np.asarray(out), out_t.detach().numpy(), atol=ATOL, rtol=0)
    assert len(states) == num_layers
    assert_states_equal(states, torch_states(h_n, c_n, num_layers, bidirectional))
    np.testing.assert_allclose(np.asarray(grad), xt.grad.numpy(), atol=ATOL, rtol=0)
    if lengths is not None:  # nothing past a row's end influences anything
        padded = np.arange(T)[None, :] >= lengths[:, None]
        assert not np.asarray(grad)[padded].any()


def test_zero_length_row():
    """torch cannot pack an empty row; the converted model gives it zeros and leaves the rest."""
    module = make_torch(2, True)
    model = from_torch(module)
    x_np = inputs(batch=4)
    lengths = np.array([T, 0, 2, 5], np.int32)
    out, states = model(jnp.asarray(x_np), seq_lengths=jnp.asarray(lengths))
    assert not np.asarray(out[1]).any()
    assert not any(np.asarray(s[1]).any() for s in jax.tree.leaves(states))
    keep = lengths > 0
    _, out_t, h_n, c_n = run_torch(module, x_np[keep], lengths[keep])
    np.testing.assert_allclose(np.asarray(out[keep]), out_t.detach().numpy(), atol=ATOL, rtol=0)
    ours = jax.tree.map(lambda s: s[keep], states)
    assert_states_equal(ours, torch_states(h_n, c_n, 2, True))


def test_batch_first_false_and_no_bias():
    """seqlstm is batch-first whatever torch's batch_first; bias=False becomes a zero bias."""
    torch.manual_seed(0)
    module = torch.nn.LSTM(D, H, num_layers=2, bias=False, batch_first=False)
    model = from_torch(module)
    assert not np.asarray(model.layers[0].bias[...]).any()
    x_np = inputs()
    out_t, (h_n, c_n) = module(torch.tensor(x_np.transpose(1, 0, 2)))  # time-major for torch
    out, states = model(jnp.asarray(x_np))
    np.testing.assert_allclose(
        np.asarray(out), out_t.detach().numpy().transpose(1, 0, 2), atol=ATOL, rtol=0
    )
    assert_states_equal(states, torch_states(h_n, c_n, 2, False))


def test_dropout_and_mode_carry_over():
    module = make_torch(2, False, dropout=0.25).eval()
    model = from_torch(module)
    assert model.dropout.rate == 0.25 and model.dropout.deterministic
    x_np = inputs()
    _, out_t, h_n, c_n = run_torch(module, x_np)
    out, _ = model(jnp.asarray(x_np))
    np.testing.assert_allclose(np.asarray(out), out_t.detach().numpy(), atol=ATOL, rtol=0)
    back = to_torch(model)
    assert back.dropout == 0.25 and not back.training


def test_rejects_non_lstm():
    with pytest.raises(TypeError, match="torch.nn.LSTM"):
        from_torch(torch.nn.GRU(D, H))


@pytest.mark.parametrize(
    "bidirectional,proj_size", [(False, 0), (True, 0), (True, 2)], ids=["uni", "bi", "bi_proj"]
)
def test_round_trip_torch_seqlstm_torch(bidirectional, proj_size):
    module = make_torch(2, bidirectional, proj_size=proj_size)
    back = to_torch(from_torch(module))
    assert back.batch_first and back.bidirectional == bidirectional and back.num_layers == 2
    assert back.proj_size == proj_size
    theirs = dict(module.named_parameters())
    for name, p in back.named_parameters():
        if name.startswith("weight"):
            torch.testing.assert_close(p, theirs[name], atol=0, rtol=0)
        elif name.startswith("bias_ih"):
            summed = theirs[name] + theirs[name.replace("bias_ih", "bias_hh")]
            torch.testing.assert_close(p, summed, atol=0, rtol=0)
        else:
            assert not p.any(), name


def test_round_trip_seqlstm_torch_seqlstm():
    model = seqlstm.StackedLSTM(D, (H, H), bidirectional=True, rngs=nnx.Rngs(3))
    again = from_torch(to_torch(model))
    for a, b in zip(
        jax.tree.leaves(nnx.state(model, nnx.Param)),
        jax.tree.leaves(nnx.state(again, nnx.Param)),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("kind", ["lstm", "bidirectional"])
def test_to_torch_single_layer_parity(kind):
    rngs = nnx.Rngs(1)
    if kind == "lstm":
        layer = seqlstm.LSTM(D, H, return_sequences=True, return_state=True, rngs=rngs)
    else:
        layer = seqlstm.Bidirectional(D, H, return_sequences=True, return_state=True, rngs=rngs)
    module = to_torch(layer)
    x_np = inputs(2)
    _, out_t, h_n, c_n = run_torch(module, x_np, LENGTHS)
    out, state = layer(jnp.asarray(x_np), seq_lengths=jnp.asarray(LENGTHS))
    np.testing.assert_allclose(np.asarray(out), out_t.detach().numpy(), atol=ATOL, rtol=0)
    assert_states_equal((state,), torch_states(h_n, c_n, 1, kind == "bidirectional"))


def test_to_torch_rejects_what_torch_cannot_hold():
    rngs = nnx.Rngs(0)
    with pytest.raises(ValueError, match="hidden_sizes"):
        to_torch(seqlstm.StackedLSTM(D, (H, 2 * H), rngs=rngs))
    with pytest.raises(ValueError, match="merge_mode"):
        to_torch(seqlstm.StackedLSTM(D, (H, H), bidirectional=True, merge_mode="sum", rngs=rngs))
    with pytest.raises(ValueError, match="merge_mode"):
        to_torch(seqlstm.Bidirectional(D, H, merge_mode=None, rngs=rngs))
    with pytest.raises(ValueError, match="reverse"):
        to_torch(seqlstm.LSTM(D, H, reverse=True, rngs=rngs))
    with pytest.raises(TypeError):
        to_torch(seqlstm.RepeatVector(2))
    for kw in (dict(layer_norm=True), dict(peepholes=True), dict(recurrent_dropout=0.1)):
        with pytest.raises(ValueError, match=f"torch.nn.LSTM has no {next(iter(kw))}"):
            to_torch(seqlstm.StackedLSTM(D, (H, H), rngs=rngs, **kw))
    with pytest.raises(ValueError, match="has no dropout"):
        to_torch(seqlstm.LSTM(D, H, dropout=0.2, rngs=rngs))


def test_torch_states_layout():
    h_n = np.arange(4 * B * H, dtype=np.float32).reshape(4, B, H)
    states = torch_states(h_n, -h_n, num_layers=2, bidirectional=True)
    (f0, b0), (f1, b1) = states
    np.testing.assert_array_equal(np.asarray(b0.h), h_n[1])
    np.testing.assert_array_equal(np.asarray(f1.c), -h_n[2])
    with pytest.raises(ValueError, match="num_layers"):
        torch_states(h_n, h_n, num_layers=3, bidirectional=True)


def test_import_does_not_pull_in_torch_or_keras():
    code = (
        "import sys, seqlstm, seqlstm.interop\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'keras'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
