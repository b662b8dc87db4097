"""Peak memory of an LSTM training step as T grows, with and without chunked rematerialisation.

    python benchmarks/memory.py           # B=16, H=D=256, T = 512, 2048, 8192
    python benchmarks/memory.py --write   # also rewrites its table in benchmarks/README.md
    python benchmarks/memory.py --quick   # tiny shapes (a smoke check)

Memory is XLA's own account of the compiled training step (`memory_analysis()`: temporaries plus
arguments and outputs), so it is exact and needs no sampling; Flax's `nn.RNN` is shown beside it.
Time is the median training step. `remat_chunk=c` keeps only every c-th state for the backward
pass and recomputes the rest, one chunk at a time.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

if not __package__:  # run as a file (python benchmarks/x.py): import as `python -m` would
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from benchmarks import cli  # noqa: E402
from benchmarks.common import machine, median_ms, write_section  # noqa: E402


def _mib(analysis) -> float:
    total = analysis.temp_size_in_bytes + analysis.argument_size_in_bytes
    return (total + analysis.output_size_in_bytes) / 2**20


def seqlstm_step(b, t, d, chunk):
    from seqlstm import lstm_scan
    from seqlstm.cell import init_params

    params = init_params(jax.random.key(0), d, d)
    x = jax.random.normal(jax.random.key(1), (b, t, d))

    def loss(p, x):
        y, _ = lstm_scan(p, x, remat_chunk=chunk)
        return jnp.sum(y * y)

    return jax.jit(jax.grad(loss)), (params, x)


def flax_step(b, t, d):
    from flax import linen as nn

    model = nn.RNN(nn.OptimizedLSTMCell(d))
    x = jax.random.normal(jax.random.key(1), (b, t, d))
    variables = model.init(jax.random.key(0), x[:, :2])

    def loss(v, x):
        y = model.apply(v, x)
        return jnp.sum(y * y)

    return jax.jit(jax.grad(loss)), (variables, x)


def measure(step, args, reps, timed=True):
    mem = _mib(step.lower(*args).compile().memory_analysis())
    ms = median_ms(lambda: jax.block_until_ready(step(*args)), reps, warmup=1) if timed else None
    return mem, ms


def main() -> None:
    parser = cli.parser(__doc__, reps=3, rounds=None)
    args = parser.parse_args()
    b, d = (2, 8) if args.quick else (16, 256)
    lengths = (16, 64) if args.quick else (512, 2048, 8192)
    info = machine()
    print(info)
    rows = [
        "| T | seqlstm MiB | ms/step | remat_chunk=√T MiB | ms/step | time cost "
        "| Flax nn.RNN MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    print("\n".join(rows), flush=True)
    for t in lengths:
        chunk = int(2 ** round(math.log2(math.sqrt(t))))
        mem, ms = measure(*seqlstm_step(b, t, d, None), args.reps)
        mem_r, ms_r = measure(*seqlstm_step(b, t, d, chunk), args.reps)
        mem_f, _ = measure(*flax_step(b, t, d), args.reps, timed=False)
        rows.append(
            f"| {t} | {mem:.0f} | {ms:.0f} | {mem_r:.0f} (chunk {chunk}) | {ms_r:.0f} "
            f"| {ms_r / ms:.2f}x | {mem_f:.0f} |"
        )
        print(rows[-1], flush=True)
    if args.write and not args.quick:
        note = (
            f"Training step (gradient of all parameters), B={b}, D=H={d}, float32; memory from "
            f"XLA's compiled memory analysis, time the median of {args.reps}. Machine: {info}.\n\n"
        )
        write_section(
            "memory", "## Memory of a training step as T grows\n\n" + note + "\n".join(rows)
        )


if __name__ == "__main__":
    main()
