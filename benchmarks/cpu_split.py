"""Every core for the launchers: each shipped config's training step on 1 CPU device and with the
batch split over one CPU device per core, and what `seqlstm/train/cpu_devices.py` chooses.

    python benchmarks/cpu_split.py            # every shipped config
    python benchmarks/cpu_split.py --write    # also rewrites its section of benchmarks/README.md
    python benchmarks/cpu_split.py --quick    # smoke presets, one round (a smoke check)

Each (config, device count) runs in a process of its own (the CPU device count is fixed when JAX
starts, and a one-device step in a two-device process takes a slower path), on the launcher's own
jitted step (`seqlstm.train.build_run`: model, loss, optimizer, NaN guard) over the config's own
batches; the processes take turns over `--rounds` rounds and the best median is kept.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ("reverse", "seq2seq", "chars", "char_lm")


def load_config(name: str, preset: str | None):
    sys.path.insert(0, str(ROOT))
    return importlib.import_module(f"configs.{name}").get_config(preset)


def worker(name: str, preset: str | None, devices: int, steps: int) -> dict:
    """Median seconds per training step of config `name` on `devices` CPU devices."""
    import jax

    jax.config.update("jax_num_cpu_devices", devices)
    from seqlstm.train import build_run, create_train_state

    config = load_config(name, preset)
    config.parallel.mesh_shape = (devices,) if devices > 1 else ()
    run = build_run(config)
    state = run.place.put(create_train_state(run.params, run.tx, config.seed))
    step = run.train_step(state)
    batches = [b for _, b in zip(range(steps + 3), _cycle(run), strict=False)]
    for b in batches[:3]:  # compile and warm up
        state, _ = step(state, b)
    jax.block_until_ready(state)
    times = []
    for b in batches[3:]:
        t0 = time.perf_counter()
        state, _ = step(state, b)
        jax.block_until_ready(state.params)
        times.append(time.perf_counter() - t0)
    times.sort()
    return {"seconds": times[len(times) // 2], "steps_per_epoch": run.steps_per_epoch}


def _cycle(run):
    epoch = 0
    while True:
        for _, batch in run.epoch(epoch):
            yield batch
        epoch += 1


def measure(name: str, preset: str | None, devices: int, steps: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", name, f"--devices={devices}", f"--steps={steps}"]
    if preset:
        cmd.append(f"--preset={preset}")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke presets, one round")
    parser.add_argument("--write", action="store_true", help="rewrite benchmarks/README.md")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--devices", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--preset", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.preset, args.devices, args.steps)))
        return

    sys.path.insert(0, str(ROOT))
    from common import machine, write_section

    from seqlstm.train import cpu_devices

    cores = os.cpu_count() or 1
    preset = "smoke" if args.quick else None
    rounds, steps = (1, 4) if args.quick else (args.rounds, args.steps)
    best: dict[tuple[str, int], float] = {}
    spe: dict[str, int] = {}
    for _ in range(rounds):
        for name in CONFIGS:
            for n in (1, cores):
                r = measure(name, preset, n, steps)
                best[name, n] = min(best.get((name, n), float("inf")), r["seconds"])
                spe[name] = r["steps_per_epoch"]
    lines = [
        f"Measured on {machine()}; training steps of each config's own model, loss and Adam, "
        f"median of {steps} steps, best of {rounds} rounds (`python benchmarks/cpu_split.py`).",
        "",
        f"| config | batch | steps/s, 1 device | steps/s, {cores} devices | speed-up | auto "
        "chooses | training time, 1 device / auto |",
        "|---|---:|---:|---:|---:|---|---:|",
        # training time: the config's steps at the measured rate (compilation and evaluation
        # excluded; the reverse config's 100 epochs, though early stopping may end it sooner)
    ]
    for name in CONFIGS:
        config = load_config(name, preset)
        one, split = 1 / best[name, 1], 1 / best[name, cores]
        chosen, why = cpu_devices.choose(config, cores)
        auto = split if chosen > 1 else one
        total = config.train.num_steps or config.train.num_epochs * spe[name]
        lines.append(
            f"| {name} | {config.train.batch_size} | {one:.1f} | {split:.1f} | {split / one:.2f}x "
            f"| {chosen} ({why}) | {total / one:.0f} s / {total / auto:.0f} s |"
        )
    table = "\n".join(lines)
    print(table)
    if args.write and not args.quick:
        write_section("cpu_split", table)


if __name__ == "__main__":
    main()
