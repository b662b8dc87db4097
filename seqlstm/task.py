"""The contract between data, models and the training loop.

**Splits and batches.** A task gives named splits (`"train"`, `"test"`, optionally `"val"`), each a
dict of numpy arrays sharing a leading example axis `n`; a batch is the same dict with `batch` rows.
The training loop reads `targets` and `mask` and passes the fields a model declares to the model;
it never looks for any other key. The fields seqlstm's own tasks use:

  field           dtype, shape              meaning
  inputs          float[n, T, D] or int[n, T]  per-step features, or token ids
  targets         int[n, T]                 class ids the logits are scored against (required)
  mask            bool[n, T]                True at the target steps that count (required)
  source          int[n, S]                 encoder-decoder: source token ids, right-padded
  source_lengths  int[n]                    encoder-decoder: valid source steps per row
  target_in       int[n, T]                 encoder-decoder: BOS + target, the teacher-forced input
  reset           bool[n]                   stateful models: the row starts a new stream (document),
                                            so the state carried into it is zeroed

A task may add fields of its own (any array with the leading example axis); rows a batch pads out
are zeros with an all-False mask, so they count for nothing. A sequence-classification task uses
`T = 1`: `targets: int[n, 1]`, `mask: bool[n, 1]`.

**Models.** A model is an `nnx.Module` class built from `config.model`'s keyword arguments (and
`rngs`) whose call returns logits `[batch, T, classes]` for the batch's `targets`. It declares the
batch fields it reads, in the order of its call's positional arguments, as a class attribute
`batch_fields` (default `("inputs",)`): the loop calls `model(*[batch[f] for f in batch_fields])`.

**Checked before training.** When a run is built, before anything is written or compiled, the
model's logits for one training batch (traced by `jax.eval_shape`) must be floating point
`[batch, T, C]` with the targets' `batch` and `T` (`check_logits`; the jitted steps check it
again when traced); then every split's floating fields must be finite and its targets lie in
`[0, C)` wherever the mask is True (`check_split_data`), and the training mask must keep at least
one step (`check_trainable`). Each failure is one ValueError naming the field, what it holds and
what was expected, never a number computed from a broadcast or an out-of-range gather.

**Evaluation hooks.** Loss, token and sequence accuracy are computed for every task. Anything
task-specific (decoding accuracy, per-position accuracy, bits per character) is an `EvalHook` that
the task provides (`Task.hooks`; those any task can use are in `seqlstm.tasks.hooks`), never the
model class: `hook(ctx) -> dict`, called on the validation split at every evaluation and on the
validation and test splits at the end (with no validation split, also once on a few test rows
before training, so that a broken hook fails early). What it returns goes into `results.json` and
`metrics.jsonl` as JSON (numpy and JAX numbers and arrays as numbers and lists; None counts as
`{}`), and its numbers into TensorBoard and the progress bar; the loop never knows what it
computed. A hook is not called on a split with no target steps, whose metrics are marked absent
(`seqlstm.train.evaluate`).

**Carried state.** A model may hold state that training carries from one batch to the next (a
stateful recurrent model's final LSTM states, as Keras's `stateful=True`): it keeps it in `Carry`
variables of fixed shape, reads it and writes it back in training mode. The loop keeps it in the
training state beside the parameters, passes it to each training step and takes the updated one
back, and checkpoints it, so a resumed run continues exactly; it never looks inside. Evaluation
never updates it. A model without `Carry` variables carries nothing.

**Batch order.** By default an epoch visits the training rows in a shuffled order fixed by
`(seed, epoch)`. A task whose rows must come in another order (consecutive windows of a stream)
gives a `TrainOrder`: its own epoch iterator and its length, equally a function of
`(seed, epoch)`, so resuming mid-epoch stays exact.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

Split = dict[str, np.ndarray]

# field: (dtype kinds allowed, rank(s)); the table in the module docstring says what each means.
FIELDS: dict[str, tuple[str, tuple[int, ...]]] = {
    "inputs": ("fiu", (2, 3)),
    "targets": ("iu", (2,)),
    "mask": ("b", (2,)),
    "source": ("iu", (2,)),
    "source_lengths": ("iu", (1,)),
    "target_in": ("iu", (2,)),
    "reset": ("b", (1,)),
}
REQUIRED = ("targets", "mask")
SPLITS = ("train", "val", "test")
# What batch planners (length bucketing, multi-process batch plans) read of a split, besides row
# ids: the valid target steps, and the source lengths where the task has them.
LENGTH_FIELDS = ("mask", "source_lengths")
# Fields along the source time axis S; every other field of rank >= 2 runs along the target's T.
SOURCE_FIELDS = ("source",)
DEFAULT_BATCH_FIELDS = ("inputs",)


def split_size(split: Mapping[str, np.ndarray]) -> int:
    """Number of examples in a split."""
    return int(split["targets"].shape[0])


def check_split(split: Any, where: str) -> None:
    """Raises ValueError unless `split` keeps the batch contract (module docstring).

    Args:
      split: a dict of arrays.
      where: the split's name for messages, e.g. `"data task 'parity', split 'train'"`.
    """
    if not isinstance(split, Mapping):
        raise ValueError(f"{where} must be a dict of arrays, got {type(split).__name__}")
    missing = [f for f in REQUIRED if f not in split]
    if missing:
        raise ValueError(f"{where} has no {missing} (has {sorted(split)}); every split needs both")
    n, first = None, None
    for name, value in split.items():
        shape, kind = np.shape(value), np.asarray(value[:0]).dtype.kind
        if not shape:
            raise ValueError(f"{where}: field {name!r} is a scalar; fields are [examples, ...]")
        if n is not None and shape[0] != n:
            raise ValueError(
                f"{where}: field {name!r} has {shape[0]} rows but {first!r} has {n}; every field "
                "has one row per example"
            )
        if n is None:
            n, first = shape[0], name
        if name in FIELDS:
            kinds, ranks = FIELDS[name]
            if kind not in kinds or len(shape) not in ranks:
                raise ValueError(
                    f"{where}: field {name!r} has dtype {np.asarray(value[:0]).dtype} and shape "
                    f"{shape}; the batch contract wants rank {' or '.join(map(str, ranks))} of "
                    f"kind {kinds!r} (seqlstm.task.FIELDS)"
                )
    if np.shape(split["mask"]) != np.shape(split["targets"]):
        raise ValueError(
            f"{where}: mask {np.shape(split['mask'])} and targets {np.shape(split['targets'])} "
            "must have the same shape"
        )


def check_logits(logits: Any, targets_shape: tuple[int, ...], where: str) -> int:
    """Raises ValueError unless `logits` keep the batch contract for targets of `targets_shape`:
    floating point `[batch, T, classes]` with the targets' `batch` and `T` (a Python check on
    shapes: inside a jitted step it runs once per trace, costing nothing per step).

    Args:
      logits: what the model returned (an array, a tracer or a `jax.ShapeDtypeStruct`).
      targets_shape: the batch's `targets` shape, `(batch, T)`.
      where: who returned them, for messages, e.g. `"model 'parity:ParityLSTM'"`.

    Returns:
      The number of classes `C`.
    """
    shape, dtype = getattr(logits, "shape", None), getattr(logits, "dtype", None)
    if shape is None or dtype is None:
        raise ValueError(
            f"{where} returned {type(logits).__name__}, not an array of logits; the batch "
            f"contract wants logits [batch, T, classes] for targets {tuple(targets_shape)} "
            "(return the logits alone)"
        )
    shape, expected = tuple(shape), f"[{', '.join(map(str, targets_shape))}, classes]"
    if len(shape) != 3 or shape[:2] != tuple(targets_shape) or not shape[2]:
        raise ValueError(
            f"{where} returned logits of shape {shape} for targets of shape "
            f"{tuple(targets_shape)}; the batch contract wants {expected}: one score per class "
            "at every target step (seqlstm.task)"
        )
    if not jnp.issubdtype(dtype, jnp.floating):  # bfloat16 too, which numpy does not know
        raise ValueError(
            f"{where} returned logits of dtype {jnp.dtype(dtype)}; logits must be floating point "
            "(float32, bfloat16): integer logits have no gradient, so nothing would train"
        )
    return shape[2]


def check_split_data(split: Mapping[str, np.ndarray], num_classes: int, where: str) -> None:
    """Raises ValueError unless `split`'s values can be trained and scored on: every floating
    field finite (a NaN or Inf input makes every loss it reaches NaN), and `targets` in
    `[0, num_classes)` wherever `mask` is True (elsewhere they are not read). Numpy, once per
    split, when the run is built.

    Args:
      split: a split keeping the batch contract (`check_split`).
      num_classes: `C`, the size of the model's logits' last axis.
      where: the split's name for messages, e.g. `"data task 'parity', split 'train'"`.
    """
    for name, value in split.items():
        value = np.asarray(value)
        if value.dtype.kind in "fc" and value.size:
            bad = ~np.isfinite(value)
            if bad.any():
                row = int(np.argwhere(bad)[0][0])
                raise ValueError(
                    f"{where}: field {name!r} {value.shape} holds {int(bad.sum())} NaN or Inf "
                    f"value(s) (the first in row {row}); every value must be finite, or the "
                    "loss is NaN: fix the data (a data error, not a learning-rate one)"
                )
    kept = np.asarray(split["targets"])[np.asarray(split["mask"], bool)]
    if kept.size and (kept.min() < 0 or kept.max() >= num_classes):
        outside = int(np.sum((kept < 0) | (kept >= num_classes)))
        raise ValueError(
            f"{where}: field 'targets' holds values in [{kept.min()}, {kept.max()}] where mask "
            f"is True ({outside} outside the range); the model's logits have {num_classes} "
            f"classes, so targets must lie in [0, {num_classes}) (or be masked out)"
        )


def check_trainable(split: Mapping[str, np.ndarray], where: str) -> None:
    """Raises ValueError if the training split's `mask` keeps no target step (nothing to learn
    from: every loss would be 0 and no parameter would change)."""
    mask = np.asarray(split["mask"])
    if not mask.any():
        raise ValueError(
            f"{where}: field 'mask' {mask.shape} is False everywhere, so no target step counts "
            "and nothing would train; the training split needs a True mask at the steps to learn"
        )


@dataclasses.dataclass
class EvalContext:
    """What an evaluation hook may read.

    Attributes:
      split_name: `"val"` or `"test"`.
      split: the split's arrays (numpy, whole).
      sums: the evaluation's summed step outputs (`loss_sum`, `tokens`, `position_correct`, ...).
      metrics: the evaluation's means (`loss`, `token_accuracy`, `sequence_accuracy`).
      batch_size: the evaluation batch size.
      model: the model in evaluation mode with the parameters evaluated, on this process's
        default device (built on first use: hooks that read only `sums` cost nothing).
      workdir: the run's directory, for files a hook writes (e.g. the test predictions); None
        where this process writes nothing (all but the first of a multi-process run) or outside
        a run.
    """

    split_name: str
    split: Mapping[str, np.ndarray]
    sums: Mapping[str, Any]
    metrics: Mapping[str, float]
    batch_size: int
    make_model: Callable[[], Any] = dataclasses.field(repr=False, default=lambda: None)
    workdir: str | None = None
    _model: Any = dataclasses.field(default=None, repr=False)

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = self.make_model()
        return self._model


EvalHook = Callable[[EvalContext], Mapping[str, Any]]


class Carry(nnx.Variable):
    """Model state carried from one training batch to the next (module docstring)."""


@dataclasses.dataclass(frozen=True)
class TrainOrder:
    """A task's own order of training batches (module docstring).

    Attributes:
      batches: `batches(split, batch_size, *, seed, epoch, start=0)` yields `(index, batch)` of
        one epoch from batch `start` on, as `seqlstm.data.train_batches`; every batch has
        `batch_size` rows.
      steps_per_epoch: `steps_per_epoch(split, batch_size)`, the batches `batches` yields.
    """

    batches: Callable[..., Iterator[tuple[int, Split]]]
    steps_per_epoch: Callable[[Split, int], int]


@dataclasses.dataclass(frozen=True, eq=False)
class Task(Mapping[str, Split]):
    """A task's splits and its evaluation hooks; reads as the mapping of its splits.

    Attributes:
      splits: `{"train", "test"}` and optionally `"val"`, each keeping the batch contract.
      hooks: `EvalHook`s run at each evaluation (module docstring).
      train_order: how an epoch orders the training batches; None: shuffled by `(seed, epoch)`.
    """

    splits: Mapping[str, Split]
    hooks: tuple[EvalHook, ...] = ()
    train_order: TrainOrder | None = None

    def __getitem__(self, name: str) -> Split:
        return self.splits[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.splits)

    def __len__(self) -> int:
        return len(self.splits)


def as_task(value: Any, where: str) -> Task:
    """`value` (a `Task`, or a plain mapping of splits) as a checked `Task`; a missing `"val"`
    becomes an empty split.

    Raises:
      ValueError: naming `where`, unless `value` holds `"train"` and `"test"` splits (and nothing
        but `SPLITS`) that keep the batch contract.
    """
    if not isinstance(value, Mapping):
        raise ValueError(
            f"{where} returned {type(value).__name__}; a task function returns a seqlstm.task.Task "
            "or a dict of splits {'train', 'val', 'test'}"
        )
    task = value if isinstance(value, Task) else Task(dict(value))
    unknown = sorted(set(task) - set(SPLITS))
    missing = [s for s in ("train", "test") if s not in task]
    if unknown or missing:
        raise ValueError(
            f"{where} returned splits {sorted(task)}; expected 'train', 'test' and optionally 'val'"
        )
    for name in task:
        check_split(task[name], f"{where}, split {name!r}")
    if "val" not in task:
        empty = {k: v[:0] for k, v in task["train"].items()}
        task = dataclasses.replace(task, splits={**task.splits, "val": empty})
    for hook in task.hooks:
        if not callable(hook):
            raise ValueError(f"{where}: hook {hook!r} is not callable")
    return task


def batch_fields(model_cls: type) -> tuple[str, ...]:
    """The batch fields a model class reads, in its call's order (module docstring)."""
    fields = getattr(model_cls, "batch_fields", DEFAULT_BATCH_FIELDS)
    if isinstance(fields, str) or not all(isinstance(f, str) for f in fields):
        raise ValueError(
            f"{model_cls.__name__}.batch_fields must be a tuple of field names, got {fields!r}"
        )
    return tuple(fields)


