"""seqlstm: LSTM sequence models in JAX and Flax NNX, with Keras semantics."""

from seqlstm import interop, tokens
from seqlstm.attention import Attention
from seqlstm.cell import LSTMState, gate_update, init_params, lstm_cell, zeros_state
from seqlstm.decoding import (
    DecodeResult,
    beam_search,
    greedy_decode,
    n_best,
    sequence_log_probs,
)
from seqlstm.kernels.native import native_available, native_reason
from seqlstm.layers import LSTM, Bidirectional, RepeatVector, StackedLSTM
from seqlstm.masking import lengths_from_ids, lengths_from_mask
from seqlstm.scan import choose_projection, lstm_scan
from seqlstm.seq2seq import Decoder, Encoder, EncoderDecoder
from seqlstm.summary import count_params, summary

__version__ = "0.1.0"

__all__ = [
    "LSTM",
    "Attention",
    "Bidirectional",
    "DecodeResult",
    "Decoder",
    "Encoder",
    "EncoderDecoder",
    "LSTMState",
    "RepeatVector",
    "StackedLSTM",
    "beam_search",
    "choose_projection",
    "count_params",
    "gate_update",
    "greedy_decode",
    "init_params",
    "interop",
    "lengths_from_ids",
    "lengths_from_mask",
    "lstm_cell",
    "lstm_scan",
    "n_best",
    "sequence_log_probs",
    "native_available",
    "native_reason",
    "summary",
    "tokens",
    "zeros_state",
]
