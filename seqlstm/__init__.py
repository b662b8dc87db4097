"""seqlstm: LSTM sequence models in JAX and Flax NNX, with Keras semantics."""

from seqlstm import interop
from seqlstm.cell import LSTMState, gate_update, init_params, lstm_cell, zeros_state
from seqlstm.layers import LSTM, Bidirectional, RepeatVector, StackedLSTM
from seqlstm.masking import lengths_from_ids, lengths_from_mask
from seqlstm.scan import choose_projection, lstm_scan
from seqlstm.summary import count_params, summary

__version__ = "0.1.0"

__all__ = [
    "LSTM",
    "Bidirectional",
    "LSTMState",
    "RepeatVector",
    "StackedLSTM",
    "choose_projection",
    "count_params",
    "gate_update",
    "init_params",
    "interop",
    "lengths_from_ids",
    "lengths_from_mask",
    "lstm_cell",
    "lstm_scan",
    "summary",
    "zeros_state",
]
