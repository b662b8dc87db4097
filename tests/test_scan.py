"""seqlstm/scan.py: the scanned recurrence against a step-by-step loop and finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from seqlstm.cell import LSTMState, init_params, lstm_cell
from seqlstm.scan import choose_projection, lstm_scan

B, T, D, H = 3, 6, 4, 5


def _inputs(seed=0, dtype=jnp.float32):
    k = jax.random.split(jax.random.key(seed), 4)
    params = init_params(k[0], D, H, dtype=dtype)
    params["bias"] = jax.random.normal(k[3], (4 * H,), dtype) * 0.1
    x = jax.random.normal(k[1], (B, T, D), dtype)
    h0, c0 = jax.random.normal(k[2], (2, B, H), dtype) * 0.5
    return params, x, LSTMState(h0, c0)


def loop_reference(params, x, state, lengths=None, reverse=False):
    """Each row on its own, one `lstm_cell` call per valid step, in plain Python."""
    x, lengths = np.asarray(x), np.full(x.shape[0], x.shape[1]) if lengths is None else lengths
    outputs = np.zeros(x.shape[:2] + (H,), np.float32)
    hs, cs = [], []
    for b in range(x.shape[0]):
        s = LSTMState(state.h[b : b + 1], state.c[b : b + 1])
        steps = range(lengths[b])
        for t in reversed(steps) if reverse else steps:
            s = lstm_cell(params, s, jnp.asarray(x[b : b + 1, t]))
            outputs[b, t] = np.asarray(s.h[0])
        hs.append(s.h[0])
        cs.append(s.c[0])
    return outputs, LSTMState(np.stack(hs), np.stack(cs))


@pytest.mark.parametrize("projection", ["hoisted", "per_step"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("lengths", [None, (6, 2, 0)])
def test_scan_equals_step_loop(projection, reverse, lengths):
    params, x, s0 = _inputs()
    lengths = None if lengths is None else np.array(lengths)
    want_y, want_s = loop_reference(params, x, s0, lengths, reverse)
    got_y, got_s = lstm_scan(
        params,
        x,
        s0,
        seq_lengths=None if lengths is None else jnp.asarray(lengths),
        reverse=reverse,
        projection=projection,
    )
    np.testing.assert_allclose(got_y, want_y, atol=1e-6)
    np.testing.assert_allclose(got_s.h, want_s.h, atol=1e-6)
    np.testing.assert_allclose(got_s.c, want_s.c, atol=1e-6)


@pytest.mark.parametrize("unroll", [2, 4])
def test_unroll_changes_nothing(unroll):
    params, x, s0 = _inputs(1)
    lengths = jnp.array([5, 6, 1])
    y1, s1 = lstm_scan(params, x, s0, seq_lengths=lengths)
    y2, s2 = lstm_scan(params, x, s0, seq_lengths=lengths, unroll=unroll)
    np.testing.assert_allclose(y1, y2, atol=1e-6)
    np.testing.assert_allclose(s1.c, s2.c, atol=1e-6)


def test_zero_initial_state_is_default():
    params, x, _ = _inputs(2)
    zeros = jnp.zeros((B, H))
    y1, _ = lstm_scan(params, x)
    y2, _ = lstm_scan(params, x, LSTMState(zeros, zeros))
    np.testing.assert_array_equal(y1, y2)


@pytest.mark.parametrize("reverse", [False, True])
def test_padding_invariance(reverse):
    """Appending padding steps of any value never changes outputs or states."""
    params, x, s0 = _inputs(3)
    lengths = jnp.array([6, 3, 0])
    y, s = lstm_scan(params, x, s0, seq_lengths=lengths, reverse=reverse)
    junk = jax.random.normal(jax.random.key(9), (B, 4, D)) * 100
    y_pad, s_pad = lstm_scan(
        params, jnp.concatenate([x, junk], axis=1), s0, seq_lengths=lengths, reverse=reverse
    )
    np.testing.assert_allclose(y_pad[:, :T], y, atol=1e-6)
    np.testing.assert_array_equal(y_pad[:, T:], 0.0)
    np.testing.assert_allclose(s_pad.h, s.h, atol=1e-6)
    np.testing.assert_allclose(s_pad.c, s.c, atol=1e-6)
    # And junk inside a row's padding region changes nothing either.
    x2 = x.at[1, 3:].set(55.0)
    y2, s2 = lstm_scan(params, x2, s0, seq_lengths=lengths, reverse=reverse)
    np.testing.assert_allclose(y2, y, atol=1e-6)
    np.testing.assert_allclose(s2.c, s.c, atol=1e-6)


def test_length_zero_row_returns_initial_state_with_finite_gradients():
    params, x, s0 = _inputs(4)
    lengths = jnp.array([0, 6, 0])

    def loss(params, x, s0):
        y, s = lstm_scan(params, x, s0, seq_lengths=lengths)
        return jnp.sum(y**2) + jnp.sum(s.h * s.c)

    y, s = lstm_scan(params, x, s0, seq_lengths=lengths)
    np.testing.assert_array_equal(y[0], 0.0)
    np.testing.assert_array_equal(s.h[0], s0.h[0])
    np.testing.assert_array_equal(s.c[2], s0.c[2])
    grads = jax.grad(loss, argnums=(0, 1, 2))(params, x, s0)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    # No gradient flows into a length-0 row's inputs; its initial state passes straight through.
    np.testing.assert_array_equal(grads[1][0], 0.0)
    np.testing.assert_allclose(grads[2].h[0], s0.c[0], atol=1e-6)


@pytest.mark.parametrize(
    "projection,backward",
    [("hoisted", "autodiff"), ("per_step", "autodiff"), ("per_step", "fused")],
)
@pytest.mark.parametrize("reverse", [False, True])
def test_gradients_match_finite_differences(projection, backward, reverse):
    with jax.enable_x64(True):
        params, x, s0 = _inputs(5, dtype=jnp.float64)
        lengths = jnp.array([6, 4, 1])

        def f(params, x, h0, c0):
            y, s = lstm_scan(
                params,
                x,
                LSTMState(h0, c0),
                seq_lengths=lengths,
                reverse=reverse,
                projection=projection,
                backward=backward,
            )
            return jnp.sum(jnp.sin(y)) + jnp.sum(s.h * s.c)

        check_grads(f, (params, x, s0.h, s0.c), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


def test_choose_projection_by_backend():
    assert choose_projection("cpu") == "per_step"
    assert choose_projection("gpu") == "hoisted"
    assert choose_projection("tpu") == "hoisted"


def test_unknown_projection_raises():
    params, x, _ = _inputs()
    with pytest.raises(ValueError, match="projection"):
        lstm_scan(params, x, projection="fused")


@pytest.mark.parametrize("projection", ["hoisted", "per_step"])
def test_bfloat16_mixed_precision(projection):
    """bfloat16 matmuls, float32 parameters, gates and state: close to float32, dtypes kept."""
    params, x, s0 = _inputs(6)
    lengths = jnp.array([6, 3, 0])
    y32, s32 = lstm_scan(params, x, s0, seq_lengths=lengths, projection=projection)
    y16, s16 = lstm_scan(
        params, x, s0, seq_lengths=lengths, projection=projection, dtype=jnp.bfloat16
    )
    assert y16.dtype == jnp.bfloat16
    assert s16.h.dtype == jnp.float32 and s16.c.dtype == jnp.float32
    np.testing.assert_allclose(y16.astype(jnp.float32), y32, atol=3e-2)
    np.testing.assert_allclose(s16.c, s32.c, atol=3e-2)

    def loss(params, backward):
        y, s = lstm_scan(
            params,
            x,
            s0,
            seq_lengths=lengths,
            projection=projection,
            backward=backward,
            dtype=jnp.bfloat16,
        )
        return jnp.sum(y.astype(jnp.float32) ** 2) + jnp.sum(s.c)

    g = jax.grad(loss)(params, "fused")
    g_ref = jax.grad(loss)(params, "autodiff")
    g32 = jax.grad(
        lambda p: (
            jnp.sum(lstm_scan(p, x, s0, seq_lengths=lengths)[0] ** 2)
            + jnp.sum(lstm_scan(p, x, s0, seq_lengths=lengths)[1].c)
        )
    )(params)
    for name in params:
        assert g[name].dtype == jnp.float32
        scale = float(jnp.max(jnp.abs(g32[name])))
        np.testing.assert_allclose(g[name], g32[name], atol=0.05 * scale)
        np.testing.assert_allclose(g[name], g_ref[name], atol=0.05 * scale)


@pytest.mark.parametrize("backward", ["fused", "autodiff"])
@pytest.mark.parametrize("reverse", [False, True])
def test_remat_chunks_change_values_nothing(backward, reverse):
    params, x, s0 = _inputs(7)
    lengths = jnp.array([6, 5, 0])

    def f(params, chunk):
        y, s = lstm_scan(
            params,
            x,
            s0,
            seq_lengths=lengths,
            reverse=reverse,
            backward=backward,
            remat_chunk=chunk,
        )
        return jnp.sum(jnp.sin(y)) + jnp.sum(s.h * s.c)

    np.testing.assert_allclose(f(params, 4), f(params, None), rtol=1e-6)  # 6 = 4 + 2 (padded)
    g, g_ref = jax.grad(f)(params, 4), jax.grad(f)(params, None)
    for name in params:
        np.testing.assert_allclose(g[name], g_ref[name], atol=1e-6)


def test_remat_chunks_cut_training_memory():
    params = init_params(jax.random.key(0), 16, 16)
    x = jax.ShapeDtypeStruct((4, 1024, 16), jnp.float32)

    def temp_bytes(chunk):
        grad = jax.jit(jax.grad(lambda p, x: jnp.sum(lstm_scan(p, x, remat_chunk=chunk)[0])))
        analysis = grad.lower(params, x).compile().memory_analysis()
        if analysis is None:
            pytest.skip("this backend reports no memory analysis")
        return analysis.temp_size_in_bytes

    assert temp_bytes(32) < temp_bytes(None) / 3


@pytest.mark.parametrize("bad", [0, -2, 1.5])
def test_bad_remat_chunk_raises(bad):
    params, x, _ = _inputs()
    with pytest.raises(ValueError, match=f"remat_chunk must be None or a positive int, got {bad}"):
        lstm_scan(params, x, remat_chunk=bad)
