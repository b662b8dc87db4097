"""Where `backend="auto"` takes the native CPU kernel instead of the scan (float32, on CPU).

Measured on the 2-core AMD EPYC of benchmarks/README.md (one layer, forward and training step,
`benchmarks/lstm_layer.py` and the shapes of the shipped models): the kernel's training step
is faster than the scan's up to H = 128, and slower at H = 256 and 512, where the per-step
`dnnl_sgemm` (which packs the recurrent kernel again at every step) is no faster than XLA's own
product and the scan's fused backward already runs its weight gradients as one matmul. Its
forward pass alone wins at 64 <= H <= 128.
"""

from __future__ import annotations


def native_wins(batch: int, time: int, features: int, hidden: int) -> bool:
    """Whether the native kernel's training step (forward and backward) beats the scan's.

    Args:
      batch, time, features, hidden: B, T, D and H of one layer's call.

    Returns:
      True where the measurement favours the native kernel.
    """
    del batch, time, features
    return hidden <= 128


def native_forward_wins(batch: int, time: int, features: int, hidden: int) -> bool:
    """Whether the native kernel's forward pass alone beats the scan's (same arguments)."""
    del batch, time, features
    return 64 <= hidden <= 128
