"""seqlstm/fused_backward.py: the custom VJP equals JAX's autodiff of the scan."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import seqlstm
from seqlstm.cell import LSTMState, init_params
from seqlstm.scan import lstm_scan

B, T, D, H = 4, 7, 3, 5


def _loss(backward, lengths, reverse):
    def f(params, x, h0, c0):
        y, s = lstm_scan(
            params,
            x,
            LSTMState(h0, c0),
            seq_lengths=lengths,
            reverse=reverse,
            projection="per_step",
            backward=backward,
        )
        return (
            jnp.sum(jnp.sin(y) * jnp.arange(H)[None, None, :]) + jnp.sum(s.h * s.c) + jnp.sum(s.c)
        )

    return f


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("lengths", [None, (7, 3, 0, 1)])
def test_fused_gradients_equal_autodiff(reverse, lengths):
    k = jax.random.split(jax.random.key(0), 4)
    params = init_params(k[0], D, H)
    params["bias"] = jax.random.normal(k[3], (4 * H,)) * 0.2
    x = jax.random.normal(k[1], (B, T, D))
    h0, c0 = jax.random.normal(k[2], (2, B, H))
    lengths = None if lengths is None else jnp.array(lengths)
    args = (params, x, h0, c0)
    fused = jax.grad(_loss("fused", lengths, reverse), argnums=(0, 1, 2, 3))(*args)
    auto = jax.grad(_loss("autodiff", lengths, reverse), argnums=(0, 1, 2, 3))(*args)
    for a, b in zip(jax.tree.leaves(fused), jax.tree.leaves(auto)):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-6)
    # And the forward values are the same computation.
    np.testing.assert_allclose(
        _loss("fused", lengths, reverse)(*args),
        _loss("autodiff", lengths, reverse)(*args),
        rtol=1e-6,
    )


def test_fused_second_use_under_jit_and_vmap_free_batch():
    layer = seqlstm.LSTM(D, H, return_sequences=True, rngs=nnx.Rngs(0))
    auto = seqlstm.LSTM(D, H, return_sequences=True, backward="autodiff", rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (B, T, D))

    @nnx.jit
    def grads(model, x):
        return nnx.grad(lambda m: jnp.sum(m(x) ** 2))(model)

    g1, g2 = grads(layer, x), grads(auto, x)
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-6)


def test_unknown_backward_raises():
    with pytest.raises(ValueError, match=r"backward must be one of .*got 'cudnn'"):
        seqlstm.LSTM(D, H, backward="cudnn", rngs=nnx.Rngs(0))
