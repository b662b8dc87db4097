"""A stateful character language model: truncated backpropagation through time over streams.

`StatefulCharLM` is `StackedCharLM` (`Embed -> StackedLSTM -> Dense` at every step) that, in
training mode, starts each batch from the LSTM states the previous batch ended in, as Keras's
`LSTM(stateful=True)`: row r of batch k + 1 continues row r of batch k (the stream batches of
`seqlstm.data.streams`, `data.stream=True`). The final states of every layer are kept in
`seqlstm.task.Carry` variables `[num_layers, batch_size, units]`, which the training loop
carries from step to step and checkpoints; rows whose `reset` is True (a new document) start
from zeros. Gradients stop at the carried state (truncated BPTT over one window).

In evaluation mode (`model.eval()`, or the loop's evaluation) it is exactly `StackedCharLM`:
every window from zero states, any number of rows, the carried state neither read nor written.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from seqlstm.cell import LSTMState
from seqlstm.checks import check_positive
from seqlstm.models.char import StackedCharLM
from seqlstm.task import Carry


class StatefulCharLM(StackedCharLM):
    """`StackedCharLM` carrying its LSTM states across training batches (module docstring).

    Args:
      batch_size: rows of every training batch (the streams; `config.train.batch_size`).
      **kwargs: `StackedCharLM`'s (`vocab_size`, `embed_dim`, `num_layers`, `units`,
        `dropout`, `unroll`, `rngs`).
    """

    batch_fields = ("inputs", "reset")  # what the training loop passes (seqlstm.task)

    def __init__(self, *, batch_size: int, **kwargs):
        super().__init__(**kwargs)
        self.batch_size = check_positive("model.batch_size", batch_size)
        sizes = self.lstm.hidden_sizes
        shape = (len(sizes), self.batch_size, sizes[0])
        self.carry_h = Carry(jnp.zeros(shape, jnp.float32))
        self.carry_c = Carry(jnp.zeros(shape, jnp.float32))
        self.deterministic = False  # evaluation mode: set by nnx.view and model.eval()

    def set_view(self, deterministic: bool | None = None) -> None:
        """Used by `nnx.view`: `deterministic=True` is evaluation mode (no carried state)."""
        if deterministic is not None:
            self.deterministic = deterministic

    def __call__(
        self, x: jax.Array, reset: jax.Array | None = None, *, mask: jax.Array | None = None
    ) -> jax.Array:
        """`x: int[batch, time]` -> logits `[batch, time, vocab_size]` of each next character.

        Args:
          x: character ids; in training mode exactly `batch_size` rows, each continuing the same
            row of the previous call.
          reset: `bool[batch]`, True where a row starts a new stream (its carried state is
            zeroed); required in training mode, ignored in evaluation mode.
          mask: ignored (accepted for the training loop's call).

        Raises:
          ValueError: in training mode, for `x` without `batch_size` rows or a missing or
            misshapen `reset`.
        """
        del mask
        if self.deterministic:
            return super().__call__(x)
        rows = jnp.shape(x)[0] if jnp.ndim(x) else None
        if rows != self.batch_size:
            raise ValueError(
                f"x has {rows} rows (shape {jnp.shape(x)}) but a stateful model in training "
                f"carries model.batch_size={self.batch_size} streams; set model.batch_size to "
                "config.train.batch_size"
            )
        if reset is None or jnp.shape(reset) != (rows,) or jnp.asarray(reset).dtype != bool:
            got = None if reset is None else f"{jnp.asarray(reset).dtype} {jnp.shape(reset)}"
            raise ValueError(
                f"reset must be bool[{rows}] (True where a row starts a new document), got {got}"
            )
        keep = ~jnp.asarray(reset)[None, :, None]
        h = jnp.where(keep, self.carry_h[...], 0.0)
        c = jnp.where(keep, self.carry_c[...], 0.0)
        init = tuple(LSTMState(h[i], c[i]) for i in range(h.shape[0]))
        logits, states = self.run(x, init)
        self.carry_h[...] = jax.lax.stop_gradient(jnp.stack([s.h for s in states]))
        self.carry_c[...] = jax.lax.stop_gradient(jnp.stack([s.c for s in states]))
        return logits
