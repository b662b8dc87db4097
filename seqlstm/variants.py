"""The LSTM variants other libraries offer, as pure functions: one general step and its scan.

A parameter dict (`seqlstm.cell.init_params`) says which cell it is; each entry beyond the plain
`kernel [D, 4H]`, `recurrent_kernel [H, 4H]`, `bias [4H]` turns one variant on:

  proj_kernel [H, P]      LSTMP (Sak et al. 2014; PyTorch's `proj_size`, `weight_hr.T`):
                          h = (o * tanh(c)) @ proj_kernel is `[B, P]`, the recurrent kernel is
                          `[P, 4H]`; c stays `[B, H]`.
  peephole [3H]           peephole connections (Gers & Schmidhuber 2000; TensorFlow's
                          `use_peepholes`): i and f add `w * c_{t-1}`, o adds `w * c_t`
                          (order i, f, o).
  ln_input_scale [4H],    layer normalisation as in Ba et al. 2016 (section 3.1) and Haste's
  ln_recurrent_scale [4H], LayerNormLSTM: z = LN(x W) * s_x + LN(h U) * s_h + bias, each LN over
  ln_cell_scale [H],      all 4H pre-activations, and h = o * tanh(LN(c) * s_c + b_c); the
  ln_cell_bias [H]        carried c is not normalised. LN has no own shift for the gates (the
                          bias is one) and epsilon `LN_EPSILON`.

The stochastic options are `Rates`, applied in training mode only (a PRNG key is given):

  dropout, recurrent_dropout   Keras 3's variational dropout (Gal & Ghahramani 2016): masks drawn
                               once per sequence, scaled by 1 / (1 - rate). As in Keras, with
                               `recurrent_dropout > 0` every gate has its own input mask and its
                               own recurrent mask (`[4, B, .]`); with only `dropout`, one input
                               mask `[B, D]` serves all four gates.
  zoneout_cell, zoneout_hidden zoneout (Krueger et al. 2016): each unit of c (and of h) keeps its
                               previous value with this probability, per row and step; at
                               evaluation both become the expectation, rate * old + (1 - rate) *
                               new, as in the paper.

`seqlstm.scan.lstm_scan` sends the plain cell (and the plain cell with only input `dropout`, a
mask applied to x before the recurrence) to its fused backward pass; every other combination runs
`variant_segment` here, differentiated by JAX's autodiff.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from seqlstm.cell import LSTMState

PLAIN_KEYS = frozenset({"kernel", "recurrent_kernel", "bias"})
LN_KEYS = ("ln_input_scale", "ln_recurrent_scale", "ln_cell_scale", "ln_cell_bias")
VARIANT_KEYS = frozenset({"proj_kernel", "peephole", *LN_KEYS})
LN_EPSILON = 1e-5


class Rates(NamedTuple):
    """The stochastic options' rates, each in [0, 1)."""

    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    zoneout_cell: float = 0.0
    zoneout_hidden: float = 0.0


NO_RATES = Rates()


class Masks(NamedTuple):
    """Random masks of one sequence in training mode (None where the rate is zero).

    Attributes:
      x: input dropout, scaled: `[B, D]`, or `[4, B, D]` (one per gate) with recurrent dropout.
      h: recurrent dropout, scaled, one per gate: `[4, B, P]` (P: the size of h).
      zoneout_c: bool `[T, B, H]`, True where a unit of c keeps its previous value.
      zoneout_h: bool `[T, B, P]`, the same for h.
    """

    x: jax.Array | None = None
    h: jax.Array | None = None
    zoneout_c: jax.Array | None = None
    zoneout_h: jax.Array | None = None


def is_plain(params: dict) -> bool:
    """True for the plain cell's parameters (no variant entries)."""
    return set(params) == PLAIN_KEYS


def check_params(params: dict) -> None:
    """Raises ValueError for entries that are neither plain nor a complete variant."""
    unknown = set(params) - PLAIN_KEYS - VARIANT_KEYS
    missing = PLAIN_KEYS - set(params)
    if unknown or missing:
        raise ValueError(
            f"params has unknown entries {sorted(unknown)} or lacks {sorted(missing)}; expected "
            f"{sorted(PLAIN_KEYS)} and optionally {sorted(VARIANT_KEYS)}"
        )
    ln = [k for k in LN_KEYS if k in params]
    if ln and len(ln) != len(LN_KEYS):
        raise ValueError(f"layer norm needs all of {list(LN_KEYS)} in params, got {ln}")


def sizes(params: dict) -> tuple[int, int]:
    """`(hidden H, state size P)`: the sizes of c and of h (P = H without a projection)."""
    return params["bias"].shape[0] // 4, params["recurrent_kernel"].shape[0]


