"""Building and checking a run from its config: data, model, optimizer, placement and batches.

`build_run(config)` checks everything a config says before anything is written or compiled, and
returns a `Run`: the one object the training loop asks for batches (placed on the devices), the
jitted steps and evaluation. It knows nothing of model families: the model and the task meet only
through the batch contract of `seqlstm.task`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import jax
import ml_collections
import numpy as np
import optax
from flax import nnx

from seqlstm.checks import check_dtype_available, check_int, check_rate
from seqlstm.data.batching import steps_per_epoch, train_batches
from seqlstm.data.bucketing import bucketed_batches, bucketed_steps_per_epoch, check_boundaries
from seqlstm.models.registry import MODELS, get_model
from seqlstm.task import (
    EvalHook,
    Task,
    batch_fields,
    check_fields,
    check_logits,
    check_split_data,
    check_trainable,
    split_size,
)
from seqlstm.tasks.registry import get_task
from seqlstm.train import nonfinite, parallel
from seqlstm.train.optim import make_optimizer
from seqlstm.train.state import ModelDef, split_model
from seqlstm.train.steps import make_eval_step, make_train_step


def check_config(config: ml_collections.ConfigDict) -> None:
    """Checks the training settings of `config` (data, model and optimizer check themselves),
    and that the model's dtypes (`config.model.dtype`, `*_dtype`) are ones JAX computes in:
    float64 only in JAX's x64 mode (`seqlstm.checks.check_dtype_available`).

    Raises:
      ValueError: naming the key, the value given and what was expected.
    """
    t = config.train
    check_int("config.train.batch_size", t.batch_size, 1)
    check_int("config.eval.batch_size", config.eval.batch_size, 1)
    for key in ("num_epochs", "num_steps", "patience", "stop_after_steps", "log_every_steps"):
        check_int(f"config.train.{key}", t[key], 0)
    check_int("config.train.checkpoint_every_steps", t.checkpoint_every_steps, 0)
    check_int("config.train.checkpoint_every_epochs", t.checkpoint_every_epochs, 0)
    check_int("config.train.max_to_keep", t.max_to_keep, 1)
    check_int("config.train.malloc_arenas", t.get("malloc_arenas", 0), 0)  # host_memory
    check_int("config.eval.every_steps", config.eval.every_steps, 0)
    check_int("config.seed", config.seed, 0)
    check_rate("config.train.label_smoothing", t.get("label_smoothing", 0.0))
    if t.num_epochs == 0 and t.num_steps == 0:
        raise ValueError("config.train.num_epochs or config.train.num_steps must be positive")
    if t.get("buckets"):
        check_boundaries(t.buckets)
    nonfinite.check_on_nan(t.get("on_nan", "stop"))
    for key, value in config.model.items():  # dtype, param_dtype, ...: the Flax names
        if key == "dtype" or key.endswith("_dtype"):
            check_dtype_available(f"config.model.{key}", value)


def build(
    config: ml_collections.ConfigDict,
) -> tuple[Task, nnx.Module, optax.GradientTransformation]:
    """Data, model and optimizer of `config`, all validated.

    Returns:
      `(task, model, tx)`: the `seqlstm.task.Task` of `config.data` (a mapping of its splits),
      the `nnx.Module` of `config.model` (its parameters drawn from `config.seed`), and the optax
      optimizer of `config.optim`.

    Raises:
      ValueError: for a bad value anywhere in the config, or a model that reads batch fields the
        task does not have.
    """
    check_config(config)
    data, model = config.data.to_dict(), config.model.to_dict()
    task = get_task(**data)
    check_fields(batch_fields(MODELS.resolve(model["name"])), task, model["name"], data["name"])
    batch_size = config.train.batch_size
    if batch_size > split_size(task["train"]):
        raise ValueError(
            f"config.train.batch_size={batch_size} is larger than the training split "
            f"({split_size(task['train'])} examples of data task {data['name']!r}); use at most "
            "that many, or more data"
        )
    model, tx = build_model(config)
    return task, model, tx


def build_model(
    config: ml_collections.ConfigDict,
) -> tuple[nnx.Module, optax.GradientTransformation]:
    """The model and optimizer of `config` without its data (what `build` returns after the
    task): the parameters drawn from `config.seed`, as `build` draws them."""
    rngs = nnx.Rngs(params=config.seed, dropout=config.seed + 1)
    model = get_model(**config.model.to_dict(), rngs=rngs)
    return model, make_optimizer(config.optim.to_dict())


@dataclasses.dataclass
class Run:
    """What the training loop needs of a config, built and checked by `build_run`.

    Attributes:
      config: the run's config.
      task: its data and evaluation hooks.
      model_def, params: the model, split (`seqlstm.train.state.split_model`).
      tx: the optimizer.
      place: the devices (`seqlstm.train.parallel`: one device or a mesh).
      steps_per_epoch: training batches per epoch.
      _epoch_batches: the epoch iterator: the task's own (`seqlstm.task.TrainOrder`), length
        buckets, or shuffled rows.
      hooks: the task's and the model class's evaluation hooks.
    """

    config: ml_collections.ConfigDict
    task: Task
    model_def: ModelDef
    params: Any
    tx: optax.GradientTransformation
    place: parallel.SingleDevice
    steps_per_epoch: int
    hooks: tuple[EvalHook, ...]
    _epoch_batches: Callable[..., Iterator] = dataclasses.field(repr=False)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[int, Any]]:
        """`(index, batch)` of training epoch `epoch` from batch `start` on, placed for the step."""
        t = self.config.train
        return self.place.train_batches(
            self._epoch_batches, self.task["train"], t.batch_size, seed=self.config.seed,
            epoch=epoch, start=start,
        )  # fmt: skip

    @property
    def eval_batch_size(self) -> int:
        return self.place.eval_batch_size(self.config.eval.batch_size)

    def has(self, split_name: str) -> bool:
        """Whether split `split_name` has target steps to evaluate (rows, and a mask not all
        False)."""
        split = self.task[split_name]
        return split_size(split) > 0 and bool(np.any(split["mask"]))

    def train_step(self, state) -> Callable:
        """The jitted `train_step(state, batch) -> (state, metrics)`, guarded against NaN."""
        smoothing = self.config.train.get("label_smoothing", 0.0)
        step = nonfinite.guard_nonfinite(make_train_step(self.model_def, self.tx, smoothing))
        return self.place.jit_train_step(step, state)

    def eval_step(self) -> Callable:
        """The jitted `eval_step(params, batch) -> sums`."""
        return self.place.jit_eval_step(make_eval_step(self.model_def))

    def model_maker(self, params) -> Callable[[], nnx.Module]:
        """Builds, when called, the model in evaluation mode holding `params` whole on this
        process's default device (for evaluation hooks that run the model)."""
        return partial(self.model_def.merge_eval, self.place.fetch, params)


