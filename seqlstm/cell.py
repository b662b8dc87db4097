"""One LSTM step: the gate math, `LSTMState(h, c)` and Keras-default initialisers.

Gate order is i, f, g, o (input, forget, cell candidate, output): the order of Keras and of
PyTorch, so weights move between the three without permutation.

Parameters are a plain dict so the functional core works under Linen, Equinox or bare JAX:

  kernel:            [in_features, 4 * hidden]   (Keras `kernel`, PyTorch `weight_ih.T`)
  recurrent_kernel:  [hidden, 4 * hidden]        (Keras `recurrent_kernel`, PyTorch `weight_hh.T`)
  bias:              [4 * hidden]                (Keras `bias`, PyTorch `bias_ih + bias_hh`)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class LSTMState(NamedTuple):
    """The recurrent state of an LSTM, named so no one mixes up (h, c) and (c, h).

    Attributes:
      h: hidden state (the layer's output at the last step), `[batch, hidden]`.
      c: cell state, `[batch, hidden]`.
    """

    h: jax.Array
    c: jax.Array


def zeros_state(batch: int, hidden: int, dtype=jnp.float32) -> LSTMState:
    """An all-zero `LSTMState` of shape `[batch, hidden]`, Keras's and PyTorch's default."""
    z = jnp.zeros((batch, hidden), dtype)
    return LSTMState(h=z, c=z)


def batch_zeros(like: jax.Array, width: int, dtype=jnp.float32) -> jax.Array:
    """Zeros `[batch, width]` for the batch of `like` (`[batch, ...]`, at least 2-D), sharded
    like `like` along the batch.

    Under explicit sharding a fresh `jnp.zeros` is replicated, and a replicated initial state
    makes every step of a recurrence gather the new state from all devices.
    """
    if 0 in like.shape[1:]:  # nothing to take the batch from (e.g. zero steps)
        return jnp.zeros((like.shape[0], width), dtype)
    first = like[(slice(None), slice(0, 1)) + (0,) * (like.ndim - 2)]  # [batch, 1]
    return jnp.broadcast_to(jnp.zeros_like(first, dtype=dtype), (like.shape[0], width))


def gate_update(z: jax.Array, c: jax.Array) -> LSTMState:
    """Applies the LSTM gate nonlinearities to fused pre-activations.

    Args:
      z: pre-activations of the four gates, `[batch, 4 * hidden]`, order i, f, g, o.
      c: previous cell state, `[batch, hidden]`.

    Returns:
      The new `LSTMState`: c' = sigmoid(f) * c + sigmoid(i) * tanh(g), h' = sigmoid(o) * tanh(c').
    """
    i, f, g, o = gate_activations(z)
    c_new = f * c + i * g
    h_new = o * jnp.tanh(c_new)
    return LSTMState(h=h_new, c=c_new)


def gate_activations(z: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """`(sigmoid(i), sigmoid(f), tanh(g), sigmoid(o))` of fused pre-activations `[batch, 4H]`."""
    i, f, g, o = jnp.split(z, 4, axis=-1)
    return jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)


def lstm_cell(params: dict, state: LSTMState, x: jax.Array) -> LSTMState:
    """One LSTM step, written plainly: the reference the scanned forms are tested against.

    Args:
      params: `{"kernel", "recurrent_kernel", "bias"}` as in the module docstring.
      state: previous `LSTMState`, each `[batch, hidden]`.
      x: input at this step, `[batch, in_features]`.

    Returns:
      The new `LSTMState`; its `h` is the step's output.
    """
    z = x @ params["kernel"] + state.h @ params["recurrent_kernel"] + params["bias"][None, :]
    return gate_update(z, state.c)


def init_params(
    key: jax.Array,
    in_features: int,
    hidden_size: int,
    *,
    unit_forget_bias: bool = True,
    proj_size: int = 0,
    peepholes: bool = False,
    layer_norm: bool = False,
    dtype=jnp.float32,
) -> dict:
    """Keras-default LSTM parameters.

    Glorot-uniform input kernel, orthogonal recurrent kernel (over the whole `[H, 4H]` matrix, as
    Keras does), zero bias with the forget-gate slice set to one when `unit_forget_bias`.

    Args:
      key: PRNG key.
      in_features: input feature size D.
      hidden_size: number of units H.
      unit_forget_bias: add one to the forget-gate bias (Keras default True).
      proj_size: P > 0 adds `proj_kernel: [H, P]` (glorot uniform; PyTorch's `weight_hr.T`) and
        makes the recurrent kernel `[P, 4H]` (see `seqlstm.variants`).
      peepholes: add `peephole: [3H]` (zeros), the i, f, o weights on the cell state.
      layer_norm: add the layer-norm gains `ln_input_scale, ln_recurrent_scale: [4H]`,
        `ln_cell_scale: [H]` (ones) and `ln_cell_bias: [H]` (zeros).
      dtype: parameter dtype.

    Returns:
      `{"kernel": [D, 4H], "recurrent_kernel": [H or P, 4H], "bias": [4H]}` and the variants'
      entries above.
    """
    k_in, k_rec = jax.random.split(key)  # as before variants existed: the same plain weights
    h4 = 4 * hidden_size
    state = proj_size or hidden_size
    # Drawn in float32 (QR has no bfloat16 kernel), then cast.
    kernel = jax.nn.initializers.glorot_uniform()(k_in, (in_features, h4), jnp.float32)
    recurrent = jax.nn.initializers.orthogonal()(k_rec, (state, h4), jnp.float32)
    kernel, recurrent = kernel.astype(dtype), recurrent.astype(dtype)
    bias = jnp.zeros((h4,), dtype)
    if unit_forget_bias:
        bias = bias.at[hidden_size : 2 * hidden_size].set(1)
    params = {"kernel": kernel, "recurrent_kernel": recurrent, "bias": bias}
    if proj_size:
        glorot = jax.nn.initializers.glorot_uniform()
        k_proj = jax.random.fold_in(key, 1)
        params["proj_kernel"] = glorot(k_proj, (hidden_size, proj_size), jnp.float32).astype(dtype)
    if peepholes:
        params["peephole"] = jnp.zeros((3 * hidden_size,), dtype)
    if layer_norm:
        params["ln_input_scale"] = jnp.ones((h4,), dtype)
        params["ln_recurrent_scale"] = jnp.ones((h4,), dtype)
        params["ln_cell_scale"] = jnp.ones((hidden_size,), dtype)
        params["ln_cell_bias"] = jnp.zeros((hidden_size,), dtype)
    return params
