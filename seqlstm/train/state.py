"""The training state as a plain pytree, and the static half of an NNX model.

An NNX module is split once into a static `ModelDef` (graph definitions for training and
evaluation mode, and non-parameter state such as RNG streams) and its parameters. Everything that
changes during training lives in `TrainState`, a pytree, so `train_step(state, batch)` is a pure
function jitted once, and the whole state is what a checkpoint holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from seqlstm.task import DEFAULT_BATCH_FIELDS, batch_fields, model_args


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
      fields: the batch fields the model reads, in its call's order (`seqlstm.task`).
    """

    train_def: Any
    eval_def: Any
    rest: Any
    streams: tuple[str, ...] = ()
    fields: tuple[str, ...] = DEFAULT_BATCH_FIELDS

    def apply(
        self, params, *args, train: bool = False, rng: jax.Array | None = None, **kwargs
    ) -> Any:
        """`model(*args, **kwargs)` with `params`; in training mode dropout draws from `rng`."""
        graphdef = self.train_def if train else self.eval_def
        # copy=True: reseeding below must not write traced keys into `self.rest`.
        model = nnx.merge(graphdef, params, self.rest, copy=True)
        if train and rng is not None and self.streams:
            nnx.reseed(model, **{name: rng for name in self.streams})
        return model(*args, **kwargs)

    def apply_batch(
        self, params, batch: Mapping[str, jax.Array], train: bool = False, rng=None
    ) -> jax.Array:
        """The model's logits for `batch`: called on the fields it declares (`seqlstm.task`)."""
        return self.apply(params, *model_args(self.fields, batch), train=train, rng=rng)

    def merge_eval(self, fetch: Callable[[Any], Any], params) -> nnx.Module:
        """The model in evaluation mode holding `fetch(params)` (e.g. gathered from a mesh)."""
        return nnx.merge(self.eval_def, fetch(params), self.rest, copy=True)


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
    fields = batch_fields(type(model))
    return ModelDef(train_def, eval_def, rest, tuple(streams), fields), params


def create_train_state(params, tx: optax.GradientTransformation, seed: int) -> TrainState:
    """A fresh `TrainState` at step 0 for `params`, with the base key of `seed`."""
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=tx.init(params),
        rng=jax.random.PRNGKey(seed),
    )
