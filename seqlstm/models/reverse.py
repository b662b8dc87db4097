"""Five ways to connect two LSTMs, compared on the reversed-sequence task.

Every variant maps one-hot inputs `[batch, length, in_features]` to per-step logits
`[batch, length, num_classes]` through `hidden_size`-unit LSTMs and one `nnx.Linear` applied at
each step (Keras's `TimeDistributed(Dense(num_classes, activation="softmax"))`; the softmax lives
in the loss). Initialisation is Keras's: the LSTMs' defaults, and Glorot-uniform / zero for Dense.

  name                 connection (Keras terms)
  last_repeat          LSTM -> last output -> RepeatVector(T) -> Dense
  stacked_last_repeat  LSTM -> last -> RepeatVector(T) -> LSTM -> last -> RepeatVector(T) -> Dense
  stacked_seq          LSTM(return_sequences) -> LSTM(return_sequences) -> Dense
  state_last_repeat    LSTM(return_state) -> last -> RepeatVector(T) -> LSTM(initial_state=(h, c),
                       return_sequences) -> Dense
  state_seq            LSTM(return_sequences, return_state) -> LSTM(initial_state=(h, c),
                       return_sequences) -> Dense

`last_repeat` and `stacked_last_repeat` give every step the same vector, so they cannot put a
different token at each position: they are the baselines the study exists to show.

Build one by name with `seqlstm.models.get_model(name, rngs=..., **kwargs)`; `config.model` holds
`name` and the keyword arguments.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from seqlstm.checks import check_positive
from seqlstm.layers import LSTM, RepeatVector, StackedLSTM, check_input


class ReverseModel(nnx.Module):
    """Shared arguments, checks and the per-step Dense of the five variants.

    Args:
      in_features: one-hot width of the inputs (the vocabulary size).
      hidden_size: units of each LSTM (16 in the study).
      num_classes: output classes per step.
      length: time steps T of input and output; the `RepeatVector` size.
      dropout: dropout rate on the connection between the two LSTMs (or LSTM and Dense), active
        in training mode only. The study uses 0, Keras's default.
      unroll: LSTM steps per scan iteration, passed to every LSTM.
      dtype: computation dtype of the LSTMs and the Dense, e.g. "bfloat16" for mixed precision
        (parameters and the LSTM cell state stay float32).
      rngs: `nnx.Rngs` with a `params` stream (and `dropout` when `dropout > 0`).
    """

    batch_fields = ("inputs", "mask")  # seqlstm.task: model(batch["inputs"], batch["mask"])

    def __init__(
        self,
        *,
        in_features: int = 10,
        hidden_size: int = 16,
        num_classes: int = 10,
        length: int,
        dropout: float = 0.0,
        unroll: int = 1,
        dtype: str = "float32",
        rngs: nnx.Rngs,
    ):
        try:
            self.dtype = jnp.dtype(dtype)
        except TypeError as e:
            raise ValueError(f"dtype must name a floating dtype, got {dtype!r}") from e
        if not jnp.issubdtype(self.dtype, jnp.floating):
            raise ValueError(f"dtype must name a floating dtype, got {dtype!r}")
        for name, value in (
            ("in_features", in_features),
            ("hidden_size", hidden_size),
            ("num_classes", num_classes),
            ("length", length),
            ("unroll", unroll),
        ):
            check_positive(name, value)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.in_features = in_features
        self.hidden_size = hidden_size
        self.num_classes = num_classes
        self.length = length
        self.unroll = unroll
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.dense = nnx.Linear(
            hidden_size,
            num_classes,
            kernel_init=nnx.initializers.glorot_uniform(),
            bias_init=nnx.initializers.zeros_init(),
            dtype=self.dtype,
            rngs=rngs,
        )

    def lstm(self, in_features: int, rngs: nnx.Rngs, **kwargs) -> LSTM:
        return LSTM(
            in_features,
            self.hidden_size,
            unroll=self.unroll,
            dtype=self.dtype,
            rngs=rngs,
            **kwargs,
        )

    def check(self, x: jax.Array, mask: jax.Array | None) -> jax.Array:
        x = jnp.asarray(x)
        check_input(x, self.in_features)
        if x.shape[1] != self.length:
            raise ValueError(
                f"x has {x.shape[1]} time steps (shape {tuple(x.shape)}), but this model was built "
                f"with length={self.length}"
            )
        if mask is not None and tuple(jnp.shape(mask)) != x.shape[:2]:
            raise ValueError(
                f"mask must have shape [batch, time] = {x.shape[:2]}, got {tuple(jnp.shape(mask))}"
            )
        return x


class LastRepeat(ReverseModel):
    """Variant 1: one LSTM's last output, repeated T times, Dense at each step."""

    def __init__(self, *, rngs: nnx.Rngs, **kwargs):
        super().__init__(rngs=rngs, **kwargs)
        self.encoder = self.lstm(self.in_features, rngs)
        self.repeat = RepeatVector(self.length)

    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """`x: [batch, length, in_features]`, `mask: bool[batch, length]` -> logits `[B, T, C]`."""
        x = self.check(x, mask)
        return self.dense(self.repeat(self.dropout(self.encoder(x, mask=mask))))


