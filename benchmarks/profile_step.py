"""Where the time of an LSTM training step goes, and how far matmul speed alone lets it go.

    python benchmarks/profile_step.py            # the four one-layer shapes of lstm_layer.py
    python benchmarks/profile_step.py --write    # also rewrites its section of benchmarks/README.md
    python benchmarks/profile_step.py --quick    # one tiny shape (a smoke check)

Two measurements per shape (B, T, D=H), float32:

1. The matmul floor. The recurrent product `h @ recurrent_kernel` ([B, H] @ [H, 4H]) must run
   once per step, one after another; every other product can be one large matmul over all T*B
   rows. Timing both on their own in XLA gives the floor an XLA program cannot go below:
   forward = T * t_step + t_big (the input projection), training = 2 * T * t_step + 4 * t_big
   (forward and backward recurrences; input projection, d kernel, d recurrent_kernel, d x).
   t_step includes a small elementwise combine of the product and the loop's own overhead, so
   the floor is slightly high.
   PyTorch's oneDNN LSTM is timed in the same run.
2. A profile of seqlstm's jitted training step (`jax.profiler` trace of XLA's thunks), the time
   of every operation summed into: matmuls run every step, matmuls run once over all steps,
   elementwise work run every step (gates, masks, writing the step's outputs), copies /
   transposes / buffer initialisation, and the rest.
"""

from __future__ import annotations

import collections
import gzip
import json
import sys
import tempfile
from pathlib import Path

if not __package__:  # run as a file (python benchmarks/x.py): import as `python -m` would
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from benchmarks import cli  # noqa: E402
from benchmarks.common import machine, median_ms, time_fwd_and_train, write_section  # noqa: E402
from benchmarks.lstm_layer import LAYER_SHAPES, bench_torch  # noqa: E402
from seqlstm.cell import init_params  # noqa: E402
from seqlstm.scan import lstm_scan  # noqa: E402

CATEGORIES = (
    "per-step matmuls",
    "whole-sequence matmuls",
    "per-step elementwise",
    "copies, transposes, init",
    "other",
)
# Trace events that wrap other events (loops, conditionals such as `cond.72`, whose branch's
# operations are traced on their own, executors, Python frames) or wait on threads.
_WRAPPERS = (
    "$",
    "ThunkExecutor",
    "Slinky",
    "PjitFunction",
    "CommonPjRtLoadedExecutable::ExecuteHelper",
    "while",
    "call",
    "cond",
)


def step_matmul_us(b: int, h: int, reps: int) -> float:
    """µs per step of the recurrent product `[B, H] @ [H, 4H]` inside a 100-step `lax.scan`."""
    w = jax.random.normal(jax.random.key(0), (h, 4 * h)) / h**0.5
    a = jax.random.normal(jax.random.key(1), (b, h))

    def step(c, _):
        z = c @ w  # every column is used, so XLA cannot shrink the product
        # tanh keeps the values of order 1 (no decay to zero or denormals over the steps).
        return jnp.tanh(z[:, :h] * z[:, h : 2 * h] + z[:, 2 * h : 3 * h] * z[:, 3 * h :]), None

    f = jax.jit(lambda c: jax.lax.scan(step, c, None, length=100)[0])
    return 10 * median_ms(lambda: f(a).block_until_ready(), reps)


def big_matmul_ms(rows: int, d: int, h: int, reps: int) -> float:
    """ms of one `[rows, D] @ [D, 4H]` matmul (the input projection over all steps)."""
    a = jax.random.normal(jax.random.key(0), (rows, d))
    w = jax.random.normal(jax.random.key(1), (d, 4 * h))
    f = jax.jit(jnp.matmul)
    return median_ms(lambda: f(a, w).block_until_ready(), reps)


def _category(name: str, per_call: float, steps: int) -> str:
    is_dot = "dot" in name or "ynn" in name or "xnn" in name or "onednn" in name
    every_step = per_call >= steps
    if is_dot:
        return CATEGORIES[0] if every_step else CATEGORIES[1]
    if every_step:
        return CATEGORIES[2]
    if any(k in name for k in ("copy", "transpose", "broadcast")):
        return CATEGORIES[3]
    return CATEGORIES[4]


def traced_events(run, reps: int) -> list[dict]:
    """The complete ('X') events of a `jax.profiler` trace of `reps` calls of `run()`."""
    with tempfile.TemporaryDirectory() as tmp:
        with jax.profiler.trace(tmp):
            for _ in range(reps):
                run()
        events = json.load(gzip.open(next(Path(tmp).rglob("*.trace.json.gz"))))
    events = events["traceEvents"] if isinstance(events, dict) else events
    return [e for e in events if e.get("ph") == "X"]


