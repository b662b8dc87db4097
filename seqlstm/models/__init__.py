"""Task models composed from seqlstm layers, one file per family."""

from flax import nnx

from seqlstm.models.char import (
    CHAR_MODELS,
    StackedCharLM,
    TwoBranchCharModel,
    get_char_model,
    param_count,
    units_for_budget,
)
from seqlstm.models.reverse import (
    VARIANTS,
    LastRepeat,
    ReverseModel,
    StackedLastRepeat,
    StackedSeq,
    StateLastRepeat,
    StateSeq,
)
from seqlstm.models.reverse import get_model as get_reverse_model


def get_model(name: str, *, rngs: nnx.Rngs, **kwargs) -> nnx.Module:
    """Builds the model `name` of any family (`config.model`: `name` and keyword arguments).

    Raises:
      ValueError: for an unknown name or keyword argument, or a bad argument value.
    """
    if name in CHAR_MODELS:
        return get_char_model(name, rngs=rngs, **kwargs)
    if name in VARIANTS:
        return get_reverse_model(name, rngs=rngs, **kwargs)
    names = sorted([*VARIANTS, *CHAR_MODELS])
    raise ValueError(f"unknown model variant {name!r}; expected one of {names}")


__all__ = [
    "CHAR_MODELS",
    "VARIANTS",
    "LastRepeat",
    "ReverseModel",
    "StackedCharLM",
    "StackedLastRepeat",
    "StackedSeq",
    "StateLastRepeat",
    "StateSeq",
    "TwoBranchCharModel",
    "get_char_model",
    "get_model",
    "get_reverse_model",
    "param_count",
    "units_for_budget",
]
