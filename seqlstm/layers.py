"""Flax NNX layers built from `LSTM`: Bidirectional, StackedLSTM, RepeatVector.

Each keeps Keras's output and state semantics (the table in `seqlstm.lstm`): `return_sequences`
picks the last output `[B, H]` or all outputs `[B, T, H]`, `return_state` adds the final state.
`LSTM` itself (one direction, every cell variant) lives in `seqlstm.lstm` and is re-exported here
with its argument checks, so `from seqlstm.layers import LSTM` keeps working.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from seqlstm.cell import LSTMState
from seqlstm.checks import check_positive, check_rate
from seqlstm.lstm import LSTM, check_input, check_state

__all__ = [
    "LSTM",
    "MERGE_MODES",
    "Bidirectional",
    "RepeatVector",
    "StackedLSTM",
    "check_input",
    "check_state",
    "merge",
]

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def merge(fwd: jax.Array, bwd: jax.Array, merge_mode: str | None):
    """Merges forward and backward outputs as Keras's `Bidirectional(merge_mode=)` does."""
    if merge_mode == "concat":
        return jnp.concatenate([fwd, bwd], axis=-1)
    if merge_mode == "sum":
        return fwd + bwd
    if merge_mode == "mul":
        return fwd * bwd
    if merge_mode == "ave":
        return (fwd + bwd) / 2
    return fwd, bwd


class Bidirectional(nnx.Module):
    """A forward and a backward LSTM over the same input, merged as Keras's `Bidirectional`.

    Args:
      in_features, hidden_size: as `LSTM`; each direction has `hidden_size` units.
      merge_mode: `"concat"` (output `2H`), `"sum"`, `"mul"`, `"ave"` (output `H`), or None for
        the pair `(forward, backward)`.
      return_sequences, return_state: as `LSTM`; the state is `(forward LSTMState, backward
        LSTMState)`.
      **lstm_kwargs: passed to both directions (`unroll`, `projection`, `dtype`, ...).
    """

    def __init__(
        self,
        in_features: int,
        hidden_size: int,
        *,
        merge_mode: str | None = "concat",
        return_sequences: bool = False,
        return_state: bool = False,
        rngs: nnx.Rngs,
        **lstm_kwargs,
    ):
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"merge_mode must be one of {MERGE_MODES}, got {merge_mode!r}")
        self.in_features = in_features
        self.hidden_size = hidden_size
        self.merge_mode = merge_mode
        self.return_sequences = return_sequences
        self.return_state = return_state
        common = dict(return_sequences=True, return_state=True, rngs=rngs, **lstm_kwargs)
        self.forward_layer = LSTM(in_features, hidden_size, **common)
        self.backward_layer = LSTM(in_features, hidden_size, reverse=True, **common)

    @property
    def out_features(self) -> int:
        size = self.forward_layer.out_features
        return 2 * size if self.merge_mode == "concat" else size

    def __call__(
        self,
        x: jax.Array,
        *,
        initial_state: tuple[LSTMState, LSTMState] | None = None,
        seq_lengths: jax.Array | None = None,
        mask: jax.Array | None = None,
    ):
        """Runs both directions.

        Args:
          x: `[batch, time, in_features]`.
          initial_state: `(forward LSTMState, backward LSTMState)` or None.
          seq_lengths, mask: as `LSTM`.

        Returns:
          The merged last outputs `[B, H or 2H]` or sequences `[B, T, H or 2H]` (a pair when
          `merge_mode=None`), with `(forward LSTMState, backward LSTMState)` when `return_state`.
          The backward direction's last output is its output at step 0.
        """
        fwd_init = bwd_init = None
        if initial_state is not None:
            if not isinstance(initial_state, tuple) or len(initial_state) != 2:
                raise ValueError(
                    "initial_state of Bidirectional must be a pair (forward LSTMState, backward "
                    f"LSTMState), got {type(initial_state).__name__}"
                )
            fwd_init, bwd_init = initial_state
        kw = dict(seq_lengths=seq_lengths, mask=mask)
        fwd_seq, fwd_state = self.forward_layer(x, initial_state=fwd_init, **kw)
        bwd_seq, bwd_state = self.backward_layer(x, initial_state=bwd_init, **kw)
        if self.return_sequences:
            fwd_out, bwd_out = fwd_seq, bwd_seq
        else:
            # As Keras: each direction's last output is its final h (for an empty row, the
            # initial h).
            fwd_out = fwd_state.h.astype(fwd_seq.dtype)
            bwd_out = bwd_state.h.astype(bwd_seq.dtype)
        out = merge(fwd_out, bwd_out, self.merge_mode)
        return (out, (fwd_state, bwd_state)) if self.return_state else out


