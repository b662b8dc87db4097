"""Task models composed from seqlstm layers, one file per family; `registry` names them."""

from seqlstm.models.char import StackedCharLM, TwoBranchCharModel, units_for_budget
from seqlstm.models.encoder_decoder import ENCODER_DECODERS, EncoderDecoder
from seqlstm.models.registry import MODELS, get_model, param_count
from seqlstm.models.reverse import (
    VARIANTS,
    LastRepeat,
    ReverseModel,
    StackedLastRepeat,
    StackedSeq,
    StateLastRepeat,
    StateSeq,
)
from seqlstm.models.stateful import StatefulCharLM

__all__ = [
    "ENCODER_DECODERS",
    "MODELS",
    "VARIANTS",
    "LastRepeat",
    "EncoderDecoder",
    "ReverseModel",
    "StackedCharLM",
    "StackedLastRepeat",
    "StackedSeq",
    "StateLastRepeat",
    "StateSeq",
    "StatefulCharLM",
    "TwoBranchCharModel",
    "get_model",
    "param_count",
    "units_for_budget",
]
