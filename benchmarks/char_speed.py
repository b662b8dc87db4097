"""Two-branch character model: training throughput, and its LSTMs beside PyTorch's nn.LSTM.

    python benchmarks/char_speed.py            # the published shapes: 512/64, batch 128
    python benchmarks/char_speed.py --write    # also rewrites its section of benchmarks/README.md
    python benchmarks/char_speed.py --quick    # tiny shapes, few repetitions (a smoke check)

1. Training: the full `train_step` of the training stack (forward, backward, Adam) on batches
   gathered on the fly from the strided windows of the standard-library corpus, as
   `experiments.train` runs it. Characters per second counts predicted characters (one per
   window) and characters read (the window length per window).
2. The LSTM part: each branch's `Bidirectional(LSTM(32))` over embedded characters
   `[batch, T, 16]` (T = 512 and 64) against `torch.nn.LSTM(16, 32, bidirectional=True)`, forward
   and training step (gradient of the summed squares of the last outputs, both directions
   concatenated as the model uses them, with respect to the weights and the input). Medians after
   warm-up; ratio = time_torch / time_seqlstm, above 1 means seqlstm is faster. The training step
   is also timed with the core's `backward="autodiff"` (JAX's derivative of the scan) beside its
   default fused backward. Run it on an otherwise idle machine: PyTorch's threads in particular
   slow down many-fold when another process holds a core.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

if not __package__:  # run as a file (python benchmarks/x.py): import as `python -m` would
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import jax  # noqa: E402

from benchmarks import cli  # noqa: E402
from benchmarks.common import machine, median_ms, time_fwd_and_train, write_section  # noqa: E402


def bench_training(batch: int, long: int, short: int, steps: int) -> dict:
    """Steps per second of the real training step on windows read from the corpus."""
    from flax import nnx

    from seqlstm.data import train_batches
    from seqlstm.models import get_model
    from seqlstm.tasks import get_task
    from seqlstm.train import create_train_state, make_optimizer, make_train_step, split_model

    data = get_task("text", context=long, eval_windows=16)
    model = get_model(
        "two_branch", vocab_size=100, long_context=long, short_context=short, rngs=nnx.Rngs(0)
    )
    model_def, params = split_model(model)
    tx = make_optimizer({"name": "adam", "learning_rate": 3e-3, "grad_clip_norm": 1.0})
    state = create_train_state(params, tx, 0)
    step = jax.jit(make_train_step(model_def, tx))
    batches = train_batches(data["train"], batch, seed=0, epoch=0)
    for _ in range(3):  # compile and warm up
        state, m = step(state, next(batches)[1])
    jax.block_until_ready(m)
    start = time.perf_counter()
    for _ in range(steps):
        state, m = step(state, next(batches)[1])  # batches gathered on the fly, as in training
    jax.block_until_ready(m)
    seconds = (time.perf_counter() - start) / steps
    return {
        "ms_per_step": 1e3 * seconds,
        "predicted_chars_per_sec": batch / seconds,
        "read_chars_per_sec": batch * long / seconds,
    }


def bench_seqlstm(
    batch: int, time_steps: int, reps: int, backward: str = "fused"
) -> tuple[float, float]:
    from flax import nnx

    import seqlstm

    layer = seqlstm.Bidirectional(16, 32, backward=backward, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(layer, nnx.Param)
    x = jax.random.normal(jax.random.key(1), (batch, time_steps, 16))

    return time_fwd_and_train(lambda p, x: nnx.merge(graphdef, p)(x), params, x, reps)


def bench_torch(batch: int, time_steps: int, reps: int) -> tuple[float, float]:
    import torch

    torch.manual_seed(0)
    lstm = torch.nn.LSTM(16, 32, batch_first=True, bidirectional=True)
    x = torch.randn(batch, time_steps, 16)

    def last(x):
        _, (h_n, _) = lstm(x)
        return torch.cat([h_n[0], h_n[1]], dim=-1)  # forward final h, backward h at step 0

    def forward():
        with torch.no_grad():
            last(x)

    def train():
        xg = x.detach().requires_grad_(True)
        lstm.zero_grad(set_to_none=True)
        (last(xg) ** 2).sum().backward()

    return median_ms(forward, reps), median_ms(train, reps)


def main() -> None:
    parser = cli.parser(__doc__, quick="tiny shapes (a smoke check)", reps=None, rounds=None)
    args = parser.parse_args()
    batch, long, short = (8, 32, 8) if args.quick else (128, 512, 64)
    reps, steps = (3, 3) if args.quick else (10, 20)

    train = bench_training(batch, long, short, steps)
    rows = []
    for t in (long, short):
        s_fwd, s_train = bench_seqlstm(batch, t, reps)
        _, s_auto = bench_seqlstm(batch, t, reps, backward="autodiff")
        t_fwd, t_train = bench_torch(batch, t, reps)
        rows.append((t, s_fwd, t_fwd, s_train, s_auto, t_train))
        print(f"T={t}: seqlstm {s_fwd:.1f}/{s_train:.1f} ms, torch {t_fwd:.1f}/{t_train:.1f} ms")

    lines = [
        "## Two-branch character model (issue 5)",
        "",
        "`python benchmarks/char_speed.py --write`, float32 on CPU. "
        f"Training step of the full model ({long}/{short} contexts, batch {batch}, Adam, "
        "windows gathered on the fly from the standard-library corpus):",
        "",
        "| ms / step | predicted characters / s | characters read / s |",
        "|---|---|---|",
        f"| {train['ms_per_step']:.0f} | {train['predicted_chars_per_sec']:,.0f} | "
        f"{train['read_chars_per_sec']:,.0f} |",
        "",
        f"The LSTM part, one branch's `Bidirectional(LSTM(32))` on `[{batch}, T, 16]` beside "
        "`torch.nn.LSTM(16, 32, bidirectional=True)` (ms, median; ratio = torch / seqlstm, "
        "above 1: seqlstm faster):",
        "",
        "| T | forward seqlstm | forward torch | ratio | train seqlstm | train torch | ratio "
        "| train seqlstm, `backward='autodiff'` |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t, s_fwd, t_fwd, s_train, s_auto, t_train in rows:
        lines.append(
            f"| {t} | {s_fwd:.1f} | {t_fwd:.1f} | {t_fwd / s_fwd:.2f} | {s_train:.1f} | "
            f"{t_train:.1f} | {t_train / s_train:.2f} | {s_auto:.1f} |"
        )
    lines += ["", f"Machine: {machine()}."]
    body = "\n".join(lines)
    print(body)
    if args.write and not args.quick:
        write_section("char_speed", body)


if __name__ == "__main__":
    main()
