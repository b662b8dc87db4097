"""The models a config can name (`config.model.name`), and building one from `config.model`.

Every entry is an `nnx.Module` class whose constructor takes `config.model`'s other keys as
keyword arguments, and `rngs`. An import path `"package.module:Class"` names a model class of the
user's own (see `seqlstm.task` for what the training loop asks of it).
"""

from __future__ import annotations

import inspect
from typing import Any

from flax import nnx

from seqlstm.models.char import StackedCharLM, TwoBranchCharModel
from seqlstm.models.encoder_decoder import ENCODER_DECODERS
from seqlstm.models.reverse import VARIANTS
from seqlstm.models.stateful import StatefulCharLM
from seqlstm.registry import Registry
from seqlstm.summary import count_params
from seqlstm.task import batch_fields


def check_model_class(value: Any, what: str) -> None:
    """Raises ValueError unless `value` is an `nnx.Module` subclass with valid `batch_fields` and
    no `eval_hooks` (evaluation hooks come from the task, `seqlstm.task.Task.hooks`)."""
    if not (inspect.isclass(value) and issubclass(value, nnx.Module)):
        raise ValueError(f"{what} is {value!r}, not a model class (an nnx.Module subclass)")
    batch_fields(value)
    if hasattr(value, "eval_hooks"):
        raise ValueError(
            f"{what} ({value.__name__}) defines eval_hooks, which the training loop no longer "
            "reads: evaluation hooks come from the task; return them in its Task(hooks=...)"
        )


MODELS = Registry(
    "model",
    "config.model.name",
    check_model_class,
    {
        **VARIANTS,
        "two_branch": TwoBranchCharModel,
        "char_lm": StackedCharLM,
        "stateful_char_lm": StatefulCharLM,
        **ENCODER_DECODERS,
    },
)


def get_model(name: str, *, rngs: nnx.Rngs, **kwargs) -> nnx.Module:
    """Builds the model `name` (registered, or an import path) from keyword arguments.

    Raises:
      ValueError: for an unknown name, a path that is not a model class, an unknown keyword
        argument, or a bad argument value.
    """
    return MODELS.build(name, rngs=rngs, **kwargs)


def param_count(name: str, **kwargs) -> int:
    """Parameters of `get_model(name, **kwargs)`, counted from shapes (nothing is drawn)."""
    return count_params(nnx.eval_shape(lambda: get_model(name, rngs=nnx.Rngs(0), **kwargs)))