def check_fields(fields: tuple[str, ...], task: Task, model_name: str, task_name: str) -> None:
    """Raises ValueError if the model reads a field the task's splits lack."""
    for split_name in task:
        missing = [f for f in fields if f not in task[split_name]]
        if missing and split_size(task[split_name]):
            raise ValueError(
                f"model {model_name!r} reads batch fields {list(fields)} but data task "
                f"{task_name!r}'s split {split_name!r} has no {missing} (it has "
                f"{sorted(task[split_name])}); set the model's batch_fields or use another task"
            )


def model_args(fields: tuple[str, ...], batch: Mapping[str, Any]) -> tuple[Any, ...]:
    """The positional arguments of a model call: `batch`'s `fields`, in order."""
    return tuple(batch[f] for f in fields)


# --- kept for one release: the hooks any task can use moved to seqlstm.tasks.hooks ---------------

_MOVED = {"position_accuracy": "seqlstm.tasks.hooks", "bits_per_token": "seqlstm.tasks.hooks"}


def __getattr__(name: str) -> Any:
    """`position_accuracy` and `bits_per_token`, moved to `seqlstm.tasks.hooks` (imported on first
    use: that module imports this one)."""
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def scalars(values: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The numbers among `values` (nested dicts flattened as `a_b`), lists and text left out."""
    out: dict[str, float] = {}
    for k, v in values.items():
        if isinstance(v, Mapping):
            out.update(scalars(v, f"{prefix}{k}_"))
        elif isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
            out[f"{prefix}{k}"] = float(v)
    return out
