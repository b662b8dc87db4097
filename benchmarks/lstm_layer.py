"""LSTM forward and training step: seqlstm beside Flax, PyTorch and Keras, in one run.

    python benchmarks/lstm_layer.py            # one layer at the four issue shapes, and the
                                               # 2-layer / bidirectional stacks at (64, 100, 256)
    python benchmarks/lstm_layer.py --write    # also rewrites the tables in benchmarks/README.md
    python benchmarks/lstm_layer.py --quick    # tiny shapes, few repetitions (a smoke check)

Every framework gets the same shapes, float32, batch-first input and the same loss (sum of squared
outputs of the last layer, all steps). "train" is the gradient with respect to every parameter and
the input. Times are medians after warm-up (compilation excluded). Ratios are
time_other / time_seqlstm: above 1 means seqlstm is faster.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

if not __package__:  # run as a file (python benchmarks/x.py): import as `python -m` would
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import jax  # noqa: E402

from benchmarks import cli  # noqa: E402
from benchmarks.common import best_medians, fwd_and_train_fns, machine, write_section  # noqa: E402

LAYER_SHAPES = [(32, 100, 128), (64, 100, 256), (128, 50, 512), (16, 512, 64)]
STACKS = [(2, False), (1, True), (2, True)]  # (layers, bidirectional) at (64, 100, 256)
# seqlstm at its defaults (backend="auto"), then pinned to each of its CPU backends: the scan and
# the native kernel (seqlstm/kernels/native.py; skipped where it is not built).
FRAMEWORKS = ("seqlstm", "seqlstm-scan", "seqlstm-native", "flax", "torch", "keras")


def _unplaced(params, x):
    return params, x


def bench_seqlstm(b, t, d, layers, bidirectional, place=_unplaced, backend="auto"):
    """Forward and training callables; `place(params, x)` may put the arrays on devices."""
    from flax import nnx

    import seqlstm

    model = seqlstm.StackedLSTM(
        d,
        (d,) * layers,
        bidirectional=bidirectional,
        return_sequences=True,
        backend=backend,
        rngs=nnx.Rngs(0),
    )
    model.eval()
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    params, x = place(params, jax.random.normal(jax.random.key(1), (b, t, d)))
    return fwd_and_train_fns(lambda p, x: nnx.merge(graphdef, p, rest)(x), params, x)


def bench_flax(b, t, d, layers, bidirectional, place=_unplaced):
    from flax import linen as nn

    class Stack(nn.Module):
        @nn.compact
        def __call__(self, x):
            for _ in range(layers):
                if bidirectional:
                    x = nn.Bidirectional(
                        nn.RNN(nn.OptimizedLSTMCell(d)), nn.RNN(nn.OptimizedLSTMCell(d))
                    )(x)
                else:
                    x = nn.RNN(nn.OptimizedLSTMCell(d))(x)
            return x

    model = Stack()
    x = jax.random.normal(jax.random.key(1), (b, t, d))
    variables, x = place(model.init(jax.random.key(0), x), x)
    return fwd_and_train_fns(model.apply, variables, x)


def bench_keras(b, t, d, layers, bidirectional):
    import keras

    stack = []
    for _ in range(layers):
        lstm = keras.layers.LSTM(d, return_sequences=True)
        stack.append(keras.layers.Bidirectional(lstm) if bidirectional else lstm)
    model = keras.Sequential([keras.Input((t, d)), *stack])
    params = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    x = jax.random.normal(jax.random.key(1), (b, t, d))
    return fwd_and_train_fns(lambda p, x: model.stateless_call(p, non_trainable, x)[0], params, x)


def bench_torch(b, t, d, layers, bidirectional, hidden=None):
    """PyTorch's forward and training-step functions; `hidden` defaults to the input size `d`."""
    import torch

    torch.manual_seed(0)
    lstm = torch.nn.LSTM(
        d, hidden or d, num_layers=layers, bidirectional=bidirectional, batch_first=True
    )
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

    return fwd, train


BENCH = {
    "seqlstm": bench_seqlstm,
    "seqlstm-scan": partial(bench_seqlstm, backend="scan"),
    "seqlstm-native": partial(bench_seqlstm, backend="native"),
    "flax": bench_flax,
    "torch": bench_torch,
    "keras": bench_keras,
}
LABEL = {
    "seqlstm": "seqlstm",
    "seqlstm-scan": "seqlstm scan",
    "seqlstm-native": "seqlstm native",
    "flax": "Flax nn.RNN",
    "torch": "PyTorch",
    "keras": "Keras 3 (JAX)",
}


def frameworks() -> tuple[str, ...]:
    """The columns this machine can fill: the native kernel only where it is built."""
    from seqlstm.kernels.native import native_available

    return tuple(f for f in FRAMEWORKS if f != "seqlstm-native" or native_available())


def measure(b, t, d, layers, bidirectional, reps, rounds) -> dict[str, tuple[float, float]]:
    """(forward, train) ms per framework, the best of `rounds` interleaved medians."""
    fns = {f: BENCH[f](b, t, d, layers, bidirectional) for f in frameworks()}
    return best_medians(fns, reps, rounds)


def run(cases, reps, rounds) -> str:
    """Times every framework on every case; returns a markdown table, printing rows as it goes."""
    names = frameworks()
    others = [f for f in names if f != "seqlstm"]
    head = ["case (B, T, D=H)"] + [f"{LABEL[f]} fwd / train ms" for f in names]
    head += [f"{LABEL[f]} / seqlstm" for f in others]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    print("\n".join(rows), flush=True)
    for name, (b, t, d, layers, bidirectional) in cases:
        times = measure(b, t, d, layers, bidirectional, reps, rounds)
        s = times["seqlstm"]
        cells = [name] + [f"{times[f][0]:.1f} / {times[f][1]:.1f}" for f in names]
        cells += [f"{times[f][0] / s[0]:.2f} / {times[f][1] / s[1]:.2f}" for f in others]
        rows.append("| " + " | ".join(cells) + " |")
        print(rows[-1], flush=True)
    return "\n".join(rows)


def main() -> None:
    parser = cli.parser(__doc__, quick="tiny shapes, few repetitions", reps=20, rounds=3)
    args = parser.parse_args()
    reps = 3 if args.quick else args.reps
    rounds = 1 if args.quick else args.rounds
    if args.quick:
        layer_cases = [("(4, 10, 8)", (4, 10, 8, 1, False))]
        stack_cases = [("2-layer bi (4, 10, 8)", (4, 10, 8, 2, True))]
    else:
        layer_cases = [(f"({b}, {t}, {d})", (b, t, d, 1, False)) for b, t, d in LAYER_SHAPES]
        stack_cases = [
            (f"{n}-layer{' bidirectional' if bi else ''} (64, 100, 256)", (64, 100, 256, n, bi))
            for n, bi in STACKS
        ]
    info = machine()
    print(info)
    layer_table = run(layer_cases, reps, rounds)
    stack_table = run(stack_cases, reps, rounds)
    if args.write and not args.quick:
        note = (
            f"Best of {rounds} interleaved rounds of the median ms over {reps} repetitions, "
            f"float32. Machine: {info}.\n\n"
        )
        write_section(
            "lstm_layer",
            "## One LSTM layer: seqlstm beside Flax, PyTorch, Keras\n\n" + note + layer_table,
        )
        write_section(
            "lstm_stack",
            "## Stacked and bidirectional LSTMs at (64, 100, 256)\n\n" + note + stack_table,
        )


if __name__ == "__main__":
    main()
