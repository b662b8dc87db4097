"""Every core for the launchers: each shipped config's training step on 1 CPU device and with the
batch split over one CPU device per core, and what `seqlstm/train/cpu_devices.py` chooses.

    python benchmarks/cpu_split.py            # every shipped config
    python benchmarks/cpu_split.py --write    # also rewrites its section of benchmarks/README.md
    python benchmarks/cpu_split.py --quick    # smoke presets, one round (a smoke check)

Each device count runs in a child process of its own (the CPU device count is fixed when JAX
starts, and a one-device step in a two-device process takes a slower path), on the launcher's own
jitted step over the config's own batches (`train_step.launcher_step`); the children take turns
over `--rounds` rounds and the best median is kept.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if not __package__:  # run as a file (python benchmarks/x.py): import as `python -m` would
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from benchmarks import cli  # noqa: E402
from benchmarks.common import machine, write_section  # noqa: E402
from benchmarks.train_step import child_measurement, load_config  # noqa: E402
from seqlstm.train import build_run, cpu_devices  # noqa: E402

CONFIGS = ("reverse", "seq2seq", "chars", "char_lm", "g2p")  # g2p needs the g2p extra


def main() -> None:
    parser = cli.parser(__doc__, quick="smoke presets, one round", reps=20, rounds=2)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    preset = "smoke" if args.quick else None
    reps, rounds = (3, 1) if args.quick else (args.reps, args.rounds)
    best: dict[int, dict[str, float]] = {1: {}, cores: {}}
    for _ in range(rounds):
        for n in best:
            ms = child_measurement(CONFIGS, preset, n, reps, 1)
            best[n] = {k: min(v, best[n].get(k, float("inf"))) for k, v in ms.items()}
    lines = [
        f"Measured on {machine()}: the launcher's training step (model, loss, Adam) of each "
        f"config, median of {reps} steps, best of {rounds} rounds (`python "
        "benchmarks/cpu_split.py`). Training time: the config's steps at that rate (compilation "
        "and evaluation excluded; the reverse config's 100 epochs, which early stopping may cut).",
        "",
        f"| config | batch | steps/s, 1 device | steps/s, {cores} devices | speed-up | auto "
        "chooses | training time, 1 device / auto |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for name in CONFIGS:
        config = load_config(name, preset)
        one, split = 1e3 / best[1][name], 1e3 / best[cores][name]
        chosen, why = cpu_devices.choose(config, cores)
        auto = split if chosen > 1 else one
        steps = (
            config.train.num_steps or config.train.num_epochs * build_run(config).steps_per_epoch
        )
        lines.append(
            f"| {name} | {config.train.batch_size} | {one:.1f} | {split:.1f} | {split / one:.2f}x "
            f"| {chosen} ({why}) | {steps / one:.0f} s / {steps / auto:.0f} s |"
        )
    table = "\n".join(lines)
    print(table)
    if args.write and not args.quick:
        write_section("cpu_split", table)


if __name__ == "__main__":
    main()
