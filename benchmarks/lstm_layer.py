"""One LSTM layer, forward and forward+backward: seqlstm beside Flax and PyTorch in one run.

    python benchmarks/lstm_layer.py            # the four issue shapes, prints a table with ratios
    python benchmarks/lstm_layer.py --write    # also rewrites the table in benchmarks/README.md
    python benchmarks/lstm_layer.py --quick    # tiny shapes, a few repetitions (a smoke check)

Every framework gets the same shapes, float32, batch-first input, and the same loss (sum of squared
outputs); the training step is the gradient with respect to all parameters and the input. Times are
medians over repetitions after warm-up (compile excluded). Ratios are time_other / time_seqlstm, so
> 1 means seqlstm is faster.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

SHAPES = [(32, 100, 128), (64, 100, 256), (128, 50, 512), (16, 512, 64)]
QUICK_SHAPES = [(4, 10, 8)]


def _median_ms(fn, reps: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def bench_seqlstm(b, t, d, reps):
    from flax import nnx

    import seqlstm

    layer = seqlstm.LSTM(d, d, return_sequences=True, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(layer)
    x = jax.random.normal(jax.random.key(1), (b, t, d))

    def apply(params, x):
        return nnx.merge(graphdef, params)(x)

    def loss(params, x):
        y = apply(params, x)
        return jnp.sum(y * y)

    fwd = jax.jit(apply)
    train = jax.jit(jax.grad(loss, argnums=(0, 1)))
    return (
        _median_ms(lambda: jax.block_until_ready(fwd(params, x)), reps),
        _median_ms(lambda: jax.block_until_ready(train(params, x)), reps),
    )


def bench_flax(b, t, d, reps):
    from flax import linen as nn

    model = nn.RNN(nn.OptimizedLSTMCell(d))
    x = jax.random.normal(jax.random.key(1), (b, t, d))
    variables = model.init(jax.random.key(0), x)

    def loss(v, x):
        y = model.apply(v, x)
        return jnp.sum(y * y)

    fwd = jax.jit(model.apply)
    train = jax.jit(jax.grad(loss, argnums=(0, 1)))
    return (
        _median_ms(lambda: jax.block_until_ready(fwd(variables, x)), reps),
        _median_ms(lambda: jax.block_until_ready(train(variables, x)), reps),
    )


def bench_torch(b, t, d, reps):
    import torch

    torch.manual_seed(0)
    lstm = torch.nn.LSTM(d, d, batch_first=True)
    x = torch.randn(b, t, d)
    xg = x.clone().requires_grad_(True)

    def fwd():
        with torch.no_grad():
            lstm(x)

    def train():
        lstm.zero_grad(set_to_none=True)
        xg.grad = None
        y, _ = lstm(xg)
        (y * y).sum().backward()

    return _median_ms(fwd, reps), _median_ms(train, reps)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return (
        f"{cpu}, {os.cpu_count()} cores, jax {jax.__version__} ({jax.default_backend()}), "
        f"torch {torch.__version__}, Python {platform.python_version()}"
    )


def run(shapes, reps) -> str:
    header = (
        "| (B, T, D=H) | seqlstm fwd / train | Flax nn.RNN fwd / train | PyTorch fwd / train "
        "| Flax / seqlstm | PyTorch / seqlstm |\n|---|---|---|---|---|---|"
    )
    rows = [header]
    print(header, flush=True)
    for b, t, d in shapes:
        s = bench_seqlstm(b, t, d, reps)
        f = bench_flax(b, t, d, reps)
        p = bench_torch(b, t, d, reps)
        row = (
            f"| ({b}, {t}, {d}) | {s[0]:.1f} / {s[1]:.1f} | {f[0]:.1f} / {f[1]:.1f} "
            f"| {p[0]:.1f} / {p[1]:.1f} | {f[0] / s[0]:.2f} / {f[1] / s[1]:.2f} "
            f"| {p[0] / s[0]:.2f} / {p[1] / s[1]:.2f} |"
        )
        rows.append(row)
        print(row, flush=True)
    return "\n".join(rows)


def write_readme(table: str, reps: int) -> None:
    path = Path(__file__).with_name("README.md")
    text = path.read_text() if path.exists() else ""
    block = (
        "<!-- lstm_layer:start -->\n"
        f"Median milliseconds over {reps} repetitions, float32, one layer. Machine: {machine()}.\n\n"
        f"{table}\n<!-- lstm_layer:end -->"
    )
    pattern = re.compile(r"<!-- lstm_layer:start -->.*<!-- lstm_layer:end -->", re.S)
    text = pattern.sub(block, text) if pattern.search(text) else text + "\n" + block + "\n"
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes, few repetitions")
    parser.add_argument("--write", action="store_true", help="rewrite benchmarks/README.md")
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    reps = 3 if args.quick else args.reps
    print(machine())
    table = run(QUICK_SHAPES if args.quick else SHAPES, reps)
    if args.write and not args.quick:
        write_readme(table, reps)


if __name__ == "__main__":
    main()
