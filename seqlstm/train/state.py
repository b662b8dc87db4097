"""The training state as a plain pytree, and the static half of an NNX model.

An NNX module is split once into a static `ModelDef` (graph definitions for training and
evaluation mode, and non-parameter state such as RNG streams) and its parameters. Everything that
changes during training lives in `TrainState`, a pytree, so `train_step(state, batch)` is a pure
function jitted once, and the whole state is what a checkpoint holds: with the parameters, the
state a model carries from batch to batch (`seqlstm.task.Carry`; empty for most models).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from seqlstm.task import DEFAULT_BATCH_FIELDS, Carry, batch_fields, model_args


class TrainState(NamedTuple):
    """Everything a training step reads and writes.

    Attributes:
      step: int32 scalar, optimizer steps taken.
      params: the model's `nnx.Param` state.
      opt_state: the optax state.
      rng: uint32[2] base key; step `s` uses `fold_in(rng, s)` (dropout), so the randomness of a
        step does not depend on how the run got there.
      carry: the model's `seqlstm.task.Carry` state after the last step (an empty `nnx.State`
        for a model that carries nothing; None: not carried at all).
    """

    step: jax.Array
    params: Any
    opt_state: Any
    rng: jax.Array
    carry: Any = None


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
      carry: the model's `seqlstm.task.Carry` state as built (zeros; an empty `nnx.State` for a
        model that carries nothing): what a fresh `TrainState` starts from, and what evaluation
        merges (evaluation never carries state from one batch to the next).
    """

    train_def: Any
    eval_def: Any
    rest: Any
    streams: tuple[str, ...] = ()
    fields: tuple[str, ...] = DEFAULT_BATCH_FIELDS
    carry: Any = dataclasses.field(default_factory=lambda: nnx.State({}))

    def _merge(self, params, train: bool, carry=None, rng: jax.Array | None = None) -> nnx.Module:
        graphdef = self.train_def if train else self.eval_def
        carry = self.carry if carry is None else carry
        # copy=True: reseeding and the model's own writes must not reach `self.rest`.
        model = nnx.merge(graphdef, params, carry, self.rest, copy=True)
        if train and rng is not None and self.streams:
            nnx.reseed(model, **{name: rng for name in self.streams})
        return model

    def apply(
        self, params, *args, train: bool = False, rng: jax.Array | None = None, **kwargs
    ) -> Any:
        """`model(*args, **kwargs)` with `params`; in training mode dropout draws from `rng`."""
        return self._merge(params, train, rng=rng)(*args, **kwargs)

    def apply_batch(
        self, params, batch: Mapping[str, jax.Array], train: bool = False, rng=None
    ) -> jax.Array:
        """The model's logits for `batch`: called on the fields it declares (`seqlstm.task`)."""
        return self.apply(params, *model_args(self.fields, batch), train=train, rng=rng)

    def train_batch(
        self, params, carry, batch: Mapping[str, jax.Array], rng: jax.Array | None = None
    ) -> tuple[jax.Array, Any]:
        """The model's logits for `batch` in training mode, starting from the carried state
        `carry`, and the state it carries on (`(logits, carry)`; None stays None)."""
        model = self._merge(params, True, carry, rng)
        logits = model(*model_args(self.fields, batch))
        return logits, (None if carry is None else nnx.state(model, Carry))

    def merge_eval(self, fetch: Callable[[Any], Any], params) -> nnx.Module:
        """The model in evaluation mode holding `fetch(params)` (e.g. gathered from a mesh)."""
        return nnx.merge(self.eval_def, fetch(params), self.carry, self.rest, copy=True)


def split_model(model: nnx.Module) -> tuple[ModelDef, Any]:
    """Splits `model` into its `ModelDef` and its parameters (`nnx.State`)."""
    train_def, params, carry, rest = nnx.split(
        nnx.view(model, deterministic=False, raise_if_not_found=False), nnx.Param, Carry, ...
    )
    eval_def, _, _, _ = nnx.split(
        nnx.view(model, deterministic=True, raise_if_not_found=False), nnx.Param, Carry, ...
    )
    streams = sorted(
        {s.key.tag for _, s in nnx.graph.iter_graph(model) if isinstance(s, nnx.RngStream)}
    )
    fields = batch_fields(type(model))
    return ModelDef(train_def, eval_def, rest, tuple(streams), fields, carry), params


def create_train_state(
    params, tx: optax.GradientTransformation, seed: int, carry: Any = None
) -> TrainState:
    """A fresh `TrainState` at step 0 for `params`, with the base key of `seed`, carrying
    `carry` (a `ModelDef.carry`; None carries nothing)."""
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=tx.init(params),
        rng=jax.random.PRNGKey(seed),
        carry=carry,
    )
