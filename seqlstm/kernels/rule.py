"""Where `backend="auto"` takes the native CPU kernel instead of the scan (float32, on CPU).

Measured with `benchmarks/native_rule.py` (one layer, best of 2 interleaved medians of 10) on the
2-core AMD EPYC of benchmarks/README.md, with the kernel's own tiles (lstm_cpu_loops.inc: the
input and recurrent products and the gate math of a step in one pass of register-blocked tiles
over both cores); native / scan speed-up, forward / training step:

  (B, T, D, H)          speed-up     (B, T, D, H)          speed-up
  (32, 100, 128, 128)   2.22 / 1.74  (64, 16, 256, 256)    2.38 / 1.20
  (64, 100, 256, 256)   1.38 / 1.23  (64, 16, 64, 256)     1.77 / 1.31
  (128, 50, 512, 512)   1.20 / 1.18  (128, 512, 16, 32)    2.88 / 1.37
  (16, 512, 64, 64)     2.54 / 1.96  (128, 64, 16, 32)     2.66 / 1.56
  (32, 30, 32, 32)      1.55 / 2.08

The kernel wins at every shape, forward and training, and inside every shipped model
(benchmarks/native_models.py, the G2P config included), so both answers are "yes" wherever the
kernel runs. The functions stay the one place a measured exception would go: an earlier kernel
(one `dnnl_sgemm` per step, which packed the recurrent kernel again every step) lost the forward
pass at wide H and long sequences, and there a forward-only call ran the scan
(`choose_backend`'s "native_train").
"""

from __future__ import annotations


def native_wins(batch: int, time: int, features: int, hidden: int) -> bool:
    """Whether the native kernel's training step (forward and backward) beats the scan's.

    Args:
      batch, time, features, hidden: B, T, D and H of one layer's call.

    Returns:
      True where the measurement favours the native kernel: every shape measured.
    """
    del batch, time, features, hidden
    return True


def native_forward_wins(batch: int, time: int, features: int, hidden: int) -> bool:
    """Whether the native kernel's forward pass alone beats the scan's (same arguments)."""
    del batch, time, features, hidden
    return True