def draw_masks(
    key: jax.Array, rates: Rates, batch: int, time: int, in_features: int, params: dict, dtype
) -> Masks:
    """Draws the masks of one batch of sequences in training mode.

    Args:
      key: PRNG key; one per training step (a different key, different masks).
      rates: the `Rates`.
      batch, time, in_features: the input's `[B, T, D]`.
      params: the cell's parameters (for H and P).
      dtype: dtype of the dropout masks (the input's).

    Returns:
      `Masks`; each row of a dropout mask is drawn independently and is constant over time.
    """
    hidden, state = sizes(params)
    k_x, k_h, k_c, k_zh = jax.random.split(key, 4)

    def dropout_mask(k, rate, shape):
        return jax.random.bernoulli(k, 1.0 - rate, shape).astype(dtype) / (1.0 - rate)

    per_gate = (4,) if rates.recurrent_dropout else ()
    return Masks(
        x=dropout_mask(k_x, rates.dropout, per_gate + (batch, in_features))
        if rates.dropout
        else None,
        h=dropout_mask(k_h, rates.recurrent_dropout, (4, batch, state))
        if rates.recurrent_dropout
        else None,
        zoneout_c=jax.random.bernoulli(k_c, rates.zoneout_cell, (time, batch, hidden))
        if rates.zoneout_cell
        else None,
        zoneout_h=jax.random.bernoulli(k_zh, rates.zoneout_hidden, (time, batch, state))
        if rates.zoneout_hidden
        else None,
    )


def layer_norm(z: jax.Array, scale: jax.Array, bias: jax.Array | None = None) -> jax.Array:
    """Normalises `z` over its last axis, times `scale` (plus `bias`)."""
    mean = jnp.mean(z, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(z - mean), axis=-1, keepdims=True)
    out = (z - mean) * jax.lax.rsqrt(var + LN_EPSILON) * lead(scale.astype(z.dtype), z.ndim)
    return out if bias is None else out + lead(bias.astype(z.dtype), z.ndim)


def lead(v: jax.Array, ndim: int) -> jax.Array:
    """`v: [n]` as `[1, ..., 1, n]` of rank `ndim` (explicit broadcasting)."""
    return v.reshape((1,) * (ndim - 1) + v.shape)


