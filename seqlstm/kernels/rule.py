"""Where `backend="auto"` takes the native CPU kernel instead of the scan (float32 on CPU).

Measured with `benchmarks/lstm_layer.py` (training step and forward of one layer, D = H).
"""

from __future__ import annotations


def native_wins(batch: int, time: int, features: int, hidden: int) -> bool:
    """Whether the native kernel is faster than the scan for one layer of this shape.

    Args:
      batch, time, features, hidden: B, T, D and H of the call.

    Returns:
      True where the measurement favours the native kernel.
    """
    return True
