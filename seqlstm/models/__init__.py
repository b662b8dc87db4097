"""Task models composed from seqlstm layers, one file per family."""

from seqlstm.models.reverse import (
    VARIANTS,
    LastRepeat,
    ReverseModel,
    StackedLastRepeat,
    StackedSeq,
    StateLastRepeat,
    StateSeq,
    get_model,
)

__all__ = [
    "VARIANTS",
    "LastRepeat",
    "ReverseModel",
    "StackedLastRepeat",
    "StackedSeq",
    "StateLastRepeat",
    "StateSeq",
    "get_model",
]
