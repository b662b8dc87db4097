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

from pathlib import Path  # noqa: E402

if not __package__:  # run as a file (python benchmarks/x.py): import as `python -m` would
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import jax  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec  # noqa: E402

from benchmarks import cli  # noqa: E402
from benchmarks.common import best_medians, machine, write_section  # noqa: E402
from benchmarks.lstm_layer import LAYER_SHAPES, bench_flax, bench_seqlstm, bench_torch  # noqa: E402


def main() -> None:
    parser = cli.parser(__doc__, quick="one tiny shape, few repetitions", reps=20, rounds=3)
    args = parser.parse_args()
    reps, rounds = (3, 1) if args.quick else (args.reps, args.rounds)
    shapes = [(4, 10, 8)] if args.quick else LAYER_SHAPES
    assert jax.device_count() == DEVICES, jax.devices()
    mesh = jax.make_mesh((DEVICES,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    rows, replicated = (
        NamedSharding(mesh, PartitionSpec("data")),
        NamedSharding(mesh, PartitionSpec()),
    )

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
            names[0]: bench_seqlstm(b, t, d, 1, False),
            names[1]: bench_seqlstm(b, t, d, 1, False, place=split),
            names[2]: bench_flax(b, t, d, 1, False),
            names[3]: bench_flax(b, t, d, 1, False, place=split),
            "torch": bench_torch(b, t, d, 1, False),
        }
        best = best_medians(fns, reps, rounds)
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
