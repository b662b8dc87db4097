"""seqlstm/cell.py: gate math by hand, Keras-default initialisers."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqlstm.cell import LSTMState, batch_zeros, gate_update, init_params, lstm_cell, zeros_state


def _sig(v):
    return 1.0 / (1.0 + math.exp(-v))


def test_gate_update_by_hand():
    # One unit, gates in order i, f, g, o.
    i, f, g, o, c = 0.5, -1.0, 0.25, 2.0, 0.3
    c_new = _sig(f) * c + _sig(i) * math.tanh(g)
    h_new = _sig(o) * math.tanh(c_new)
    out = gate_update(jnp.array([[i, f, g, o]]), jnp.array([[c]]))
    assert isinstance(out, LSTMState)
    np.testing.assert_allclose(out.c, [[c_new]], rtol=1e-6)
    np.testing.assert_allclose(out.h, [[h_new]], rtol=1e-6)


def test_lstm_cell_by_hand_two_units():
    # D = 1, H = 2: z = x * kernel + h @ recurrent + bias, then the gate math per unit.
    kernel = np.arange(8, dtype=np.float32)[None, :] / 10  # [1, 8]
    recurrent = np.linspace(-1, 1, 16, dtype=np.float32).reshape(2, 8)
    bias = np.full((8,), 0.1, np.float32)
    x, h, c = (
        np.array([[0.7]], np.float32),
        np.array([[0.2, -0.4]], np.float32),
        np.array([[1.0, -0.5]], np.float32),
    )
    z = x @ kernel + h @ recurrent + bias[None, :]
    expected_c, expected_h = [], []
    for u in range(2):
        zi, zf, zg, zo = z[0, u], z[0, 2 + u], z[0, 4 + u], z[0, 6 + u]
        cu = _sig(zf) * c[0, u] + _sig(zi) * math.tanh(zg)
        expected_c.append(cu)
        expected_h.append(_sig(zo) * math.tanh(cu))
    params = {
        "kernel": jnp.asarray(kernel),
        "recurrent_kernel": jnp.asarray(recurrent),
        "bias": jnp.asarray(bias),
    }
    out = lstm_cell(params, LSTMState(jnp.asarray(h), jnp.asarray(c)), jnp.asarray(x))
    np.testing.assert_allclose(out.c[0], expected_c, rtol=1e-5)
    np.testing.assert_allclose(out.h[0], expected_h, rtol=1e-5)


def test_init_params_match_keras_defaults():
    d, hidden = 7, 5
    p = init_params(jax.random.key(0), d, hidden)
    assert p["kernel"].shape == (d, 4 * hidden)
    assert p["recurrent_kernel"].shape == (hidden, 4 * hidden)
    assert p["bias"].shape == (4 * hidden,)
    # glorot uniform over (D, 4H): |w| <= sqrt(6 / (fan_in + fan_out)).
    limit = math.sqrt(6 / (d + 4 * hidden))
    assert float(jnp.max(jnp.abs(p["kernel"]))) <= limit
    assert float(jnp.std(p["kernel"])) > limit / 4  # not degenerate
    # orthogonal over the whole (H, 4H) matrix: its rows are orthonormal.
    u = p["recurrent_kernel"]
    np.testing.assert_allclose(u @ u.T, np.eye(hidden), atol=1e-5)
    expected_bias = np.zeros(4 * hidden)
    expected_bias[hidden : 2 * hidden] = 1.0
    np.testing.assert_array_equal(p["bias"], expected_bias)
    p0 = init_params(jax.random.key(0), d, hidden, unit_forget_bias=False)
    np.testing.assert_array_equal(p0["bias"], np.zeros(4 * hidden))


def test_lstm_state_fields_and_zeros():
    s = zeros_state(3, 4)
    assert s._fields == ("h", "c")
    assert s.h.shape == (3, 4) and s.c.shape == (3, 4)
    assert not jnp.any(s.h) and not jnp.any(s.c)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_init_params_dtype(dtype):
    p = init_params(jax.random.key(1), 3, 2, dtype=dtype)
    assert all(v.dtype == dtype for v in p.values())


def test_batch_zeros_takes_the_batch_of_like():
    for like in (jnp.ones((3, 7), jnp.int32), jnp.ones((3, 7, 2)), jnp.ones((3, 0, 2))):
        z = batch_zeros(like, 5, jnp.bfloat16)
        assert z.shape == (3, 5) and z.dtype == jnp.bfloat16
        np.testing.assert_array_equal(np.asarray(z, np.float32), 0.0)
