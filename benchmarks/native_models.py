"""The shipped configs' training step with the native kernel's rule on (today's `backend="auto"`)
and off (the scan everywhere, as before the kernel), side by side.

    python benchmarks/native_models.py [reverse seq2seq chars g2p]

Each step is the training stack's own (`train_step.launcher_step`, one device, the config's
default preset), compiled for every bucket width of its batches while the rule is set, then timed
on those batches in turn: best of 2 interleaved medians of 10 steps.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
from common import best_median_each, machine  # noqa: E402
from train_step import MODELS, jax_timer, launcher_step, load_config  # noqa: E402

from seqlstm.kernels import rule  # noqa: E402


def compare(name: str) -> dict[str, float]:
    """ms per step of `configs/<name>.py` with the rule off ("scan") and on ("auto")."""
    config = load_config(name, None)
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
    ms = best_median_each(fns, 10, 2)
    return {**ms, "kernel": uses["auto"]}


def main() -> None:
    print(machine())
    print("| config | scan ms/step | auto ms/step | speed-up | auto runs the kernel |")
    print("|---|---:|---:|---:|---|")
    for name in sys.argv[1:] or MODELS:
        r = compare(name)
        print(
            f"| {name} | {r['scan']:.2f} | {r['auto']:.2f} | {r['scan'] / r['auto']:.2f}x "
            f"| {r['kernel']} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
