"""The decoder of `seqlstm.seq2seq`: LSTM steps, optional attention with input feeding, output.

Each step runs `LSTM.step` (`seqlstm.variants.lstm_step`, the core's gate math, no second
implementation) on the layers' parameters, so every LSTM variant works step by step too; with
`proj_size` the hidden state, the attentional vector and the output projection's input are
`proj_size` wide. With attention, Luong's placement: the top layer's h_t attends over the
encoder outputs, h~_t = tanh(W_c [context_t; h_t]) and logits = W_o h~_t; with input feeding,
h~_{t-1} is concatenated to the embedding of the input token at step t (Luong et al., 2015).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from seqlstm.attention import KINDS, RECURRENT_KINDS, Attention
from seqlstm.cell import LSTMState
from seqlstm.checks import check_positive
from seqlstm.feeding import feeding_decoder
from seqlstm.kernels import rule
from seqlstm.kernels.backends import auto_shape, choose_backend
from seqlstm.layers import LSTM
from seqlstm.tokens import check_vocab_size
from seqlstm.variants import is_plain


class Memory(NamedTuple):
    """What the decoder reads from the encoder at every step.

    Attributes:
      values: encoder outputs `[batch, source, E]` (zero at padded steps).
      projected: the attention's key projection of `values` (`values` itself without attention).
      lengths: `int32[batch]`, valid source steps per row.
    """

    values: jax.Array
    projected: jax.Array
    lengths: jax.Array


class DecoderCarry(NamedTuple):
    """The decoder's recurrent state between steps.

    Attributes:
      states: one `LSTMState` per decoder layer (`h: [batch, out_features]`, `c: [batch, hidden]`).
      feed: the previous attentional vector h~_{t-1} `[batch, out_features]` (zeros at the first
        step; read only with input feeding).
      alignment: location-aware attention only, the previous step's weights `[batch, source]`
        (`Decoder.initial_alignment` at the first step); None otherwise.
    """

    states: tuple[LSTMState, ...]
    feed: jax.Array
    alignment: jax.Array | None = None


def embedding(vocab_size: int, embed_dim: int | None, rngs: nnx.Rngs):
    return None if embed_dim is None else nnx.Embed(vocab_size, embed_dim, rngs=rngs)


def embed_tokens(embed, tokens: jax.Array, vocab_size: int) -> jax.Array:
    if embed is None:
        return jax.nn.one_hot(tokens, vocab_size, dtype=jnp.float32)
    return embed(tokens)


class Decoder(nnx.Module):
    """LSTM decoder with optional attention and input feeding, and the output projection.

    Args:
      vocab_size: target vocabulary size V (reserved ids included).
      hidden_size: units H of every decoder layer (and of the attentional vector).
      memory_size: the encoder's output size E.
      num_layers: stacked LSTM layers.
      embed_dim: embedding size; None feeds one-hot vectors.
      attention: None, or one of `seqlstm.attention.KINDS`.
      input_feeding: concatenate h~_{t-1} to the step's input (attention only).
      attention_size: hidden size of additive attention (default H).
      rngs: `nnx.Rngs`.
      **lstm_kwargs: passed to every LSTM (`dropout`, `recurrent_dropout`, `proj_size`,
        `layer_norm`, `peepholes`, `zoneout_*`, `unroll`, ...).
    """

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        memory_size: int,
        *,
        num_layers: int = 1,
        embed_dim: int | None = None,
        attention: str | None = None,
        input_feeding: bool = True,
        attention_size: int | None = None,
        rngs: nnx.Rngs,
        **lstm_kwargs,
    ):
        check_vocab_size(vocab_size, "target_vocab_size")
        check_positive("num_layers", num_layers)
        if attention is not None and attention not in KINDS:
            raise ValueError(f"attention must be None or one of {KINDS}, got {attention!r}")
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.input_feeding = bool(input_feeding and attention is not None)
        self.embed = embedding(vocab_size, embed_dim, rngs)
        out = lstm_kwargs.get("proj_size") or hidden_size  # the width of h
        self.out_features = out
        d = (embed_dim or vocab_size) + (out if self.input_feeding else 0)
        layers = []
        for _ in range(num_layers):
            kw = dict(return_sequences=True, return_state=True, rngs=rngs, **lstm_kwargs)
            layers.append(LSTM(d, hidden_size, **kw))
            d = out
        self.layers = nnx.List(layers)
        glorot, zeros = nnx.initializers.glorot_uniform(), nnx.initializers.zeros_init()
        self.attention = (
            None
            if attention is None
            else Attention(attention, out, memory_size, attention_size=attention_size, rngs=rngs)
        )
        if attention is not None:
            self.combine = nnx.Linear(
                memory_size + out, out, use_bias=False, kernel_init=glorot, rngs=rngs
            )
        self.output = nnx.Linear(out, vocab_size, kernel_init=glorot, bias_init=zeros, rngs=rngs)

    def memory(self, values: jax.Array, lengths: jax.Array) -> Memory:
        """The `Memory` of encoder outputs `values [B, S, E]` with `lengths int[B]`."""
        projected = values if self.attention is None else self.attention.project_keys(values)
        return Memory(values, projected, lengths.astype(jnp.int32))

    def initial_alignment(self, memory: Memory) -> jax.Array | None:
        """`DecoderCarry.alignment` of the first step: None unless the attention is recurrent."""
        if self.attention is None:
            return None
        return self.attention.initial_alignment(memory.lengths, memory.values.shape[1])

    def _attend(self, top: jax.Array, memory: Memory, previous: jax.Array | None = None):
        """`top [B, T, H]` -> `(h~ [B, T, H], weights [B, T, S])`, or `(top, None)`."""
        if self.attention is None:
            return top, None
        context, weights = self.attention.attend(
            top, memory.projected, memory.values, memory.lengths, previous
        )
        return jnp.tanh(self.combine(jnp.concatenate([context, top], axis=-1))), weights

    def step(self, carry: DecoderCarry, token: jax.Array, memory: Memory, masks=None, t=0):
        """One decoder step.

        Args:
          carry: the `DecoderCarry` before this step.
          token: `int[batch]`, the input token (BOS first, then the previous output).
          memory: the encoder's `Memory`.
          masks: None (evaluation mode: decoding), or one `LSTM.draw_masks(...)` per layer for
            the whole target (training mode with input feeding).
          t: the step's index into `masks`.

        Returns:
          `(carry, logits [batch, V], weights [batch, S] or None)`.
        """
        x = embed_tokens(self.embed, token, self.vocab_size)
        if self.input_feeding:
            x = jnp.concatenate([x, carry.feed.astype(x.dtype)], axis=-1)
        states = []
        masks = masks if masks is not None else (None,) * len(self.layers)
        for layer, state, m in zip(self.layers, carry.states, masks):
            state = layer.step(state, x, m, t)
            states.append(state)
            x = state.h
        previous = None if carry.alignment is None else carry.alignment[:, None, :]
        out, weights = self._attend(x[:, None, :], memory, previous)
        out = out[:, 0, :]
        logits = self.output(out)
        weights = None if weights is None else weights[:, 0]
        alignment = None if carry.alignment is None else weights.astype(carry.alignment.dtype)
        return DecoderCarry(tuple(states), out, alignment), logits, weights

    def _fused_feeding(self, carry: DecoderCarry, memory: Memory, masks) -> bool:
        """Whether teacher forcing runs `seqlstm.feeding.feeding_decoder` (its fused backward):
        plain float32 cells without masks and a non-recurrent attention, unless a layer asks for
        JAX's autodiff (`backward="autodiff"`)."""
        if not self.input_feeding or carry.alignment is not None:
            return False
        if self.attention.kind in RECURRENT_KINDS or any(m is not None for m in masks):
            return False
        if memory.values.dtype != jnp.float32:
            return False
        return all(
            is_plain(params := layer.params_dict())
            and layer.backward == "fused"
            and (layer.dtype is None or jnp.dtype(layer.dtype) == jnp.float32)
            and all(p.dtype == jnp.float32 for p in params.values())
            for layer in self.layers
        )

    def _feeding(self, target_in: jax.Array, carry: DecoderCarry, memory: Memory):
        """`__call__` through `feeding_decoder`: the first layer's product with the embeddings
        before the loop, the output projection after it."""
        first = self.layers[0]
        kernel = first.kernel[...]
        embedded = embed_tokens(self.embed, target_in, self.vocab_size)
        # Time-major before the product: [B, T, 4H] products transposed cost more.
        x = jnp.swapaxes(embedded, 0, 1) @ kernel[: embedded.shape[-1]]
        weights, biases = [], []
        for i, layer in enumerate(self.layers):
            rows = kernel[embedded.shape[-1] :] if i == 0 else layer.kernel[...]
            weights.append(jnp.concatenate([rows, layer.recurrent_kernel[...]], axis=0))
            biases.append(layer.bias[...])
        params = self.attention.params_dict()
        empty = jnp.zeros((0,), jnp.float32)
        # The layers' backend decides the loops' too: "auto" takes the native kernel's two calls
        # on CPU where the layers' rule would (`seqlstm.kernels.backends`) and the decoder's
        # (`rule.native_feeding_wins`: at a large batch x hidden the forward loop alone runs the
        # scan), "native" always, "scan" never.
        shape = auto_shape(first.params_dict(), embedded)
        backend = choose_backend(first.backend, jnp.float32, shape)
        if backend not in ("native", "native_train"):
            backend = "scan"
        elif first.backend == "auto":
            batch, hidden = embedded.shape[0], first.recurrent_kernel.shape[0]
            fast = rule.native_feeding_wins(batch, hidden, forward_only=True)
            backend = "native" if fast else "native_train"
        outputs, attention = feeding_decoder(
            x,
            tuple(weights),
            tuple(biases),
            tuple(s.h for s in carry.states),
            tuple(s.c for s in carry.states),
            carry.feed,
            params.get("query_kernel", empty[:, None]),
            params.get("v", empty),
            self.combine.kernel[...],
            memory.projected,
            memory.values,
            memory.lengths,
            self.attention.kind,
            first.unroll,
            backend,
        )
        logits = self.output(jnp.swapaxes(outputs, 0, 1))
        return logits, jnp.swapaxes(attention, 0, 1)

    def __call__(self, target_in: jax.Array, carry: DecoderCarry, memory: Memory):
        """Teacher forcing over a whole target.

        Without input feeding the layers run as whole sequences (`seqlstm.scan.lstm_scan`) and
        attention is one batched computation; with input feeding step t needs h~_{t-1} (and
        location-aware attention the weights of step t-1), so the steps run in a `lax.scan` over
        `step`; with plain float32 cells and a non-recurrent attention that scan is
        `seqlstm.feeding.feeding_decoder`, whose backward pass computes the weight gradients
        after its loop. All equal step-by-step decoding.

        Args:
          target_in: `int[batch, T]`, BOS then the target tokens.

        Returns:
          `(logits [batch, T, V], weights [batch, T, S] or None)`.
        """
        if self.input_feeding or carry.alignment is not None:
            batch, time = target_in.shape
            masks = tuple(layer.draw_masks(batch, time) for layer in self.layers)
            if self._fused_feeding(carry, memory, masks):
                return self._feeding(target_in, carry, memory)

            def body(c, inputs):
                t, token = inputs
                c, logits, weights = self.step(c, token, memory, masks, t)
                return c, (logits, weights)

            tokens = jnp.swapaxes(target_in, 0, 1)
            _, (logits, weights) = jax.lax.scan(body, carry, (jnp.arange(time), tokens))
            return jnp.swapaxes(logits, 0, 1), jnp.swapaxes(weights, 0, 1)
        x = embed_tokens(self.embed, target_in, self.vocab_size)
        for layer, state in zip(self.layers, carry.states):
            x, _ = layer(x, initial_state=state)
        out, weights = self._attend(x, memory)
        return self.output(out), weights
