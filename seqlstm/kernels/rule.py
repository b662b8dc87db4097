"""Where `backend="auto"` takes the native CPU kernel instead of the scan (float32, on CPU).

Measured with `benchmarks/native_rule.py` (one layer, best of interleaved medians) on the 2-core
AMD EPYC of benchmarks/README.md; native / scan speed-up, forward / training step:

  (B, T, D, H)          speed-up     (B, T, D, H)          speed-up
  (32, 100, 128, 128)   1.54 / 1.66  (64, 16, 256, 256)    1.10 / 1.10
  (64, 100, 256, 256)   1.03 / 1.17  (64, 16, 64, 256)     1.73 / 1.21
  (128, 50, 512, 512)   0.73 / 1.03  (128, 512, 16, 32)    0.41 / 1.15
  (16, 512, 64, 64)     1.21 / 1.44  (128, 64, 16, 32)     1.22 / 1.56
  (32, 30, 32, 32)      1.26 / 1.79

The training step (the kernel's backward: one reverse loop, then every weight and input gradient
as one matmul) wins at every shape above, alone. Inside a whole model it did not at H = 256:
the default G2P config (2-layer bidirectional LSTM(256) encoder, batch 64, ~10-16 letters) trained
at 60.7 ms/step with the kernel against 56.5 with the scan (0.93x; not profiled further), so
the rule keeps the scan above H = 128. The forward pass alone loses where the per-step
`dnnl_sgemm` (which packs the recurrent kernel again at every step) or its per-call cost
dominates: many rows and steps, or a wide H over many steps. There a forward-only call
(evaluation, decoding) runs the scan and only differentiated calls run the kernel.
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
    del features
    return batch * time <= 16384 and (hidden <= 128 or time <= 32)
