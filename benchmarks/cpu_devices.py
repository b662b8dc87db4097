"""Both cores for one LSTM: the batch split over 2 XLA CPU devices, beside PyTorch, in one run.

    python benchmarks/cpu_devices.py            # the four one-layer shapes of lstm_layer.py
    python benchmarks/cpu_devices.py --write    # also rewrites its section of benchmarks/README.md
    python benchmarks/cpu_devices.py --quick    # one tiny shape (a smoke check)

XLA:CPU runs each step's small recurrent matmul on one core (benchmarks/README.md, "Where the time
goes"). JAX's own data parallelism uses the other one: with
`XLA_FLAGS=--xla_force_host_platform_device_count=2` the CPU shows up as 2 devices, and a batch
sharded over them runs as two half-batch recurrences side by side (the weight gradients are summed
over the devices). This script sets that flag for itself (before JAX starts) and times, in one
process: seqlstm and Flax with the batch on one device and split over both, and PyTorch (which
uses both cores through oneDNN/OpenMP). The train stack does the same with
`config.parallel.mesh_shape = (2,)` (README, "Scaling out").
"""

from __future__ import annotations

import os
import sys

DEVICES = 2
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={DEVICES}"
)

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
from common import fwd_and_train_fns, machine, median_ms, write_section  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec  # noqa: E402
from lstm_layer import LAYER_SHAPES, bench_torch  # noqa: E402


def seqlstm_fns(b, t, d, placement):
    """Forward and training callables of one seqlstm layer; `placement(params, x)` puts the
    arrays on the devices."""
    from flax import nnx

    import seqlstm

    model = seqlstm.LSTM(d, d, return_sequences=True, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model)
    x = jax.random.normal(jax.random.key(1), (b, t, d))
    params, x = placement(params, x)
    return fwd_and_train_fns(lambda p, x: nnx.merge(graphdef, p)(x), params, x)


def flax_fns(b, t, d, placement):
    """Flax's nn.RNN(OptimizedLSTMCell), placed like `seqlstm_fns`."""
    from flax import linen as nn

    model = nn.RNN(nn.OptimizedLSTMCell(d))
    x = jax.random.normal(jax.random.key(1), (b, t, d))
    variables = model.init(jax.random.key(0), x)
    variables, x = placement(variables, x)
    return fwd_and_train_fns(model.apply, variables, x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one tiny shape, few repetitions")
    parser.add_argument("--write", action="store_true", help="rewrite benchmarks/README.md")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds, best kept")
    args = parser.parse_args()
    reps, rounds = (3, 1) if args.quick else (args.reps, args.rounds)
    shapes = [(4, 10, 8)] if args.quick else LAYER_SHAPES
    assert jax.device_count() == DEVICES, jax.devices()
    mesh = jax.make_mesh((DEVICES,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    rows, replicated = (
        NamedSharding(mesh, PartitionSpec("data")),
        NamedSharding(mesh, PartitionSpec()),
    )

    def one(params, x):
        return params, x

    def split(params, x):
        return jax.device_put(params, replicated), jax.device_put(x, rows)

    info = machine()
    print(info)
    names = ("seqlstm, 1 device", "seqlstm, 2 devices", "Flax, 1 device", "Flax, 2 devices")
    head = ["(B, T, D=H)", *(f"{n} fwd / train ms" for n in names), "PyTorch fwd / train ms"]
    head += ["PyTorch / seqlstm 2 devices", "seqlstm: 1 device / 2 devices"]
    table = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    print(table[0], flush=True)
    for b, t, d in shapes:
        fns = {
            names[0]: seqlstm_fns(b, t, d, one),
            names[1]: seqlstm_fns(b, t, d, split),
            names[2]: flax_fns(b, t, d, one),
            names[3]: flax_fns(b, t, d, split),
            "torch": bench_torch(b, t, d, 1, False),
        }
        best = {k: (float("inf"), float("inf")) for k in fns}
        for _ in range(rounds):
            for k, (fwd, train) in fns.items():
                now = (median_ms(fwd, reps), median_ms(train, reps))
                best[k] = (min(best[k][0], now[0]), min(best[k][1], now[1]))
        ours, torch = best[names[1]], best["torch"]
        cells = [f"({b}, {t}, {d})"] + [f"{best[k][0]:.1f} / {best[k][1]:.1f}" for k in fns]
        cells.append(f"{torch[0] / ours[0]:.2f} / {torch[1] / ours[1]:.2f}")
        one_dev = best[names[0]]
        cells.append(f"{one_dev[0] / ours[0]:.2f} / {one_dev[1] / ours[1]:.2f}")
        table.append("| " + " | ".join(cells) + " |")
        print(table[-1], flush=True)
    if args.write and not args.quick:
        write_section(
            "cpu_devices",
            "## Both cores for one LSTM: the batch over 2 CPU devices\n\n"
            f"`python benchmarks/cpu_devices.py --write`: one layer, float32, best of {rounds} "
            f"interleaved rounds of the median ms over {reps} repetitions, in a process started "
            f"with `--xla_force_host_platform_device_count={DEVICES}`. Machine: {info}.\n\n"
            + "\n".join(table),
        )


if __name__ == "__main__":
    main()
