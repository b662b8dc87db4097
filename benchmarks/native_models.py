"""The shipped configs' training step with the native kernel's rule on (today's `backend="auto"`)
and off (the scan everywhere, as before the kernel), side by side.

    python benchmarks/native_models.py [reverse seq2seq chars g2p]
    python benchmarks/native_models.py --quick   # the :smoke presets, few repetitions

Each step is the training stack's own (`train_step.launcher_step`, one device, the config's
default preset), compiled for every bucket width of its batches while the rule is set, then timed
on those batches in turn: best of 2 interleaved medians of 10 steps.
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a file (python benchmarks/x.py): import as `python -m` would
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import jax  # noqa: E402

from benchmarks import cli  # noqa: E402
from benchmarks.common import best_median_each, machine  # noqa: E402
from benchmarks.train_step import MODELS, jax_timer, launcher_step, load_config  # noqa: E402
from seqlstm.kernels import rule  # noqa: E402


def compare(name: str, preset: str | None = None, reps: int = 10, rounds: int = 2) -> dict:
    """ms per step of `configs/<name>.py:<preset>` with the rule off ("scan") and on ("auto"),
    the best of `rounds` interleaved medians of `reps` steps, and whether "auto" ran the kernel."""
    config = load_config(name, preset)
    measured = rule.native_wins
    fns, uses = {}, {}
    try:
        for label, wins in (("scan", lambda *shape: False), ("auto", measured)):
            rule.native_wins = wins
            step, state, batches = launcher_step(config, 1)
            for batch in batches:  # compile every bucket width while the rule is set
                jax.block_until_ready(step(state, batch))
            uses[label] = "seqlstm_lstm_backward" in step.lower(state, batches[0]).as_text()
            fns[label] = jax_timer(step, state, batches)
    finally:
        rule.native_wins = measured
    ms = best_median_each(fns, reps, rounds)
    return {**ms, "kernel": uses["auto"]}


def main() -> None:
    parser = cli.parser(
        __doc__, quick=":smoke presets, few repetitions", write=False, reps=10, rounds=2
    )
    parser.add_argument("models", nargs="*", help=f"some of {', '.join(MODELS)} (default: all)")
    args = parser.parse_args()
    unknown = sorted(set(args.models) - set(MODELS))
    if unknown:
        parser.error(f"unknown configs {unknown}; expected some of {MODELS}")
    preset, reps, rounds = ("smoke", 3, 1) if args.quick else (None, args.reps, args.rounds)
    print(machine())
    print("| config | scan ms/step | auto ms/step | speed-up | auto runs the kernel |")
    print("|---|---:|---:|---:|---|")
    for name in args.models or MODELS:
        r = compare(name, preset, reps, rounds)
        print(
            f"| {name} | {r['scan']:.2f} | {r['auto']:.2f} | {r['scan'] / r['auto']:.2f}x "
            f"| {r['kernel']} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
