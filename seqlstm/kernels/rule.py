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
(benchmarks/native_models.py, the G2P config included), so in float32 both answers are "yes"
wherever the kernel runs.

In bfloat16 (mixed precision; `python benchmarks/native_rule.py --dtype=bfloat16`) the answer
depends on the CPU. On one with bfloat16 units (avx512_bf16; `native.bf16_units()`) the kernel's
tiles run their products on them (vdpbf16ps), and the speed-up over the bfloat16 scan, forward /
training, was 1.4-48 / 1.00-4.7 at all nine shapes (1.79 / 1.16 at (64, 100, 256, 256), 1.53 / 1.07
at (128, 50, 512, 512), 1.39 / 1.00 at (64, 16, 256, 256)): the kernel everywhere. Without them
(float32 arithmetic on rounded operands: `SEQLSTM_NATIVE_ISA=avx512 python
benchmarks/native_rule.py --dtype=bfloat16`) it was 2.4-41 / 1.6-4.7 at the five shapes with
H <= 128, but 1.00 / 1.08 at (64, 100, 256, 256), 1.01 / 0.93 at (64, 16, 256, 256), 1.29 / 0.99
at (64, 16, 64, 256) and 0.84 / 0.88 at (128, 50, 512, 512) (the Zen 4 machine before read the
same pattern): XLA's bfloat16 products gain with size where float32 ones do not, so there
bfloat16 takes the kernel up to H = 128 only (`BF16_MAX_HIDDEN`).

The functions stay the one place a measured exception would go: an earlier kernel (one
`dnnl_sgemm` per step, which packed the recurrent kernel again every step) lost the forward pass
at wide H and long sequences, and there a forward-only call ran the scan (`choose_backend`'s
"native_train").
"""

from __future__ import annotations

BF16_MAX_HIDDEN = 128  # bfloat16 without bfloat16 units: the kernel up to this size, the scan above
# The input-feeding decoder's native forward loop: up to this many batch rows x units (above,
# its single-threaded gate and attention math loses to XLA's; see `native_feeding_wins`).
FEEDING_FORWARD_MAX = 128 * 256


def native_wins(
    batch: int, time: int, features: int, hidden: int, bf16: bool = False, units: bool = False
) -> bool:
    """Whether the native kernel's training step (forward and backward) beats the scan's.

    Args:
      batch, time, features, hidden: B, T, D and H of one layer's call.
      bf16: the computation is bfloat16 (mixed precision) rather than float32.
      units: the kernel's bfloat16 products run on the CPU's bfloat16 units
        (`seqlstm.kernels.native.bf16_units()`).

    Returns:
      float32, or bfloat16 on bfloat16 units: True at every shape measured. bfloat16 without
      them: where H <= 128 (the bfloat16 scan's products catch up as H grows; see the module
      docstring).
    """
    del batch, time, features
    return True if not bf16 or units else hidden <= BF16_MAX_HIDDEN


def native_forward_wins(
    batch: int, time: int, features: int, hidden: int, bf16: bool = False, units: bool = False
) -> bool:
    """Whether the native kernel's forward pass alone beats the scan's (same arguments)."""
    return native_wins(batch, time, features, hidden, bf16, units)


def native_feeding_wins(batch: int, hidden: int, forward_only: bool = False) -> bool:
    """Whether the input-feeding decoder's native loops (`seqlstm.feeding`, float32) beat its
    scans: the training step (forward and backward loops) at every shape measured, the forward
    loop alone up to `FEEDING_FORWARD_MAX` rows x units.

    `python benchmarks/feeding_rule.py` (additive attention, two layers unless noted; scan /
    native speed-up, forward / training step): (B, T, S, H) = (64, 9, 8, 256) 1.38 / 1.49 (G2P),
    (64, 12, 16, 256) 1.42 / 1.51, (128, 9, 8, 256) 1.08 / 1.71, (64, 9, 8, 512) 1.32 / 1.53,
    (128, 9, 8, 512) 0.68 / 1.14, (256, 9, 8, 512) 0.61 / 1.05 (configs/g2p.py:large), one
    layer: (32, 20, 20, 128) 2.30 / 2.64, (16, 30, 30, 64) 1.48 / 2.46, (8, 10, 10, 16)
    2.31 / 3.58. The native loops run their gate, attention and softmax math on one core (the
    products on every core, through oneDNN), which XLA spreads over both at large B x H.
    """
    return not forward_only or batch * hidden <= FEEDING_FORWARD_MAX