def masked_matmul(a: jax.Array, mask: jax.Array | None, w: jax.Array, acc) -> jax.Array:
    """`(a * mask) @ w` accumulated in `acc`, for `a: [..., B, n]`, `w: [n, 4H]`.

    `mask` is None, `[B, n]` (one for all gates), or `[4, B, n]`: gate k reads `a * mask[k]`
    (Keras's per-gate masks).
    """
    if mask is None:
        return jnp.matmul(a, w, preferred_element_type=acc)
    mask = mask.astype(a.dtype)
    if mask.ndim == 2:  # the same mask at every step (a may be time-major [T, B, n])
        mask = mask.reshape((1,) * (a.ndim - 2) + mask.shape)
        return jnp.matmul(a * mask, w, preferred_element_type=acc)
    n, h4 = w.shape
    w4 = w.reshape(n, 4, h4 // 4)
    mask = mask.reshape((1,) * (a.ndim - 2) + mask.shape)
    masked = a[..., None, :, :] * mask  # [..., 4, B, n]: gate k's copy of a
    z = jnp.einsum("...gbn,ngh->...bgh", masked, w4, preferred_element_type=acc)
    return z.reshape(z.shape[:-2] + (h4,))


def input_gates(params: dict, x: jax.Array, mask: jax.Array | None, dtype, acc) -> jax.Array:
    """The input's share of the pre-activations, `x @ kernel` (layer-normalised with layer
    norm), for `x: [..., B, D]`; without the bias."""
    z = masked_matmul(x.astype(dtype), mask, params["kernel"].astype(dtype), acc)
    if "ln_input_scale" in params:
        z = layer_norm(z, params["ln_input_scale"])
    return z


def zone(previous: jax.Array, new: jax.Array, keep) -> jax.Array:
    """Zoneout: `previous` where `keep` (a bool mask) is True; for a float rate (evaluation), the
    expectation `keep * previous + (1 - keep) * new`; `new` when `keep` is None."""
    if keep is None:
        return new
    if isinstance(keep, jax.Array) and keep.dtype == jnp.bool_:
        return jnp.where(keep, previous, new)
    return keep * previous + (1.0 - keep) * new


def recurrent_step(
    params: dict,
    state: LSTMState,
    zx: jax.Array,
    *,
    dtype,
    h_mask: jax.Array | None = None,
    keep_c=None,
    keep_h=None,
) -> LSTMState:
    """One step of the general cell given the input's share `zx: [B, 4H]` (see `input_gates`).

    Args:
      params: the cell's parameters (module docstring).
      state: `LSTMState(h [B, P], c [B, H])` in the accumulation dtype.
      zx: `input_gates(params, x_t, ...)`.
      dtype: matmul input dtype.
      h_mask: recurrent dropout masks `[4, B, P]` or None.
      keep_c, keep_h: zoneout: bool masks (training), float rates (evaluation) or None.

    Returns:
      The new `LSTMState`.
    """
    acc = state.c.dtype
    zh = masked_matmul(state.h.astype(dtype), h_mask, params["recurrent_kernel"].astype(dtype), acc)
    if "ln_recurrent_scale" in params:
        zh = layer_norm(zh, params["ln_recurrent_scale"])
    zi, zf, zg, zo = jnp.split(zx + zh + params["bias"].astype(acc)[None, :], 4, axis=-1)
    c = state.c
    if "peephole" in params:
        p_i, p_f, p_o = (p[None, :] for p in jnp.split(params["peephole"].astype(acc), 3))
        zi, zf = zi + p_i * c, zf + p_f * c
    i, f, g = jax.nn.sigmoid(zi), jax.nn.sigmoid(zf), jnp.tanh(zg)
    c_new = f * c + i * g
    if "peephole" in params:
        zo = zo + p_o * c_new
    c_read = c_new
    if "ln_cell_scale" in params:
        c_read = layer_norm(c_new, params["ln_cell_scale"], params["ln_cell_bias"])
    h_new = jax.nn.sigmoid(zo) * jnp.tanh(c_read)
    if "proj_kernel" in params:
        h_new = jnp.matmul(
            h_new.astype(dtype), params["proj_kernel"].astype(dtype), preferred_element_type=acc
        )
    return LSTMState(zone(state.h, h_new, keep_h), zone(c, c_new, keep_c))


def lstm_step(
    params: dict,
    state: LSTMState,
    x: jax.Array,
    *,
    rates: Rates = NO_RATES,
    masks: Masks | None = None,
    t: int | jax.Array = 0,
    dtype=None,
) -> LSTMState:
    """One step of any variant: training mode with `masks`, evaluation mode without.

    Args:
      params: the cell's parameters (module docstring).
      state: previous `LSTMState(h [B, P], c [B, H])`.
      x: the step's input `[B, D]`.
      rates: the `Rates` (for zoneout's expectation in evaluation mode).
      masks: `draw_masks(...)` of the sequence (training mode), or None (evaluation mode).
      t: the step's index into `masks.zoneout_*`.
      dtype: matmul input dtype; None promotes `x` and the kernel. The state runs in at least
        float32.

    Returns:
      The new `LSTMState` (h is the step's output).
    """
    if dtype is None:
        dtype = jnp.result_type(x.dtype, params["kernel"].dtype)
    acc = jnp.promote_types(dtype, jnp.float32)
    state = LSTMState(state.h.astype(acc), state.c.astype(acc))
    keep_c, keep_h = eval_keep(rates) if masks is None else (None, None)
    masks = masks if masks is not None else Masks()
    zx = input_gates(params, x, masks.x, dtype, acc)
    if masks.zoneout_c is not None:
        keep_c = masks.zoneout_c[t]
    if masks.zoneout_h is not None:
        keep_h = masks.zoneout_h[t]
    return recurrent_step(
        params, state, zx, dtype=dtype, h_mask=masks.h, keep_c=keep_c, keep_h=keep_h
    )


def eval_keep(rates: Rates) -> tuple[float | None, float | None]:
    """Zoneout's weights of the previous state in evaluation mode: the rates (or None)."""
    return rates.zoneout_cell or None, rates.zoneout_hidden or None


def variant_segment(params, xs, h0, c0, valid, *, rates, masks, projection, reverse, unroll, dtype):
    """The general cell's recurrence over `xs = (x_tm [T, B, D], zoneout_c, zoneout_h)` (the
    zoneout masks time-major or None); returns `(ys [T, B, P], h_T, c_T)`.

    Padded steps (`valid` False) carry the state and output zeros, as in `seqlstm.scan`.
    """
    x_tm, zc, zh = xs
    acc = h0.dtype
    training = masks is not None
    masks = masks if training else Masks()
    keep_c, keep_h = (None, None) if training else eval_keep(rates)
    if projection == "hoisted":
        zxs = input_gates(params, x_tm, masks.x, dtype, acc)
        project = lambda z: z  # noqa: E731
    else:
        zxs = x_tm
        project = lambda x_t: input_gates(params, x_t, masks.x, dtype, acc)  # noqa: E731

    def step(state, inputs):
        zx, v_t, zc_t, zh_t = inputs
        new = recurrent_step(
            params,
            state,
            project(zx),
            dtype=dtype,
            h_mask=masks.h,
            keep_c=keep_c if zc_t is None else zc_t,
            keep_h=keep_h if zh_t is None else zh_t,
        )
        if v_t is None:
            return new, new.h.astype(dtype)
        keep = v_t[:, None]
        h = jnp.where(keep, new.h, state.h)
        c = jnp.where(keep, new.c, state.c)
        return LSTMState(h, c), jnp.where(keep, new.h, jnp.zeros_like(new.h)).astype(dtype)

    final, ys = jax.lax.scan(
        step, LSTMState(h0, c0), (zxs, valid, zc, zh), reverse=reverse, unroll=unroll
    )
    return ys, final.h, final.c
