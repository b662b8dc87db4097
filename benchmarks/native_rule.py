"""The measurement behind `seqlstm.kernels.rule`: one LSTM layer, the scan against the native CPU
kernel (and PyTorch for reference), forward and training step, at the issue's four shapes and the
shapes of the shipped models' layers.

    python benchmarks/native_rule.py
    python benchmarks/native_rule.py --quick    # the smallest shape, few repetitions
    python benchmarks/native_rule.py --dtype=bfloat16   # mixed precision (rule.native_wins)

(B, T, D, H) per row; "train" is the gradient of the sum of squared outputs with respect to the
parameters and the input. Best of 2 interleaved medians of 10 (`--rounds`, `--reps`;
benchmarks/common.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a file (python benchmarks/x.py): import as `python -m` would
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import jax  # noqa: E402

from benchmarks import cli  # noqa: E402
from benchmarks.common import best_medians, fwd_and_train_fns, machine  # noqa: E402
from benchmarks.lstm_layer import LAYER_SHAPES, bench_torch  # noqa: E402

SHAPES = [(b, t, d, d) for b, t, d in LAYER_SHAPES] + [  # the four (D = H), then
    (64, 16, 256, 256),  # G2P's encoder layers (64 words of ~16 letters)
    (64, 16, 64, 256),
    (128, 512, 16, 32),  # the character model's long and short branches
    (128, 64, 16, 32),
    (32, 30, 32, 32),  # the reversal task
]


def layer_fns(b, t, d, h, backend, dtype=None):
    from flax import nnx

    import seqlstm

    layer = seqlstm.LSTM(
        d, h, return_sequences=True, backend=backend, dtype=dtype, rngs=nnx.Rngs(0)
    )
    layer.eval()
    graphdef, params, rest = nnx.split(layer, nnx.Param, ...)
    x = jax.random.normal(jax.random.key(1), (b, t, d))
    return fwd_and_train_fns(lambda p, x: nnx.merge(graphdef, p, rest)(x), params, x)


def main() -> None:
    parser = cli.parser(
        __doc__, quick="the smallest shape, few repetitions", write=False, reps=10, rounds=2
    )
    parser.add_argument(
        "--dtype", default="float32", choices=("float32", "bfloat16"),
        help="seqlstm's computation dtype (PyTorch runs float32 either way)",
    )  # fmt: skip
    args = parser.parse_args()
    reps, rounds = (3, 1) if args.quick else (args.reps, args.rounds)
    shapes = SHAPES[-1:] if args.quick else SHAPES
    print(machine(), f"; seqlstm in {args.dtype}")
    print(
        "| (B, T, D, H) | scan fwd / train ms | native fwd / train ms | PyTorch fwd / train ms "
        "| native speed-up fwd / train |"
    )
    print("|---|---|---|---|---|")
    for b, t, d, h in shapes:
        fns = {k: layer_fns(b, t, d, h, k, args.dtype) for k in ("scan", "native")}
        fns["torch"] = bench_torch(b, t, d, 1, False, hidden=h)
        ms = best_medians(fns, reps, rounds)
        s, n, p = ms["scan"], ms["native"], ms["torch"]
        print(
            f"| ({b}, {t}, {d}, {h}) | {s[0]:.2f} / {s[1]:.2f} | {n[0]:.2f} / {n[1]:.2f} "
            f"| {p[0]:.2f} / {p[1]:.2f} | {s[0] / n[0]:.2f} / {s[1] / n[1]:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
