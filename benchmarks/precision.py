"""seqlstm in float32 and in mixed bfloat16 (float32 parameters and cell state), side by side.

    python benchmarks/precision.py [--write] [--quick]

bfloat16 runs the matmuls on bfloat16 inputs with float32 accumulation; gates, h and c stay
float32. Ratios are time_float32 / time_bfloat16: above 1 means bfloat16 is faster.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from common import machine, time_fwd_and_train, write_section  # noqa: E402

SHAPES = [(32, 100, 128), (64, 100, 256), (128, 50, 512), (16, 512, 64)]


def bench(b, t, d, dtype, reps):
    from seqlstm import lstm_scan
    from seqlstm.cell import init_params

    params = init_params(jax.random.key(0), d, d)
    x = jax.random.normal(jax.random.key(1), (b, t, d))

    return time_fwd_and_train(lambda p, x: lstm_scan(p, x, dtype=dtype)[0], params, x, reps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    reps = 3 if args.quick else args.reps
    shapes = [(4, 10, 8)] if args.quick else SHAPES
    info = machine()
    print(info)
    rows = [
        "| (B, T, D=H) | float32 fwd / train ms | bfloat16 fwd / train ms | float32 / bfloat16 |",
        "|---|---|---|---|",
    ]
    print("\n".join(rows), flush=True)
    for b, t, d in shapes:
        f32 = bench(b, t, d, jnp.float32, reps)
        bf16 = bench(b, t, d, jnp.bfloat16, reps)
        rows.append(
            f"| ({b}, {t}, {d}) | {f32[0]:.1f} / {f32[1]:.1f} | {bf16[0]:.1f} / {bf16[1]:.1f} "
            f"| {f32[0] / bf16[0]:.2f} / {f32[1] / bf16[1]:.2f} |"
        )
        print(rows[-1], flush=True)
    if args.write and not args.quick:
        write_section(
            "precision",
            f"Median ms over {reps} repetitions. Machine: {info}.\n\n" + "\n".join(rows),
        )


if __name__ == "__main__":
    main()
