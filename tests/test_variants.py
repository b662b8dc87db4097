"""The LSTM variants of seqlstm/variants.py through `lstm_scan`, against a step-by-step numpy loop
written here, row by row (so variable lengths and `reverse` are checked independently too),
finite differences in float64, and the statistics of the masks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from seqlstm.cell import LSTMState, init_params
from seqlstm.scan import lstm_scan
from seqlstm.variants import NO_RATES, Rates, draw_masks

B, T, D, H, P = 3, 5, 4, 6, 3
LENGTHS = np.array([5, 2, 0])


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _ln(z, scale, bias=0.0):
    mean = z.mean(-1, keepdims=True)
    var = ((z - mean) ** 2).mean(-1, keepdims=True)
    return (z - mean) / np.sqrt(var + 1e-5) * scale + bias


def oracle(p, x, lengths, *, reverse=False, masks=None, rates=NO_RATES):
    """Row by row, step by step, in float64: `(ys [B, T, P], h [B, P], c [B, H])`."""
    p = {k: np.asarray(v, np.float64) for k, v in p.items()}
    x = np.asarray(x, np.float64)
    hid, state = p["bias"].shape[0] // 4, p["recurrent_kernel"].shape[0]
    ys = np.zeros(x.shape[:2] + (state,))
    hs, cs = np.zeros((len(x), state)), np.zeros((len(x), hid))
    for b in range(len(x)):
        h, c = np.zeros(state), np.zeros(hid)
        steps = range(lengths[b])
        for t in reversed(steps) if reverse else steps:
            gates_x, gates_h = [], []
            for g in range(4):
                cols = slice(g * hid, (g + 1) * hid)
                xg, hg = x[b, t], h
                if masks is not None and masks.x is not None:
                    mx = np.asarray(masks.x)
                    xg = xg * (mx[g, b] if mx.ndim == 3 else mx[b])
                if masks is not None and masks.h is not None:
                    hg = hg * np.asarray(masks.h)[g, b]
                gates_x.append(xg @ p["kernel"][:, cols])
                gates_h.append(hg @ p["recurrent_kernel"][:, cols])
            zx, zh = np.concatenate(gates_x), np.concatenate(gates_h)
            if "ln_input_scale" in p:
                zx, zh = _ln(zx, p["ln_input_scale"]), _ln(zh, p["ln_recurrent_scale"])
            zi, zf, zg, zo = np.split(zx + zh + p["bias"], 4)
            if "peephole" in p:
                pi, pf, po = np.split(p["peephole"], 3)
                zi, zf = zi + pi * c, zf + pf * c
            c_new = _sigmoid(zf) * c + _sigmoid(zi) * np.tanh(zg)
            if "peephole" in p:
                zo = zo + po * c_new
            c_read = c_new
            if "ln_cell_scale" in p:
                c_read = _ln(c_new, p["ln_cell_scale"], p["ln_cell_bias"])
            h_new = _sigmoid(zo) * np.tanh(c_read)
            if "proj_kernel" in p:
                h_new = h_new @ p["proj_kernel"]
            if masks is not None and masks.zoneout_c is not None:
                c_new = np.where(np.asarray(masks.zoneout_c)[t, b], c, c_new)
            elif masks is None:
                c_new = rates.zoneout_cell * c + (1 - rates.zoneout_cell) * c_new
            if masks is not None and masks.zoneout_h is not None:
                h_new = np.where(np.asarray(masks.zoneout_h)[t, b], h, h_new)
            elif masks is None:
                h_new = rates.zoneout_hidden * h + (1 - rates.zoneout_hidden) * h_new
            h, c = h_new, c_new
            ys[b, t] = h
        hs[b], cs[b] = h, c
    return ys, hs, cs


def _params(key, **variants):
    """Parameters with every entry random (peepholes and layer-norm gains too)."""
    p = init_params(jax.random.PRNGKey(key), D, H, **variants)
    keys = jax.random.split(jax.random.PRNGKey(key + 100), len(p))
    for k, name in zip(keys, sorted(p)):
        if name not in ("kernel", "recurrent_kernel"):
            p[name] = p[name] + 0.5 * jax.random.normal(k, p[name].shape)
    return p


def _x():
    return jax.random.normal(jax.random.PRNGKey(7), (B, T, D))


VARIANTS = {
    "proj": dict(proj_size=P),
    "peepholes": dict(peepholes=True),
    "layer_norm": dict(layer_norm=True),
    "all": dict(proj_size=P, peepholes=True, layer_norm=True),
}


@pytest.mark.parametrize("name", ["all"])  # each variant's math is in "all"; proj alone: torch
def test_variant_matches_loop_with_lengths_and_reverse(name):
    p, x = _params(1, **VARIANTS[name]), _x()
    for reverse in (False, True):
        ys, state = lstm_scan(p, x, seq_lengths=jnp.asarray(LENGTHS), reverse=reverse)
        want_ys, want_h, want_c = oracle(p, x, LENGTHS, reverse=reverse)
        np.testing.assert_allclose(ys, want_ys, atol=2e-5)
        np.testing.assert_allclose(state.h, want_h, atol=2e-5)
        np.testing.assert_allclose(state.c, want_c, atol=2e-5)
    assert ys.shape == (B, T, P if "proj_size" in VARIANTS[name] else H)


def test_zoneout_evaluation_is_the_papers_expectation_and_training_follows_its_masks():
    p, x = _params(2, proj_size=P), _x()
    rates = Rates(zoneout_cell=0.3, zoneout_hidden=0.6)
    kw = dict(zoneout_cell=0.3, zoneout_hidden=0.6, seq_lengths=jnp.asarray(LENGTHS))
    ys, state = lstm_scan(p, x, **kw)  # no key: evaluation mode
    want = oracle(p, x, LENGTHS, rates=rates)
    np.testing.assert_allclose(ys, want[0], atol=2e-5)
    np.testing.assert_allclose(state.c, want[2], atol=2e-5)
    key = jax.random.PRNGKey(3)
    masks = draw_masks(key, rates, B, T, D, p, jnp.float32)
    ys, state = lstm_scan(p, x, key=key, **kw)
    want = oracle(p, x, LENGTHS, masks=masks)
    np.testing.assert_allclose(ys, want[0], atol=2e-5)
    np.testing.assert_allclose(state.h, want[1], atol=2e-5)
    # One step from a non-zero state: the mean over training draws is the evaluation value.
    state0 = LSTMState(jnp.ones((B, P)), jnp.full((B, H), 2.0))
    one = x[:, :1]

    def train(k):
        return lstm_scan(p, one, state0, zoneout_cell=0.3, zoneout_hidden=0.6, key=k)[1]

    drawn = jax.vmap(train)(jax.random.split(key, 2000))
    expected = lstm_scan(p, one, state0, zoneout_cell=0.3, zoneout_hidden=0.6)[1]
    np.testing.assert_allclose(drawn.c.mean(0), expected.c, atol=0.05)
    np.testing.assert_allclose(drawn.h.mean(0), expected.h, atol=0.05)
    assert float(drawn.c.std(0).min()) > 0.01  # really random in training


@pytest.mark.parametrize("recurrent", [0.0, 0.4], ids=["dropout_only", "recurrent_dropout"])
def test_dropout_masks_are_drawn_once_per_sequence_as_keras_does(recurrent):
    """With recurrent dropout, Keras 3 draws one input and one recurrent mask per gate; with only
    `dropout`, one input mask for all gates (then the fused backward serves it)."""
    p, x = _params(3), _x()
    rates = Rates(dropout=0.5, recurrent_dropout=recurrent)
    key = jax.random.PRNGKey(4)
    masks = draw_masks(key, rates, B, T, D, p, jnp.float32)
    assert masks.x.shape == ((4,) if recurrent else ()) + (B, D)
    kw = dict(dropout=0.5, recurrent_dropout=recurrent, seq_lengths=jnp.asarray(LENGTHS))
    for backward in ("fused", "autodiff"):
        ys, state = lstm_scan(p, x, key=key, backward=backward, **kw)
        want_ys, want_h, want_c = oracle(p, x, LENGTHS, masks=masks)  # same mask at every step
        np.testing.assert_allclose(ys, want_ys, atol=2e-5)
        np.testing.assert_allclose(state.c, want_c, atol=2e-5)
    # The general cell (autodiff), its input projection hoisted out of the loop, and chunked.
    p_peep = _params(3, peepholes=True)
    ys, _ = lstm_scan(p_peep, x, key=key, projection="hoisted", remat_chunk=2, **kw)
    np.testing.assert_allclose(ys, oracle(p_peep, x, LENGTHS, masks=masks)[0], atol=2e-5)
    # Scaled by 1 / (1 - rate); rows differ; another key (training step) gives other masks.
    values = np.unique(np.asarray(masks.x))
    np.testing.assert_allclose(values, [0.0, 2.0])
    rows = np.asarray(masks.x).reshape(-1, B, D)
    assert not np.array_equal(rows[:, 0], rows[:, 1])
    other = draw_masks(jax.random.PRNGKey(5), rates, B, T, D, p, jnp.float32)
    assert not np.array_equal(np.asarray(other.x), np.asarray(masks.x))
    # Evaluation mode (no key) is the plain LSTM.
    np.testing.assert_allclose(lstm_scan(p, x, **kw)[0], oracle(p, x, LENGTHS)[0], atol=2e-5)
    many = draw_masks(key, Rates(dropout=0.3, recurrent_dropout=0.3), 400, 1, 50, p, jnp.float32)
    assert abs(float((many.x == 0).mean()) - 0.3) < 0.02
    assert abs(float((many.h == 0).mean()) - 0.3) < 0.03


def test_fused_backward_with_input_dropout_equals_autodiff():
    p, x = _params(4), _x()
    kw = dict(dropout=0.3, key=jax.random.PRNGKey(1), seq_lengths=jnp.asarray(LENGTHS))

    def loss(p, x, backward):
        ys, state = lstm_scan(p, x, backward=backward, **kw)
        return jnp.sum(ys**2) + jnp.sum(state.c)

    fused = jax.grad(loss, argnums=(0, 1))(p, x, "fused")
    auto = jax.grad(loss, argnums=(0, 1))(p, x, "autodiff")
    for a, b in zip(jax.tree.leaves(fused), jax.tree.leaves(auto)):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_variant_gradients_match_finite_differences_in_float64():
    """Every variant at once, with training masks for both dropouts and both zoneouts."""
    rates = dict(dropout=0.3, recurrent_dropout=0.4, zoneout_cell=0.5, zoneout_hidden=0.3)
    with jax.enable_x64(True):
        p = jax.tree.map(lambda v: v.astype(jnp.float64), _params(5, **VARIANTS["all"]))
        x = _x().astype(jnp.float64)[:, :4]
        lengths = jnp.asarray([4, 2, 0])
        # A non-zero start: layer norm of h @ U at h = 0 has a zero variance, where its higher
        # derivatives (1 / sqrt(epsilon)^k) defeat finite differences, not the gradient.
        h0, c0 = jax.random.normal(jax.random.PRNGKey(8), (2, B, H), jnp.float64)
        state0 = LSTMState(h0[:, :P], c0)

        def f(p, x):
            ys, state = lstm_scan(
                p, x, state0, seq_lengths=lengths, reverse=True, key=jax.random.PRNGKey(6),
                **rates,
            )  # fmt: skip
            return jnp.sum(jnp.sin(ys)) + jnp.sum(state.c * state.h[:, :1])

        # eps 1e-5: layer norm curves sharply, and central differences err by eps^2 f'''.
        check_grads(f, (p, x), order=1, modes=["rev"], eps=1e-5, atol=1e-6, rtol=1e-6)


def test_variants_in_bfloat16_stay_close_to_float32():
    p, x = _params(6, **VARIANTS["all"]), _x()
    kw = dict(seq_lengths=jnp.asarray(LENGTHS), zoneout_cell=0.2)
    ys32, _ = lstm_scan(p, x, **kw)
    ys16, state16 = lstm_scan(p, x, dtype=jnp.bfloat16, **kw)
    assert ys16.dtype == jnp.bfloat16 and state16.c.dtype == jnp.float32
    np.testing.assert_allclose(ys16.astype(jnp.float32), ys32, atol=3e-2)


def test_nan_in_padded_input_steps_reaches_no_gradient():
    """Padded steps are masked before any arithmetic: a NaN there is ignored by every path."""
    x = np.asarray(_x())
    dirty = x.copy()
    for b, n in enumerate(LENGTHS):
        dirty[b, n:] = np.nan
    lengths = jnp.asarray(LENGTHS)
    cases = [
        (_params(8), dict(backward="fused")),
        (_params(8), dict(backward="autodiff", projection="hoisted")),
        (_params(8, proj_size=P, layer_norm=True), dict(recurrent_dropout=0.2)),
    ]
    for p, kw in cases:

        def loss(p, x, kw=kw):
            ys, state = lstm_scan(p, x, seq_lengths=lengths, **kw)
            return jnp.sum(ys) + jnp.sum(state.c)

        clean = jax.grad(loss, argnums=(0, 1))(p, jnp.asarray(np.nan_to_num(dirty)))
        got = jax.grad(loss, argnums=(0, 1))(p, jnp.asarray(dirty))
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(clean)):
            assert np.isfinite(np.asarray(a)).all(), kw
            np.testing.assert_allclose(a, b, atol=1e-6)


def test_bad_arguments_of_the_functional_core_name_themselves():
    p, x = _params(9), _x()
    for kw, name in [
        (dict(dropout=1.0), "dropout"),
        (dict(recurrent_dropout=-0.1), "recurrent_dropout"),
        (dict(zoneout_cell=1.5), "zoneout_cell"),
        (dict(zoneout_hidden="0.1"), "zoneout_hidden"),
        (dict(dtype=jnp.int32), "dtype"),
    ]:
        with pytest.raises(ValueError, match=name):
            lstm_scan(p, x, **kw)
    with pytest.raises(ValueError, match="x must be real"):
        lstm_scan(p, x.astype(jnp.complex64))
    with pytest.raises(ValueError, match="unknown entries"):
        lstm_scan({**p, "peepholes": p["bias"]}, x)
    with pytest.raises(ValueError, match="layer norm needs"):
        lstm_scan({**p, "ln_cell_scale": p["bias"][:H]}, x)
    with pytest.raises(ValueError, match="backend='cudnn'"):
        lstm_scan(_params(9, peepholes=True), x, backend="cudnn")
