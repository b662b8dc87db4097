"""Task models composed from seqlstm layers, one file per family."""

import inspect

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
from seqlstm.seq2seq import EncoderDecoder

# Sequence-to-sequence models by name; `config.model` holds the constructor's keyword arguments.
SEQ2SEQ_MODELS = {"encoder_decoder": EncoderDecoder}


def get_model(name: str, *, rngs: nnx.Rngs, **kwargs) -> nnx.Module:
    """Builds the model `name` of any family (`config.model`: `name` and keyword arguments).

    Raises:
      ValueError: for an unknown name or keyword argument, or a bad argument value.
    """
    if name in CHAR_MODELS:
        return get_char_model(name, rngs=rngs, **kwargs)
    if name in VARIANTS:
        return get_reverse_model(name, rngs=rngs, **kwargs)
    if name in SEQ2SEQ_MODELS:
        cls = SEQ2SEQ_MODELS[name]
        params = inspect.signature(cls.__init__).parameters
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            raise ValueError(
                f"model {name!r} got unknown arguments {unknown}; it takes {list(params)[1:]}"
            )
        return cls(rngs=rngs, **kwargs)
    names = sorted([*VARIANTS, *CHAR_MODELS, *SEQ2SEQ_MODELS])
    raise ValueError(f"unknown model variant {name!r}; expected one of {names}")


__all__ = [
    "CHAR_MODELS",
    "SEQ2SEQ_MODELS",
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
