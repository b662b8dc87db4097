"""The cuDNN LSTM kernel through `jax.experimental.rnn`, for `lstm_scan(backend="cudnn")`.

cuDNN takes PyTorch's layout, packed flat: for each (layer, direction) `W_ih [4H, D]` then
`W_hh [4H, H]`, then for each the biases `b_ih [4H]`, `b_hh [4H]`. seqlstm's one bias goes into
`b_ih` and `b_hh` is zero. The kernel needs every length >= 1, so lengths are clamped to one and
zero-length rows are restored afterwards (zero outputs, the initial state). A reversed layer runs
forward over each row's valid steps flipped in place (padding stays on the right).

This path runs only on a CUDA GPU, in float32. It is exercised on CPU by substituting
`jax.experimental.rnn.lstm_ref` for the kernel (tests/test_cudnn.py); GPU timing is unverified.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from seqlstm.cell import LSTMState


def pack_weights(layers: list[dict]) -> jax.Array:
    """Packs seqlstm parameter dicts into cuDNN's flat float32 weight vector.

    Args:
      layers: one `{"kernel", "recurrent_kernel", "bias"}` per (layer, direction), in cuDNN's
        order: layer 0 forward, layer 0 backward (if bidirectional), layer 1 forward, ...

    Returns:
      `float32[num_params]`, as `jax.experimental.rnn.lstm` takes.
    """
    weights, biases = [], []
    for p in layers:
        weights += [p["kernel"].T.reshape(-1), p["recurrent_kernel"].T.reshape(-1)]
        biases += [p["bias"].reshape(-1), jnp.zeros_like(p["bias"]).reshape(-1)]
    return jnp.concatenate(weights + biases).astype(jnp.float32)


def flip_valid(x: jax.Array, lengths: jax.Array) -> jax.Array:
    """Reverses each row's first `lengths[b]` steps of `x: [B, T, ...]`, padding left in place."""
    time = x.shape[1]
    t = jnp.arange(time)[None, :]
    index = jnp.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)
    index = index.reshape(index.shape + (1,) * (x.ndim - 2))
    return jnp.take_along_axis(x, index, axis=1)


def _kernel(x, h0, c0, weights, lengths, input_size, hidden_size):
    from jax.experimental import rnn

    return rnn.lstm(
        x,
        h0,
        c0,
        weights,
        lengths,
        input_size=input_size,
        hidden_size=hidden_size,
        num_layers=1,
        dropout=0.0,
        bidirectional=False,
    )


def cudnn_lstm(
    params: dict,
    x: jax.Array,
    initial_state: LSTMState,
    *,
    seq_lengths: jax.Array | None = None,
    reverse: bool = False,
    kernel=None,
) -> tuple[jax.Array, LSTMState]:
    """One LSTM layer on the cuDNN kernel, with `lstm_scan`'s semantics.

    Args:
      params: seqlstm parameters.
      x: `[B, T, D]`.
      initial_state: `LSTMState`, `[B, H]` each.
      seq_lengths: `int32[B]` or None (all full length).
      reverse: run each row from its last valid step to step 0.
      kernel: the kernel function (defaults to cuDNN through `jax.experimental.rnn.lstm`); tests
        pass a reference with the same signature.

    Returns:
      `(outputs [B, T, H], LSTMState)` in float32.
    """
    kernel = kernel or _kernel
    batch, time, in_features = x.shape
    hidden = params["recurrent_kernel"].shape[0]
    x = x.astype(jnp.float32)
    h0 = initial_state.h.astype(jnp.float32)
    c0 = initial_state.c.astype(jnp.float32)
    lengths = jnp.full((batch,), time, jnp.int32) if seq_lengths is None else seq_lengths
    lengths = lengths.astype(jnp.int32)
    if reverse:
        x = flip_valid(x, lengths)
    y, h_n, c_n = kernel(
        x, h0[None], c0[None], pack_weights([params]), jnp.maximum(lengths, 1), in_features, hidden
    )
    if reverse:
        y = flip_valid(y, lengths)
    valid = jnp.arange(time)[None, :] < lengths[:, None]
    y = jnp.where(valid[:, :, None], y, jnp.zeros_like(y))
    empty = (lengths == 0)[:, None]
    state = LSTMState(jnp.where(empty, h0, h_n[0]), jnp.where(empty, c0, c_n[0]))
    return y, state
