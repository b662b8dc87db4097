"""Data-parallel scaling: training steps per second on 1, 2, 4 and 8 simulated CPU devices.

    flock /tmp/seqlstm-heavy.lock python benchmarks/scaling.py --write
    python benchmarks/scaling.py --quick     # tiny shapes, 1 and 2 devices (a smoke check)

Each device count runs in its own process, started with
`XLA_FLAGS=--xla_force_host_platform_device_count=N` (JAX fixes the count when it starts), and
trains through the train stack's own pieces: `config.parallel.mesh_shape=(N,)` builds the mesh,
every step's batch is split over it and placed from the host, and the jitted, NaN-guarded
`train_step` runs with fixed shardings. The global batch stays the same for every N (strong
scaling), so N devices each get 1/N of it. "no mesh" is the default one-device path.

Simulated devices are not extra hardware: all N share the machine's cores. On a machine with
fewer cores than devices the table is not a scaling curve: it shows what splitting a step costs
(per-device dispatch, the gradient all-reduce, smaller matrix products) against what running the
shards side by side recovers of the cores one device leaves idle. On N real GPUs each device
brings its own compute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

if not __package__:  # run as a file (python benchmarks/x.py): import as `python -m` would
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from benchmarks import cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = {
    "stacked": "stacked LSTM (reverse task, `stacked_seq`, H=128, T=16, batch 256)",
    "seq2seq": "encoder-decoder (biLSTM(64) encoder, attention, T=16, batch 64)",
}


def config_for(workload: str, quick: bool):
    from configs.reverse import get_config
    from configs.seq2seq import get_config as seq2seq_config

    if workload == "stacked":
        config = get_config("variant=stacked_seq,len=16")
        config.model.hidden_size = 16 if quick else 128
        config.train.batch_size = 32 if quick else 256
        config.data.num_train = 1000
    else:
        config = seq2seq_config("smoke" if quick else "")
        config.data.num_train = 200 if quick else 2000
    return config


def child(workload: str, devices: int, mesh: bool, steps: int, reps: int, quick: bool) -> dict:
    """Steps per second of `workload` on this process's devices: the fastest of `reps` runs of
    `steps` steps, after one compiling step (the fastest, because other work on a shared machine
    only ever slows a run down)."""
    import jax

    from seqlstm.train import build, create_train_state, split_model
    from seqlstm.train.nonfinite import guard_nonfinite
    from seqlstm.train.parallel import from_config
    from seqlstm.train.steps import make_train_step

    assert jax.device_count() == devices, jax.devices()
    config = config_for(workload, quick)
    config.parallel.mesh_shape = (devices,) if mesh else ()
    data, model, tx = build(config)
    par = from_config(config.parallel)
    batch_size = config.train.batch_size
    par.check_batch_size(batch_size)
    model_def, params = split_model(model)
    state = par.put(create_train_state(params, tx, config.seed))
    step = par.jit_train_step(guard_nonfinite(make_train_step(model_def, tx)), state)
    from seqlstm.data import train_batches

    def batches():
        epoch = 0
        while True:
            yield from par.train_batches(
                train_batches, data["train"], batch_size, seed=0, epoch=epoch
            )
            epoch += 1

    source = batches()
    state, m = step(state, next(source)[1])  # compiles
    jax.block_until_ready(m)
    rates = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(steps):
            state, m = step(state, next(source)[1])
        jax.block_until_ready((state, m))
        rates.append(steps / (time.perf_counter() - t0))
    return {"steps_per_sec": max(rates), "batch_size": batch_size}


def run_child(workload: str, devices: int, mesh: bool, args) -> dict:
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    env["JAX_PLATFORMS"] = "cpu"
    cmd = [sys.executable, __file__, "--child", workload, "--devices", str(devices)]
    cmd += ["--steps", str(args.steps), "--reps", str(args.reps)]
    cmd += ["--mesh"] if mesh else []
    cmd += ["--quick"] if args.quick else []
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    if proc.returncode:
        raise RuntimeError(f"{workload} on {devices} devices failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = cli.parser(__doc__, reps=7, rounds=2)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--child", choices=sorted(WORKLOADS))
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--mesh", action="store_true")
    args = parser.parse_args()
    if args.child:
        out = child(args.child, args.devices, args.mesh, args.steps, args.reps, args.quick)
        print(json.dumps(out))
        return

    from benchmarks.common import machine, write_section

    counts = (1, 2) if args.quick else (1, 2, 4, 8)
    info = machine()
    print(info, flush=True)
    rows = [
        "| model | devices | steps/s | examples/s | vs no mesh |",
        "|---|---|---|---|---|",
    ]
    print("\n".join(rows), flush=True)
    cells = [(w, d, m) for w in WORKLOADS for d, m in [(1, False), *((n, True) for n in counts)]]
    best: dict = {}
    for _ in range(args.rounds):  # whole sweeps, so that a busy minute does not hit one cell only
        for cell in cells:
            r = run_child(*cell, args)
            if cell not in best or r["steps_per_sec"] > best[cell]["steps_per_sec"]:
                best[cell] = r
    for workload in WORKLOADS:
        base = None
        for devices, mesh in [(1, False), *((n, True) for n in counts)]:
            r = best[(workload, devices, mesh)]
            base = base or r["steps_per_sec"]
            label = f"{devices}" + ("" if mesh else " (no mesh)")
            rows.append(
                f"| {workload} | {label} | {r['steps_per_sec']:.1f} "
                f"| {r['steps_per_sec'] * r['batch_size']:.0f} "
                f"| {r['steps_per_sec'] / base:.2f}x |"
            )
            print(rows[-1], flush=True)
    if args.write and not args.quick:
        cores = os.cpu_count()
        note = (
            "`python benchmarks/scaling.py`: one training step (forward, backward, Adam update, "
            f"batch placement from the host), the fastest of {args.reps} runs of {args.steps} "
            f"steps in each of {args.rounds} sweeps, the global batch fixed. Models: "
            + "; ".join(f"{k}: {v}" for k, v in WORKLOADS.items())
            + f". Machine: {info}.\n\n"
            f"**These devices are simulated on {cores} CPU cores**: N devices share the same "
            "cores. A gain here comes from running a step's shards side by side on cores that "
            "one device's small, sequential computation leaves idle; a loss from per-device "
            "dispatch, the gradient all-reduce and smaller matrix products. Neither predicts N "
            "real GPUs, where each device brings its own compute.\n\n"
        )
        write_section("scaling", "## Data-parallel scaling\n\n" + note + "\n".join(rows))


if __name__ == "__main__":
    main()
