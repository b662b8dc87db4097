"""Encoder-decoder LSTMs with optional attention, for variable-length input and output.

  Encoder         tokens -> embedding (or one-hot) -> stacked LSTM (optionally bidirectional),
                  lengths-aware: outputs are zero at padded steps and the final states are those
                  at each row's last valid step, so results do not depend on the padding.
  bridge          the encoder's final states -> the decoder's initial state, per decoder layer
                  (decoder layer i takes encoder layer `L_enc - L_dec + i`, the top ones):
                    "linear": h0 = tanh(W_h [h_fwd; h_bwd] + b_h), c0 = W_c [c_fwd; c_bwd] + b_c
                              (one direction: [h] and [c]); any sizes
                    "sum":    h0 = h_fwd + h_bwd, c0 = c_fwd + c_bwd (or copy one direction);
                              no parameters
                    "zeros":  h0 = c0 = 0 (the decoder sees the source only through attention)
  Decoder         (`seqlstm.decoder`) one LSTM step per output token (`LSTM.step` on the
                  layers' parameters: the core's gate math, every variant); with attention,
                  Luong's placement: the top layer's h_t attends over the encoder outputs,
                  h~_t = tanh(W_c [context_t; h_t]), logits = W_o h~_t; with input feeding,
                  h~_{t-1} is concatenated to the embedding of the input token at step t.

Tokens follow `seqlstm.tokens`: PAD=0, BOS=1, EOS=2. Training is teacher-forced:
`model(source, source_lengths, target_in) -> logits [B, T, V]`. Decoding (greedy and beam search)
is in `seqlstm.decoding`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from seqlstm.cell import LSTMState, batch_zeros
from seqlstm.checks import check_positive, is_concrete
from seqlstm.decoder import Decoder, DecoderCarry, Memory, embed_tokens, embedding
from seqlstm.layers import StackedLSTM
from seqlstm.tokens import check_ids, check_vocab_size

__all__ = ["BRIDGES", "Decoder", "DecoderCarry", "Encoder", "EncoderDecoder", "Memory"]

BRIDGES = ("linear", "sum", "zeros")


class Encoder(nnx.Module):
    """Embedding (or one-hot) and a stacked, optionally bidirectional LSTM over padded tokens.

    Args:
      vocab_size: source vocabulary size (reserved ids included).
      hidden_size: units per layer and direction.
      num_layers: stacked layers.
      embed_dim: embedding size; None feeds one-hot vectors.
      bidirectional: forward and backward LSTM per layer, outputs concatenated (`2 * hidden`).
      dropout: between stacked layers, in training mode only.
      rngs: `nnx.Rngs` with `params` (and `dropout` when `dropout > 0`).
      **lstm_kwargs: passed to every LSTM (`unroll`, `projection`, ...).
    """

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        *,
        num_layers: int = 1,
        embed_dim: int | None = None,
        bidirectional: bool = False,
        dropout: float = 0.0,
        rngs: nnx.Rngs,
        **lstm_kwargs,
    ):
        check_vocab_size(vocab_size, "source_vocab_size")
        check_positive("num_layers", num_layers)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.bidirectional = bidirectional
        self.embed = embedding(vocab_size, embed_dim, rngs)
        self.stack = StackedLSTM(
            embed_dim or vocab_size,
            (hidden_size,) * num_layers,
            bidirectional=bidirectional,
            dropout=dropout,
            return_sequences=True,
            return_state=True,
            rngs=rngs,
            **lstm_kwargs,
        )

    @property
    def out_features(self) -> int:
        return self.stack.out_features

    def __call__(self, source: jax.Array, source_lengths: jax.Array):
        """Encodes right-padded tokens.

        Args:
          source: `int[batch, source]`.
          source_lengths: `int[batch]`; a row of length 0 gives zero outputs and zero states.

        Returns:
          `(outputs [batch, source, out_features], states)`, one state per layer: an
          `LSTMState`, or a `(forward, backward)` pair when bidirectional.
        """
        x = embed_tokens(self.embed, source, self.vocab_size)
        return self.stack(x, seq_lengths=source_lengths)


class EncoderDecoder(nnx.Module):
    """Sequence-to-sequence model: `Encoder`, bridge, `Decoder` (see the module docstring).

    Args:
      source_vocab_size, target_vocab_size: vocabularies, reserved ids included.
      hidden_size: units of every LSTM layer (per direction in the encoder).
      num_layers: encoder layers.
      decoder_layers: decoder layers (default `num_layers`; at most `num_layers` unless
        `bridge="zeros"`).
      embed_dim: embedding size of both sides; None feeds one-hot vectors.
      bidirectional: bidirectional encoder.
      attention: None, `"additive"`, `"dot"`, `"general"` or `"location"` (location-aware).
      input_feeding: feed h~_{t-1} into step t (with attention).
      attention_size: hidden size of additive attention.
      bridge: `"linear"`, `"sum"` or `"zeros"`.
      max_source_len: the longest source accepted (longer is an error, never cut).
      max_target_len: the longest target in steps, EOS included (also the default decoding limit).
      dropout: between stacked encoder layers, in training mode only.
      unroll: LSTM steps per scan iteration.
      input_dropout: every encoder and decoder LSTM's Keras `dropout` (one mask per sequence).
      rngs: `nnx.Rngs`.
      **lstm_kwargs: the LSTM variants for every encoder and decoder LSTM: `recurrent_dropout`,
        `proj_size` (the states, the bridge and the attentional vector are then `proj_size`
        wide, the cell states `hidden_size`), `layer_norm`, `peepholes`, `zoneout_cell`,
        `zoneout_hidden` (see `seqlstm.LSTM`).
    """

    batch_fields = (
        "source",
        "source_lengths",
        "target_in",
    )  # what the training loop passes (seqlstm.task)

    def __init__(
        self,
        *,
        source_vocab_size: int,
        target_vocab_size: int,
        hidden_size: int = 64,
        num_layers: int = 1,
        decoder_layers: int | None = None,
        embed_dim: int | None = None,
        bidirectional: bool = False,
        attention: str | None = None,
        input_feeding: bool = True,
        attention_size: int | None = None,
        bridge: str = "linear",
        max_source_len: int = 64,
        max_target_len: int = 65,
        dropout: float = 0.0,
        unroll: int = 1,
        input_dropout: float = 0.0,
        rngs: nnx.Rngs,
        **lstm_kwargs,
    ):
        for name, value in (
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
            ("max_source_len", max_source_len),
            ("max_target_len", max_target_len),
        ):
            check_positive(name, value)
        decoder_layers = num_layers if decoder_layers is None else decoder_layers
        check_positive("decoder_layers", decoder_layers)
        if bridge not in BRIDGES:
            raise ValueError(f"bridge must be one of {BRIDGES}, got {bridge!r}")
        if bridge != "zeros" and decoder_layers > num_layers:
            raise ValueError(
                f"bridge={bridge!r} starts decoder layer i from encoder layer i: decoder_layers "
                f"({decoder_layers}) must not exceed num_layers ({num_layers}); use bridge='zeros'"
            )
        if embed_dim is not None:
            check_positive("embed_dim", embed_dim)
        self.source_vocab_size = source_vocab_size
        self.target_vocab_size = target_vocab_size
        self.hidden_size = hidden_size
        self.bidirectional = bidirectional
        self.bridge = bridge
        self.max_source_len = max_source_len
        self.max_target_len = max_target_len
        self.encoder = Encoder(
            source_vocab_size, hidden_size, num_layers=num_layers, embed_dim=embed_dim,
            bidirectional=bidirectional, dropout=dropout, unroll=unroll, rngs=rngs,
            input_dropout=input_dropout, **lstm_kwargs,
        )  # fmt: skip
        self.decoder = Decoder(
            target_vocab_size, hidden_size, self.encoder.out_features,
            num_layers=decoder_layers, embed_dim=embed_dim, attention=attention,
            input_feeding=input_feeding, attention_size=attention_size, unroll=unroll, rngs=rngs,
            dropout=input_dropout, **lstm_kwargs,
        )  # fmt: skip
        if bridge == "linear":
            dirs = 2 if bidirectional else 1
            out = self.decoder.out_features  # the width of h: proj_size or hidden_size
            glorot = nnx.initializers.glorot_uniform()
            make = lambda d, n: nnx.Linear(d, n, kernel_init=glorot, rngs=rngs)  # noqa: E731
            self.bridge_h = nnx.List([make(dirs * out, out) for _ in range(decoder_layers)])
            self.bridge_c = nnx.List(
                [make(dirs * hidden_size, hidden_size) for _ in range(decoder_layers)]
            )

    @property
    def attention(self) -> bool:
        return self.decoder.attention is not None

    def check_inputs(self, source, source_lengths, target_in=None) -> None:
        """Checks shapes (always) and values (when concrete) before anything is traced.

        Raises:
          ValueError: for a wrong rank or dtype, a source or target longer than the configured
            maximum, lengths outside `[0, source]`, or ids outside the vocabulary.
        """
        source = np.asarray(source) if is_concrete(source) else source
        if source.ndim != 2 or not jnp.issubdtype(source.dtype, jnp.integer):
            raise ValueError(
                f"source must be int[batch, time], got {source.dtype}{list(source.shape)}"
            )
        batch, time = source.shape
        if time == 0:
            raise ValueError("source has no time steps; give empty rows a length of 0 instead")
        if time > self.max_source_len:
            raise ValueError(
                f"source has {time} steps, more than max_source_len={self.max_source_len}"
            )
        if tuple(jnp.shape(source_lengths)) != (batch,):
            raise ValueError(
                f"source_lengths must have shape [batch] = ({batch},), got "
                f"{tuple(jnp.shape(source_lengths))}"
            )
        if not jnp.issubdtype(jnp.result_type(source_lengths), jnp.integer):
            raise ValueError("source_lengths must be integers")
        if is_concrete(source):
            check_ids(source, self.source_vocab_size, "source")
        if is_concrete(source_lengths):
            v = np.asarray(source_lengths)
            if v.size and (v.min() < 0 or v.max() > time):
                raise ValueError(
                    f"source_lengths must lie in [0, {time}], got min {v.min()} max {v.max()}"
                )
        if target_in is None:
            return
        if jnp.ndim(target_in) != 2 or jnp.shape(target_in)[0] != batch:
            raise ValueError(
                f"target_in must be int[batch={batch}, time], got shape {jnp.shape(target_in)}"
            )
        if jnp.shape(target_in)[1] > self.max_target_len:
            raise ValueError(
                f"target_in has {jnp.shape(target_in)[1]} steps, more than "
                f"max_target_len={self.max_target_len}"
            )
        if is_concrete(target_in):
            check_ids(np.asarray(target_in), self.target_vocab_size, "target_in")

    def _bridge(self, states, source: jax.Array) -> tuple[LSTMState, ...]:
        n_dec = len(self.decoder.layers)
        top = states[len(states) - n_dec :]
        zeros = batch_zeros(source, self.hidden_size)
        h_zeros = batch_zeros(source, self.decoder.out_features)
        out = []
        for i in range(n_dec):
            if self.bridge == "zeros":
                out.append(LSTMState(h_zeros, zeros))
                continue
            dirs = top[i] if self.bidirectional else (top[i],)
            if self.bridge == "sum":
                # Encoder and decoder layers share hidden_size, so the sum fits as it is.
                out.append(LSTMState(sum(s.h for s in dirs), sum(s.c for s in dirs)))
            else:
                h = jnp.concatenate([s.h for s in dirs], axis=-1)
                c = jnp.concatenate([s.c for s in dirs], axis=-1)
                out.append(LSTMState(jnp.tanh(self.bridge_h[i](h)), self.bridge_c[i](c)))
        return tuple(out)

    def encode(self, source: jax.Array, source_lengths: jax.Array):
        """Encodes `source int[B, S]` with `source_lengths int[B]`.

        Returns:
          `(memory, carry)`: the decoder's `Memory` and initial `DecoderCarry`.
        """
        source_lengths = jnp.asarray(source_lengths).astype(jnp.int32)
        outputs, states = self.encoder(source, source_lengths)
        memory = self.decoder.memory(outputs, source_lengths)
        feed = batch_zeros(source, self.decoder.out_features)
        carry = DecoderCarry(
            self._bridge(states, source), feed, self.decoder.initial_alignment(memory)
        )
        return memory, carry

    def __call__(
        self,
        source: jax.Array,
        source_lengths: jax.Array,
        target_in: jax.Array,
        *,
        return_attention: bool = False,
    ):
        """Teacher-forced logits.

        Args:
          source: `int[batch, S]`, right-padded with PAD.
          source_lengths: `int[batch]`.
          target_in: `int[batch, T]`: BOS, then the target tokens (right-padded).
          return_attention: also return the attention weights `[batch, T, S]` (None without
            attention).

        Returns:
          `logits [batch, T, V]` (and the weights).
        """
        self.check_inputs(source, source_lengths, target_in)
        memory, carry = self.encode(jnp.asarray(source), source_lengths)
        logits, weights = self.decoder(jnp.asarray(target_in), carry, memory)
        return (logits, weights) if return_attention else logits