class StackedLastRepeat(ReverseModel):
    """Variant 2: two LSTMs connected by last output + RepeatVector; the second's last output is
    repeated T times too, then Dense at each step."""

    def __init__(self, *, rngs: nnx.Rngs, **kwargs):
        super().__init__(rngs=rngs, **kwargs)
        self.encoder = self.lstm(self.in_features, rngs)
        self.decoder = self.lstm(self.hidden_size, rngs)
        self.repeat = RepeatVector(self.length)

    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """`x: [batch, length, in_features]`, `mask: bool[batch, length]` -> logits `[B, T, C]`."""
        x = self.check(x, mask)
        h = self.dropout(self.repeat(self.encoder(x, mask=mask)))
        return self.dense(self.repeat(self.decoder(h)))


class StackedSeq(ReverseModel):
    """Variant 3: two LSTMs connected by full sequences (`StackedLSTM`), Dense at each step."""

    def __init__(self, *, rngs: nnx.Rngs, dropout: float = 0.0, **kwargs):
        super().__init__(rngs=rngs, dropout=dropout, **kwargs)
        self.stack = StackedLSTM(
            self.in_features,
            (self.hidden_size, self.hidden_size),
            dropout=dropout,
            return_sequences=True,
            unroll=self.unroll,
            dtype=self.dtype,
            rngs=rngs,
        )

    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """`x: [batch, length, in_features]`, `mask: bool[batch, length]` -> logits `[B, T, C]`."""
        x = self.check(x, mask)
        return self.dense(self.stack(x, mask=mask))


class StateLastRepeat(ReverseModel):
    """Variant 4 (encoder-decoder): LSTM 1's last output repeated T times feeds LSTM 2, which
    starts from LSTM 1's final `(h, c)`; Dense at each step."""

    def __init__(self, *, rngs: nnx.Rngs, **kwargs):
        super().__init__(rngs=rngs, **kwargs)
        self.encoder = self.lstm(self.in_features, rngs, return_state=True)
        self.decoder = self.lstm(self.hidden_size, rngs, return_sequences=True)
        self.repeat = RepeatVector(self.length)

    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """`x: [batch, length, in_features]`, `mask: bool[batch, length]` -> logits `[B, T, C]`."""
        x = self.check(x, mask)
        last, state = self.encoder(x, mask=mask)
        h = self.dropout(self.repeat(last))
        return self.dense(self.decoder(h, initial_state=state))


class StateSeq(ReverseModel):
    """Variant 5: LSTM 2 reads LSTM 1's full output sequence and starts from LSTM 1's final
    `(h, c)`; Dense at each step."""

    def __init__(self, *, rngs: nnx.Rngs, **kwargs):
        super().__init__(rngs=rngs, **kwargs)
        self.encoder = self.lstm(self.in_features, rngs, return_sequences=True, return_state=True)
        self.decoder = self.lstm(self.hidden_size, rngs, return_sequences=True)

    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """`x: [batch, length, in_features]`, `mask: bool[batch, length]` -> logits `[B, T, C]`."""
        x = self.check(x, mask)
        seq, state = self.encoder(x, mask=mask)
        return self.dense(self.decoder(self.dropout(seq), initial_state=state, mask=mask))


VARIANTS: dict[str, type[ReverseModel]] = {
    "last_repeat": LastRepeat,
    "stacked_last_repeat": StackedLastRepeat,
    "stacked_seq": StackedSeq,
    "state_last_repeat": StateLastRepeat,
    "state_seq": StateSeq,
}
