"""Character models: a two-branch next-character model and a stacked character language model.

`TwoBranchCharModel` is the published architecture of the two-branch study: it reads the previous
`long_context` characters `x: int[batch, long_context]` and predicts the next one.

  long branch:   Embed(x)                        -> Bidirectional(LSTM(long_units))  [B, 2 * long]
  short branch:  Embed(x[:, -short_context:])    -> Bidirectional(LSTM(short_units)) [B, 2 * short]
  head:          concat -> Dense(dense_units, relu) -> Dense(vocab_size) (softmax in the loss)

Each branch has its own embedding. `branches` switches either off, so the same class is the full
model, the long-branch-only and the short-branch-only baseline. Logits come back as
`[batch, 1, vocab_size]`: one target step, the shape the training loop's masked loss takes.

`StackedCharLM` is a plain character language model for the stacking study:
`Embed -> StackedLSTM(num_layers x units, return_sequences) -> Dense(vocab_size)` at every step,
`x: int[batch, time] -> logits [batch, time, vocab_size]` (target: the input shifted by one).

Build either by name with `seqlstm.models.get_model(name, rngs=..., **kwargs)`; `config.model`
holds `name` and the keyword arguments.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from seqlstm.checks import check_positive
from seqlstm.layers import Bidirectional, StackedLSTM

BRANCHES = ("both", "long", "short")


def _check_ids(x, width: int | None, argname: str) -> jax.Array:
    x = jnp.asarray(x)
    if x.ndim != 2 or not jnp.issubdtype(x.dtype, jnp.integer):
        raise ValueError(
            f"{argname} must be integer character ids [batch, time], got {x.dtype} {tuple(x.shape)}"
        )
    if width is not None and x.shape[1] != width:
        raise ValueError(
            f"{argname} has {x.shape[1]} characters per row (shape {tuple(x.shape)}), expected "
            f"long_context={width}"
        )
    return x.astype(jnp.int32)


def _dense(n_in: int, n_out: int, rngs: nnx.Rngs) -> nnx.Linear:
    # Keras's Dense initialisation: Glorot-uniform kernel, zero bias.
    return nnx.Linear(n_in, n_out, kernel_init=nnx.initializers.glorot_uniform(), rngs=rngs)


class Branch(nnx.Module):
    """One branch: its own embedding and a bidirectional LSTM returning the last outputs.

    `ids: int[B, T]` -> `[B, 2 * units]` (forward final h, backward h at step 0, concatenated).
    """

    def __init__(self, vocab_size: int, embed_dim: int, units: int, *, unroll: int, rngs):
        self.embed = nnx.Embed(vocab_size, embed_dim, rngs=rngs)
        self.lstm = Bidirectional(embed_dim, units, unroll=unroll, rngs=rngs)

    def __call__(self, ids: jax.Array) -> jax.Array:
        return self.lstm(self.embed(ids))


class TwoBranchCharModel(nnx.Module):
    """The two-branch next-character model (module docstring).

    Args:
      vocab_size: number of character ids (the embedding rows and the output classes).
      long_context: characters N in the input window; the long branch reads all of them.
      short_context: characters M <= N at the end of the window the short branch reads.
      branches: `"both"`, `"long"` (long branch only) or `"short"` (short branch only).
      embed_dim: embedding width of each branch.
      long_units, short_units: LSTM units per direction in each branch.
      dense_units: width of the hidden Dense layer (0: the concatenation feeds the output layer).
      unroll: LSTM steps per scan iteration.
      rngs: `nnx.Rngs` with a `params` stream.
    """

    batch_fields = ("inputs",)  # what the training loop passes (seqlstm.task)

    def __init__(
        self,
        *,
        vocab_size: int,
        long_context: int = 512,
        short_context: int = 64,
        branches: str = "both",
        embed_dim: int = 16,
        long_units: int = 32,
        short_units: int = 32,
        dense_units: int = 128,
        unroll: int = 1,
        rngs: nnx.Rngs,
    ):
        for name, value in (
            ("vocab_size", vocab_size),
            ("long_context", long_context),
            ("short_context", short_context),
            ("embed_dim", embed_dim),
            ("long_units", long_units),
            ("short_units", short_units),
            ("unroll", unroll),
        ):
            check_positive(f"model.{name}", value)
        if not isinstance(dense_units, int) or dense_units < 0:
            raise ValueError(f"model.dense_units must be an int >= 0, got {dense_units!r}")
        if short_context > long_context:
            raise ValueError(
                f"model.short_context ({short_context}) must be at most model.long_context "
                f"({long_context}): the short branch reads the end of the same window"
            )
        if branches not in BRANCHES:
            raise ValueError(f"model.branches must be one of {BRANCHES}, got {branches!r}")
        self.vocab_size = vocab_size
        self.long_context = long_context
        self.short_context = short_context
        self.branches = branches
        self.use_long = branches in ("both", "long")
        self.use_short = branches in ("both", "short")
        long_width, short_width = 2 * long_units, 2 * short_units
        self.long_branch = (
            Branch(vocab_size, embed_dim, long_units, unroll=unroll, rngs=rngs)
            if self.use_long
            else None
        )
        self.short_branch = (
            Branch(vocab_size, embed_dim, short_units, unroll=unroll, rngs=rngs)
            if self.use_short
            else None
        )
        features = long_width * self.use_long + short_width * self.use_short
        self.hidden = _dense(features, dense_units, rngs) if dense_units else None
        self.out = _dense(dense_units or features, vocab_size, rngs)

    def long_features(self, x: jax.Array) -> jax.Array:
        """The long branch: `x: int[B, long_context]` -> `[B, 2 * long_units]`."""
        return self.long_branch(_check_ids(x, self.long_context, "x"))

    def short_features(self, x: jax.Array) -> jax.Array:
        """The short branch on the last `short_context` ids of `x: int[B, long_context]`."""
        x = _check_ids(x, self.long_context, "x")
        return self.short_branch(x[:, self.long_context - self.short_context :])

    def head(self, features: jax.Array) -> jax.Array:
        """Concatenated branch features `[B, F]` -> next-character logits `[B, vocab_size]`."""
        if self.hidden is not None:
            features = jax.nn.relu(self.hidden(features))
        return self.out(features)

    def __call__(
        self,
        x: jax.Array,
        *,
        mask: jax.Array | None = None,
        long_x: jax.Array | None = None,
        short_x: jax.Array | None = None,
    ) -> jax.Array:
        """Next-character logits.

        Args:
          x: `int[batch, long_context]`, the window.
          mask: ignored (every window is whole); accepted for the training loop's call.
          long_x, short_x: what the long / short branch reads instead of `x` (e.g. another
            row's window, to measure what a branch contributes); None reads `x`.

        Returns:
          `[batch, 1, vocab_size]` logits of the character after the window.
        """
        del mask
        feats = []
        if self.use_long:
            feats.append(self.long_features(x if long_x is None else long_x))
        if self.use_short:
            feats.append(self.short_features(x if short_x is None else short_x))
        return self.head(jnp.concatenate(feats, axis=-1))[:, None, :]

    def next_logits(self, x: jax.Array) -> jax.Array:
        """Logits `[batch, vocab_size]` of the character after each window of `x`."""
        return self(x)[:, 0, :]


class StackedCharLM(nnx.Module):
    """A character language model of `num_layers` stacked LSTMs (module docstring).

    Args:
      vocab_size: number of character ids.
      embed_dim: embedding width.
      num_layers: stacked LSTM layers, each reading the previous one's full output sequence.
      units: LSTM units per layer.
      dropout: dropout between layers (training mode only).
      unroll: LSTM steps per scan iteration.
      rngs: `nnx.Rngs` with `params` (and `dropout` when `dropout > 0`) streams.
    """

    batch_fields = ("inputs",)  # what the training loop passes (seqlstm.task)

    def __init__(
        self,
        *,
        vocab_size: int,
        embed_dim: int = 16,
        num_layers: int = 1,
        units: int = 128,
        dropout: float = 0.0,
        unroll: int = 1,
        rngs: nnx.Rngs,
    ):
        for name, value in (
            ("vocab_size", vocab_size),
            ("embed_dim", embed_dim),
            ("num_layers", num_layers),
            ("units", units),
            ("unroll", unroll),
        ):
            check_positive(f"model.{name}", value)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {dropout!r}")
        self.vocab_size = vocab_size
        self.embed = nnx.Embed(vocab_size, embed_dim, rngs=rngs)
        self.lstm = StackedLSTM(
            embed_dim,
            (units,) * num_layers,
            dropout=dropout,
            return_sequences=True,
            return_state=True,
            unroll=unroll,
            rngs=rngs,
        )
        self.out = _dense(units, vocab_size, rngs)

    def __call__(self, x: jax.Array, *, mask: jax.Array | None = None) -> jax.Array:
        """`x: int[batch, time]` -> logits `[batch, time, vocab_size]` of each next character.

        `mask` is ignored (windows are whole); accepted for the training loop's call.
        """
        del mask
        return self.run(x)[0]

    def run(self, x: jax.Array, initial_state=None) -> tuple[jax.Array, tuple]:
        """`x: int[batch, time]` read from `initial_state` (one `LSTMState` per layer, or None
        for zeros) -> `(logits [batch, time, vocab_size], final LSTMState of each layer)`."""
        x = _check_ids(x, None, "x")
        out, states = self.lstm(self.embed(x), initial_state=initial_state)
        return self.out(out), states

    def next_logits(self, x: jax.Array) -> jax.Array:
        """Logits `[batch, vocab_size]` of the character after each row of `x`."""
        return self(x)[:, -1, :]


def units_for_budget(count: Callable[[int], int], budget: int, *, low: int = 1) -> int:
    """The units `u >= low` whose parameter count `count(u)` is closest to `budget`.

    `count` must grow with `u` (every model here does), so a bisection finds the crossing.
    """
    hi = max(low, 1)
    while count(hi) < budget:
        hi *= 2
    lo = low
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if count(mid) < budget:
            lo = mid
        else:
            hi = mid
    return min((lo, hi), key=lambda u: abs(count(u) - budget))


def generate(
    model: nnx.Module,
    prompt_ids: np.ndarray,
    *,
    context: int,
    num_chars: int,
    temperature: float = 1.0,
    seed: int = 0,
    pad_id: int = 0,
) -> np.ndarray:
    """Samples `num_chars` ids after a prompt, one at a time, from the last `context` ids.

    Each step feeds the model the window of the last `context` ids (the prompt left-padded with
    `pad_id` while shorter) and draws the next id from `softmax(logits / temperature)`.

    Args:
      model: a model with `next_logits(int[B, context]) -> [B, vocab]` (both models here).
      prompt_ids: `int[length]`, the prompt (may be empty).
      context: the window length the model was trained on.
      num_chars: ids to generate.
      temperature: > 0 scales the logits; 0 takes the most likely id (greedy).
      seed: the sampling seed.
      pad_id: the id that fills the window before the prompt.

    Returns:
      `int32[num_chars]`, the generated ids.

    Raises:
      ValueError: for a non-positive `context` or `num_chars`, or a negative temperature.
    """
    if not isinstance(context, int) or context <= 0:
        raise ValueError(f"context must be a positive int, got {context!r}")
    if not isinstance(num_chars, int) or num_chars <= 0:
        raise ValueError(f"num_chars must be a positive int, got {num_chars!r}")
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0 (0: greedy), got {temperature!r}")
    prompt_ids = np.asarray(prompt_ids, np.int32).reshape(-1)
    buffer = np.concatenate([np.full(context, pad_id, np.int32), prompt_ids])
    graphdef, state = nnx.split(model)

    @jax.jit
    def step(state, window, key):
        logits = nnx.merge(graphdef, state).next_logits(window)[0]
        if temperature == 0:
            return jnp.argmax(logits).astype(jnp.int32)
        return jax.random.categorical(key, logits / temperature).astype(jnp.int32)

    key = jax.random.PRNGKey(seed)
    out = np.empty(num_chars, np.int32)
    for i in range(num_chars):
        window = jnp.asarray(buffer[buffer.shape[0] - context :][None, :])
        out[i] = int(step(state, window, jax.random.fold_in(key, i)))
        buffer = np.append(buffer[1:], out[i])
    return out