def trace_ms_by_category(run, reps: int, steps: int) -> dict[str, float]:
    """ms per call of `run()` (a blocking callable, already compiled) in each of `CATEGORIES`,
    from a `jax.profiler` trace of `reps` calls. An operation counts as "per-step" when it runs at
    least `steps` times per call (inside a recurrence of `steps` steps)."""
    total, count = collections.Counter(), collections.Counter()
    for e in traced_events(run, reps):
        name = e.get("name", "")
        if name.startswith(_WRAPPERS):
            continue
        total[name] += e.get("dur", 0)
        count[name] += 1
    out = dict.fromkeys(CATEGORIES, 0.0)
    for name, us in total.items():
        out[_category(name, count[name] / reps, steps)] += us / reps / 1e3
    return out


def profile_train_step(b: int, t: int, d: int, reps: int) -> dict[str, float]:
    """ms per training step in each of `CATEGORIES`, from a trace of `reps` steps."""
    params = init_params(jax.random.key(0), d, d)
    x = jax.random.normal(jax.random.key(1), (b, t, d))
    grad = jax.jit(jax.grad(lambda p, x: jnp.sum(lstm_scan(p, x)[0] ** 2), argnums=(0, 1)))
    for _ in range(3):
        jax.block_until_ready(grad(params, x))
    return trace_ms_by_category(lambda: jax.block_until_ready(grad(params, x)), reps, t)


def main() -> None:
    parser = cli.parser(__doc__, quick="one tiny shape, few repetitions", reps=20, rounds=None)
    args = parser.parse_args()
    reps = 3 if args.quick else args.reps
    shapes = [(4, 10, 8)] if args.quick else LAYER_SHAPES
    info = machine()
    print(info)
    floor_rows = [
        "| (B, T, D=H) | step matmul µs (GFLOP/s) | all-steps matmul ms (GFLOP/s) "
        "| matmul floor fwd / train ms | seqlstm fwd / train ms | PyTorch fwd / train ms "
        "| PyTorch / floor |",
        "|---|---|---|---|---|---|---|",
    ]
    prof_rows = [
        "| (B, T, D=H) | traced step ms | " + " | ".join(CATEGORIES) + " |",
        "|---|---|" + "---|" * len(CATEGORIES),
    ]
    for b, t, d in shapes:
        case = f"({b}, {t}, {d})"
        step_us = step_matmul_us(b, d, reps)
        big_ms = big_matmul_ms(b * t, d, d, reps)
        floor = (t * step_us / 1e3 + big_ms, 2 * t * step_us / 1e3 + 4 * big_ms)
        params = init_params(jax.random.key(0), d, d)
        x = jax.random.normal(jax.random.key(1), (b, t, d))
        ours = time_fwd_and_train(lambda p, x: lstm_scan(p, x)[0], params, x, reps)
        torch = tuple(median_ms(fn, reps) for fn in bench_torch(b, t, d, 1, False))
        flops = 2 * b * d * 4 * d
        floor_rows.append(
            f"| {case} | {step_us:.1f} ({flops / step_us / 1e3:.0f}) "
            f"| {big_ms:.2f} ({flops * t / big_ms / 1e6:.0f}) "
            f"| {floor[0]:.1f} / {floor[1]:.1f} | {ours[0]:.1f} / {ours[1]:.1f} "
            f"| {torch[0]:.1f} / {torch[1]:.1f} "
            f"| {torch[0] / floor[0]:.2f} / {torch[1] / floor[1]:.2f} |"
        )
        print(floor_rows[-1], flush=True)
        parts = profile_train_step(b, t, d, max(2, reps // 4))
        traced = sum(parts.values())
        cells = [f"{parts[c]:.1f} ({100 * parts[c] / traced:.0f}%)" for c in CATEGORIES]
        prof_rows.append(f"| {case} | {traced:.1f} | " + " | ".join(cells) + " |")
        print(prof_rows[-1], flush=True)
    if args.write and not args.quick:
        write_section(
            "profile",
            "## Where the time goes\n\n"
            f"`python benchmarks/profile_step.py --write`, float32, median of {reps}. "
            f"Machine: {info}.\n\n"
            "The matmul floor: what an XLA program would take if it did nothing but its "
            "matmuls, at the speed XLA runs them here (see the script's docstring). "
            "PyTorch / floor below 1 means oneDNN is faster than XLA's matmuls alone allow.\n\n"
            + "\n".join(floor_rows)
            + "\n\nseqlstm's training step, traced (ms per step and share of the traced "
            "operation time):\n\n" + "\n".join(prof_rows),
        )


if __name__ == "__main__":
    main()