def check_train_order(config: ml_collections.ConfigDict, place: parallel.SingleDevice) -> None:
    """Raises ValueError where a task's own batch order (`seqlstm.task.TrainOrder`) cannot
    apply: with length buckets, or over several processes (which plan batches on row ids)."""
    name = config.data.name
    if config.train.get("buckets"):
        raise ValueError(
            f"config.train.buckets={tuple(config.train.buckets)!r} cannot apply to data task "
            f"{name!r}, which orders its own training batches; set config.train.buckets=()"
        )
    if place.mesh is not None and jax.process_count() > 1:
        raise ValueError(
            f"data task {name!r} orders its own training batches, which runs in one process "
            f"only, not {jax.process_count()}; train it on one host"
        )


def check_task_data(
    config: ml_collections.ConfigDict, task: Task, model_def: ModelDef, params: Any
) -> int:
    """Checks the model against the task's data before anything is compiled: the logits the
    model returns for the first training batch (traced by `jax.eval_shape`, nothing computed)
    keep the batch contract, and then, with their number of classes `C`, every split's values do
    (finite inputs, targets in `[0, C)` where the mask is True; `seqlstm.task.check_split_data`),
    and the training mask keeps at least one step.

    Returns:
      `C`, the number of classes.

    Raises:
      ValueError: naming the model or the split and field, what it holds and what was expected.
    """
    where = f"data task {config.data.name!r}"
    check_trainable(task["train"], f"{where}, split 'train'")
    rows = {k: np.asarray(v[: config.train.batch_size]) for k, v in task["train"].items()}
    logits = jax.eval_shape(partial(model_def.apply_batch, train=False), params, rows)
    num_classes = check_logits(logits, rows["targets"].shape, f"model {config.model.name!r}")
    for name in task:
        check_split_data(task[name], num_classes, f"{where}, split {name!r}")
    return num_classes


def build_run(config: ml_collections.ConfigDict) -> Run:
    """Builds and checks the whole run of `config` (see `Run`), writing and compiling nothing.

    Raises:
      ValueError: for a bad config, a mesh that does not fit the devices or batch, or a model
        and data that break the batch contract (`check_task_data`).
    """
    task, model, tx = build(config)
    place = parallel.from_config(config.get("parallel"))
    place.check_batch_size(config.train.batch_size)
    model_def, params = split_model(model)
    check_task_data(config, task, model_def, params)
    train, buckets = task["train"], tuple(config.train.get("buckets", ()))
    batch_size = config.train.batch_size
    order = task.train_order
    if order is not None:
        check_train_order(config, place)
        spe = order.steps_per_epoch(train, batch_size)
        epoch_batches = order.batches
    elif buckets:
        spe = bucketed_steps_per_epoch(train, batch_size, buckets)
        epoch_batches = partial(bucketed_batches, boundaries=buckets)
    else:
        spe = steps_per_epoch(split_size(train), batch_size)
        epoch_batches = train_batches
    return Run(config, task, model_def, params, tx, place, spe, tuple(task.hooks), epoch_batches)
