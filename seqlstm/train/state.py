"""The training state as a plain pytree, and the static half of an NNX model.

An NNX module is split once into a static `ModelDef` (graph definitions for training and
evaluation mode, and non-parameter state such as RNG streams) and its parameters. Everything that
changes during training lives in `TrainState`, a pytree, so `train_step(state, batch)` is a pure
function jitted once, and the whole state is what a checkpoint holds.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx


class TrainState(NamedTuple):
    """Everything a training step reads and writes.

    Attributes:
      step: int32 scalar, optimizer steps taken.
      params: the model's `nnx.Param` state.
      opt_state: the optax state.
      rng: uint32[2] base key; step `s` uses `fold_in(rng, s)` (dropout), so the randomness of a
        step does not depend on how the run got there.
    """

    step: jax.Array
    params: Any
    opt_state: Any
    rng: jax.Array


@dataclasses.dataclass(frozen=True)
class ModelDef:
    """The static half of a split NNX model.

    Attributes:
      train_def: graph definition in training mode (dropout active).
      eval_def: graph definition in evaluation mode (dropout off).
      rest: non-parameter state (RNG streams), reseeded at every training step.
      streams: names of the RNG streams in `rest` (`"dropout"`, or `"default"` for a model built
        with `nnx.Rngs(seed)` alone); all are reseeded from the step key.
    """

    train_def: Any
    eval_def: Any
    rest: Any
    streams: tuple[str, ...] = ()

    def apply(
        self,
        params,
        *inputs: jax.Array,
        mask: jax.Array | None = None,
        train: bool = False,
        rng: jax.Array | None = None,
    ) -> jax.Array:
        """Runs the model on `inputs` with `params`; in training mode dropout draws from `rng`.

        `inputs` is `x` for the per-step models (called as `model(x, mask=mask)`), or
        `(source, source_lengths, target_in)` for an encoder-decoder (called with them alone).
        """
        graphdef = self.train_def if train else self.eval_def
        # copy=True: reseeding below must not write traced keys into `self.rest`.
        model = nnx.merge(graphdef, params, self.rest, copy=True)
        if train and rng is not None and self.streams:
            nnx.reseed(model, **{name: rng for name in self.streams})
        if len(inputs) == 1:
            return model(inputs[0], mask=mask)
        return model(*inputs)


def split_model(model: nnx.Module) -> tuple[ModelDef, Any]:
    """Splits `model` into its `ModelDef` and its parameters (`nnx.State`)."""
    train_def, params, rest = nnx.split(
        nnx.view(model, deterministic=False, raise_if_not_found=False), nnx.Param, ...
    )
    eval_def, _, _ = nnx.split(
        nnx.view(model, deterministic=True, raise_if_not_found=False), nnx.Param, ...
    )
    streams = sorted(
        {s.key.tag for _, s in nnx.graph.iter_graph(model) if isinstance(s, nnx.RngStream)}
    )
    return ModelDef(train_def, eval_def, rest, tuple(streams)), params


def create_train_state(params, tx: optax.GradientTransformation, seed: int) -> TrainState:
    """A fresh `TrainState` at step 0 for `params`, with the base key of `seed`."""
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=tx.init(params),
        rng=jax.random.PRNGKey(seed),
    )
