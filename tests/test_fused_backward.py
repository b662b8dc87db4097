"""seqlstm/fused_backward.py: the custom VJP equals JAX's autodiff of the scan."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import seqlstm
from seqlstm import fused_backward
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


@pytest.mark.parametrize("isolate", [True, False])
def test_both_ways_of_reading_the_backward_inputs(monkeypatch, isolate):
    """The backward loop reads its residuals through a `lax.cond` on CPU and directly elsewhere
    (`isolate_reads`); both give autodiff's gradients, masked and reversed."""
    monkeypatch.setattr(fused_backward, "isolate_reads", lambda: isolate)
    k = jax.random.split(jax.random.key(3), 4)
    params = init_params(k[0], D, H)
    x_tm = jax.random.normal(k[1], (T, B, D))
    h0, c0 = jax.random.normal(k[2], (2, B, H))
    valid = jnp.arange(T)[:, None] < jnp.array([7, 3, 0, 1])[None, :]
    f32 = jnp.dtype("float32")

    def loss(kernel, recurrent, bias, x_tm, h0, c0):
        ys, h, c = fused_backward.fused_lstm(
            kernel, recurrent, bias, x_tm, h0, c0, valid, True, 1, f32
        )
        return jnp.sum(jnp.sin(ys)) + jnp.sum(h * c)

    def reference(kernel, recurrent, bias, x_tm, h0, c0):
        p = {"kernel": kernel, "recurrent_kernel": recurrent, "bias": bias}
        y, s = lstm_scan(
            p,
            jnp.swapaxes(x_tm, 0, 1),
            LSTMState(h0, c0),
            seq_lengths=jnp.array([7, 3, 0, 1]),
            reverse=True,
            backward="autodiff",
        )
        return jnp.sum(jnp.sin(y)) + jnp.sum(s.h * s.c)

    args = (params["kernel"], params["recurrent_kernel"], params["bias"], x_tm, h0, c0)
    got = jax.grad(loss, argnums=tuple(range(6)))(*args)
    want = jax.grad(reference, argnums=tuple(range(6)))(*args)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-6)


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


EXPLICIT_SHARDING = """
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
from seqlstm.cell import init_params
from seqlstm.scan import lstm_scan

params = init_params(jax.random.key(0), 3, 5)
x = jax.random.normal(jax.random.key(1), (8, 7, 3))
lengths = jnp.array([7, 3, 0, 1, 7, 5, 2, 6])

def loss(params, x, lengths, backward, reverse):
    y, s = lstm_scan(params, x, seq_lengths=lengths, backward=backward, reverse=reverse)
    return jnp.sum(jnp.sin(y)) + jnp.sum(s.h * s.c)

for axis_type in (AxisType.Explicit, AxisType.Auto):
    mesh = jax.make_mesh((4,), ("data",), axis_types=(axis_type,))
    rows = NamedSharding(mesh, P("data"))
    replicated = jax.device_put(params, NamedSharding(mesh, P()))
    args = (jax.device_put(x, rows), jax.device_put(lengths, rows))
    for reverse in (False, True):
        grad = jax.jit(jax.grad(loss, (0, 1)), static_argnums=(3, 4))
        got = grad(replicated, *args, "fused", reverse)
        want = jax.grad(loss, (0, 1))(params, x, lengths, "autodiff", reverse)
        if axis_type == AxisType.Explicit:
            assert got[0]["kernel"].sharding.spec == P(None, None), got[0]["kernel"].sharding
            assert got[1].sharding.spec == P("data", None, None), got[1].sharding
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6, rtol=1e-6)
        # Each device works on its own rows: nothing gathers the batch (only the weight
        # gradients are summed over devices).
        hlo = grad.lower(replicated, *args, "fused", reverse).compile().as_text()
        assert "all-gather" not in hlo, (axis_type, reverse)
        assert "all-reduce" in hlo, (axis_type, reverse)
print("OK")
"""


def test_fused_gradients_with_a_sharded_batch():
    """A batch sharded over 4 devices, with `AxisType.Explicit` (the default of `jax.make_mesh`)
    and `AxisType.Auto` (the train stack's meshes): gradients equal one device's autodiff, the
    weight gradients are summed over devices (explicit: replicated, input gradient keeps the
    batch sharding), and no device gathers the batch."""
    env = dict(
        os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=4"
    )
    proc = subprocess.run(
        [sys.executable, "-c", EXPLICIT_SHARDING], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("OK")