class StackedLSTM(nnx.Module):
    """LSTM layers where each reads the previous layer's full output sequence.

    Args:
      in_features: input feature size of the first layer.
      hidden_sizes: units of each layer, first to last.
      bidirectional: make every layer a `Bidirectional`.
      merge_mode: how bidirectional layers merge (not None: the next layer needs one array).
      dropout: dropout rate between layers (not after the last), active in training mode only
        (PyTorch's `nn.LSTM(dropout=)`: a fresh mask per element).
      input_dropout: every layer's Keras `dropout` (`LSTM(dropout=)`: one mask per sequence on
        the layer's input); `recurrent_dropout` and the other variants go in `**lstm_kwargs`.
      return_sequences: return the last layer's outputs `[B, T, H_last]` instead of `[B, H_last]`.
      return_state: also return `states`, one per layer: an `LSTMState`, or a
        `(forward, backward)` pair when bidirectional.
      **lstm_kwargs: passed to every layer (`unroll`, `projection`, `dtype`, ...).
    """

    def __init__(
        self,
        in_features: int,
        hidden_sizes: Sequence[int] = (64, 32),
        *,
        bidirectional: bool = False,
        merge_mode: str = "concat",
        dropout: float = 0.0,
        input_dropout: float = 0.0,
        return_sequences: bool = False,
        return_state: bool = False,
        rngs: nnx.Rngs,
        **lstm_kwargs,
    ):
        hidden_sizes = tuple(hidden_sizes) if isinstance(hidden_sizes, Sequence) else hidden_sizes
        if not isinstance(hidden_sizes, tuple) or not hidden_sizes:
            raise ValueError(
                f"hidden_sizes must be a non-empty sequence of ints, got {hidden_sizes!r}"
            )
        for i, h in enumerate(hidden_sizes):
            check_positive(f"hidden_sizes[{i}]", h)
        if bidirectional and merge_mode not in MERGE_MODES[:-1]:
            raise ValueError(
                f"merge_mode of a bidirectional StackedLSTM must be one of {MERGE_MODES[:-1]} "
                f"(the next layer reads one array), got {merge_mode!r}"
            )
        check_rate("dropout", dropout)
        if dropout > 0 and len(hidden_sizes) == 1:
            warnings.warn(  # as PyTorch's nn.LSTM warns: the rate would silently do nothing
                "dropout acts between stacked layers, not after the last, so a non-zero dropout "
                f"expects at least 2 layers, but got dropout={dropout} and 1 layer; "
                "input_dropout drops each layer's inputs",
                UserWarning,
                stacklevel=2,
            )
        self.in_features = in_features
        self.hidden_sizes = hidden_sizes
        self.bidirectional = bidirectional
        self.merge_mode = merge_mode
        self.return_sequences = return_sequences
        self.return_state = return_state
        layers = []
        d = in_features
        for h in hidden_sizes:
            common = dict(return_sequences=True, return_state=True, rngs=rngs, **lstm_kwargs)
            common["dropout"] = input_dropout
            if bidirectional:
                layer = Bidirectional(d, h, merge_mode=merge_mode, **common)
            else:
                layer = LSTM(d, h, **common)
            d = layer.out_features
            layers.append(layer)
        self.layers = nnx.List(layers)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)

    @property
    def out_features(self) -> int:
        """The size of the last layer's outputs."""
        return self.layers[-1].out_features

    def __call__(
        self,
        x: jax.Array,
        *,
        initial_state: Sequence | None = None,
        seq_lengths: jax.Array | None = None,
        mask: jax.Array | None = None,
    ):
        """Runs the stack.

        Args:
          x: `[batch, time, in_features]`.
          initial_state: None, or one entry per layer (an `LSTMState`, a `(forward, backward)`
            pair when bidirectional, or None for zeros).
          seq_lengths, mask: as `LSTM`, applied to every layer.

        Returns:
          The last layer's last output or sequence; with `return_state`, `(outputs, states)`.
        """
        n = len(self.hidden_sizes)
        if initial_state is None:
            initial_state = (None,) * n
        elif not isinstance(initial_state, Sequence) or len(initial_state) != n:
            raise ValueError(
                f"initial_state must hold one entry per layer ({n}), got "
                f"{len(initial_state) if isinstance(initial_state, Sequence) else initial_state!r}"
            )
        check_input(jnp.asarray(x), self.in_features)
        states = []
        h = x
        for i, (layer, init) in enumerate(zip(self.layers, initial_state)):
            if i > 0:
                h = self.dropout(h)
            h, state = layer(h, initial_state=init, seq_lengths=seq_lengths, mask=mask)
            states.append(state)
        if self.return_sequences:
            out = h
        else:
            last = states[-1]
            if self.bidirectional:
                out = merge(last[0].h, last[1].h, self.merge_mode)
            else:
                out = last.h
            out = out.astype(h.dtype)
        return (out, tuple(states)) if self.return_state else out


class RepeatVector(nnx.Module):
    """Keras's `RepeatVector(n)`: `[batch, features] -> [batch, n, features]`."""

    def __init__(self, n: int):
        check_positive("n", n)
        self.n = n

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jnp.asarray(x)
        if x.ndim != 2:
            raise ValueError(f"x must be [batch, features] (rank 2), got shape {tuple(x.shape)}")
        return jnp.repeat(x[:, None, :], self.n, axis=1)
