"""Weight exchange with PyTorch (`torch.nn.LSTM`) and Keras 3 (`LSTM`, `Bidirectional`).

Neither framework is imported until one of these functions is called.
"""

from seqlstm.interop.keras_lstm import from_keras, to_keras
from seqlstm.interop.torch_lstm import from_torch, to_torch, torch_states

__all__ = ["from_keras", "from_torch", "to_keras", "to_torch", "torch_states"]
