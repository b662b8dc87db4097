"""seqlstm/cudnn.py: weight packing and dispatch, checked on CPU against jax.experimental.rnn."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.experimental import rnn

import seqlstm
import seqlstm.cudnn as cudnn
import seqlstm.kernels.backends as backends
import seqlstm.scan as scan
from seqlstm.cell import LSTMState, init_params

B, T, D, H = 4, 6, 3, 5


def reference_kernel(x, h0, c0, weights, lengths, input_size, hidden_size):
    """`jax.experimental.rnn.lstm`'s signature, computed by its CPU reference `lstm_ref`."""
    if not isinstance(lengths, jax.core.Tracer):
        assert int(jnp.min(lengths)) >= 1, "cuDNN needs lengths >= 1"
    w_ih, w_hh, b_ih, b_hh = rnn.unpack_lstm_weights(weights, input_size, hidden_size, 1, False)
    return rnn.lstm_ref(
        x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, input_size, hidden_size, 1, 0.0, False
    )


def _params(seed, d=D):
    p = init_params(jax.random.key(seed), d, H)
    p["bias"] = jax.random.normal(jax.random.key(seed + 100), (4 * H,)) * 0.3
    return p


def test_packed_weights_unpack_to_pytorch_layout():
    layers = [_params(0), _params(1), _params(2, d=2 * H), _params(3, d=2 * H)]
    flat = cudnn.pack_weights(layers)
    assert flat.shape == (rnn.get_num_params_in_lstm(D, H, 2, True),)
    w_ih, w_hh, b_ih, b_hh = rnn.unpack_lstm_weights(flat, D, H, 2, True)
    for i, p in enumerate(layers):
        np.testing.assert_array_equal(w_ih[i], p["kernel"].T)
        np.testing.assert_array_equal(w_hh[i], p["recurrent_kernel"].T)
        np.testing.assert_array_equal(b_ih[i], p["bias"])
        np.testing.assert_array_equal(b_hh[i], 0.0)


def test_packed_stack_runs_like_lstm_ref():
    """A 2-layer bidirectional StackedLSTM equals lstm_ref given the packed weights."""
    model = seqlstm.StackedLSTM(
        D, (H, H), bidirectional=True, return_sequences=True, return_state=True, rngs=nnx.Rngs(0)
    )
    layers = []
    for layer in model.layers:
        layers += [layer.forward_layer.params_dict(), layer.backward_layer.params_dict()]
    x = jax.random.normal(jax.random.key(1), (B, T, D))
    lengths = jnp.array([6, 4, 2, 1], jnp.int32)
    y, states = model(x, seq_lengths=lengths)
    w = rnn.unpack_lstm_weights(cudnn.pack_weights(layers), D, H, 2, True)
    zeros = jnp.zeros((4, B, H))
    y_ref, h_n, c_n = rnn.lstm_ref(x, zeros, zeros, *w, lengths, D, H, 2, 0.0, True)
    np.testing.assert_allclose(y, y_ref, atol=1e-5)
    ours_h = [s.h for pair in states for s in pair]
    ours_c = [s.c for pair in states for s in pair]
    np.testing.assert_allclose(jnp.stack(ours_h), h_n, atol=1e-5)
    np.testing.assert_allclose(jnp.stack(ours_c), c_n, atol=1e-5)


def test_flip_valid_keeps_padding_in_place():
    x = jnp.arange(10).reshape(2, 5)
    np.testing.assert_array_equal(
        cudnn.flip_valid(x, jnp.array([3, 0])), [[2, 1, 0, 3, 4], [5, 6, 7, 8, 9]]
    )


@pytest.mark.parametrize("reverse", [False, True])
def test_cudnn_path_equals_scan_with_zero_lengths(reverse):
    p = _params(4)
    x = jax.random.normal(jax.random.key(5), (B, T, D))
    s0 = LSTMState(*jax.random.normal(jax.random.key(6), (2, B, H)))
    lengths = jnp.array([6, 0, 3, 1], jnp.int32)
    y, s = cudnn.cudnn_lstm(p, x, s0, seq_lengths=lengths, reverse=reverse, kernel=reference_kernel)
    y_ref, s_ref = scan.lstm_scan(p, x, s0, seq_lengths=lengths, reverse=reverse, backend="scan")
    np.testing.assert_allclose(y, y_ref, atol=1e-5)
    np.testing.assert_allclose(s.h, s_ref.h, atol=1e-5)
    np.testing.assert_allclose(s.c, s_ref.c, atol=1e-5)
    np.testing.assert_array_equal(s.h[1], s0.h[1])  # length 0: initial state restored


def test_auto_dispatch(monkeypatch):
    calls = []

    def spy(*args):
        calls.append(args[4])  # traced once per compiled program
        return reference_kernel(*args)

    monkeypatch.setattr(backends, "has_cudnn", lambda: True)
    monkeypatch.setattr(cudnn, "_kernel", spy)
    p = _params(7)
    x = jax.random.normal(jax.random.key(8), (B, T, D))
    y_auto, _ = scan.lstm_scan(p, x)
    assert len(calls) == 1  # float32 on a (pretend) CUDA GPU: cuDNN
    np.testing.assert_allclose(y_auto, scan.lstm_scan(p, x, backend="scan")[0], atol=1e-5)
    scan.lstm_scan(p, x, dtype=jnp.bfloat16)
    scan.lstm_scan(p, x, backend="scan")
    assert len(calls) == 1  # bfloat16 and an explicit scan stay on the scan


def test_cpu_resolves_auto_to_scan_and_refuses_cudnn():
    assert scan.choose_backend("auto", jnp.float32) == "scan"
    with pytest.raises(ValueError, match="backend='cudnn' needs a CUDA GPU.*'cpu'"):
        scan.choose_backend("cudnn", jnp.float32)
    with pytest.raises(ValueError, match="backend must be one of"):
        seqlstm.LSTM(D, H, backend="onednn", rngs=nnx.Rngs(0))
