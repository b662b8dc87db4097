r"""Stateful against windowed training of the character LM, at equal compute.

    python -m experiments.stateful_study --workdir=runs/stateful_study

trains `configs/char_lm.py` (one LSTM(128), 64 windows of 128 characters a step) twice per seed:
`windowed` on windows overlapping by half, each from zero states, and `stateful`
(`configs/char_lm.py:stateful`) on each document's consecutive windows as 64 streams carrying
the LSTM states across batches (truncated BPTT, reset at document starts). Same steps, same
batch shape, so the same compute per step; both are evaluated on the same validation and test
windows, each from zero states. Writes `results.json`, `table.md` and `stateful_study.png`
(validation bits per character against training seconds) to `--results_dir`, and the table into
the page there, `README.md`, between its table markers. `--only=stateful/seed0` reruns that run
alone into the results (rows named as in results.json, with the flags they were made with:
`--seeds=2` for the committed ones); `--replot` redraws the table and plot.
"""

from __future__ import annotations

import functools
import json
import math
import os

from absl import app, flags

from configs import char_lm
from experiments import study
from experiments.launch import one_line_errors
from experiments.study_flags import define_flags

STUDY = define_flags(
    workdir="runs/stateful_study", results_dir="experiments/results/stateful", seeds=1
)
_STEPS = flags.DEFINE_integer("steps", 400, "Training steps of every run.")
_EVAL_EVERY = flags.DEFINE_integer("eval_every", 100, "Steps between validation evaluations.")
_SMOKE = flags.DEFINE_bool("smoke", False, "Seconds-long runs on the smoke presets (tests).")

BITS = 1 / math.log(2.0)
VARIANTS = {"windowed": "", "stateful": "stateful"}


def grid(seeds: int, steps: int, eval_every: int) -> list[dict]:
    return [
        {"variant": v, "seed": s, "steps": steps, "eval_every": eval_every}
        for s in range(seeds)
        for v in VARIANTS
    ]


def run_name(spec: dict) -> str:
    return f"{spec['variant']}/seed{spec['seed']}"


def run_one(spec: dict, workdir: str, smoke: bool = False) -> dict:
    """Trains one run; its record holds the validation curve against training seconds."""
    presets = [p for p in (VARIANTS[spec["variant"]], f"seed={spec['seed']}") if p]
    config = char_lm.get_config(",".join(presets + (["smoke"] if smoke else [])))
    config.train.num_steps = spec["steps"]
    config.eval.every_steps = spec["eval_every"]
    config.train.log_every_steps = spec["eval_every"]
    config.train.checkpoint_every_steps = 0
    res, seconds = study.train(config, workdir)
    curve, train_seconds, last = [], 0.0, 0
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        for row in map(json.loads, filter(str.strip, f)):
            train_seconds += (row["step"] - last) / row["steps_per_sec"]
            last = row["step"]
            if "eval_loss" in row:
                curve.append([row["step"], train_seconds, row["eval_loss"] * BITS])
    return {
        "variant": spec["variant"],
        "seed": spec["seed"],
        "steps": res["steps"],
        "seconds": seconds,
        "train_seconds": train_seconds,
        "chars_per_sec": res["steps"] * config.train.batch_size * config.data.context / seconds,
        "val_bpc": res["val"]["loss"] * BITS,
        "test_bpc": res["test"]["loss"] * BITS,
        "curve": curve,
    }


def progress(r: dict) -> str:
    return f"val bpc {r['val_bpc']:.3f}, {r['seconds']:.0f}s"


def _cell(runs: list[dict], key: str, fmt: str) -> str:
    m, s = study.mean_std([r[key] for r in runs], ddof=1)
    return format(m, fmt) + (f" ± {format(s, fmt)}" if len(runs) > 1 else "")


def table(results: dict) -> str:
    lines = [
        "| training | steps | val bpc | test bpc | training s | wall s | chars/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for variant in VARIANTS:
        runs = [r for r in results["runs"] if r["variant"] == variant]
        if not runs:
            continue
        cell = functools.partial(_cell, runs)
        lines.append(
            f"| {variant} | {runs[0]['steps']} | {cell('val_bpc', '.3f')} | "
            f"{cell('test_bpc', '.3f')} | {cell('train_seconds', '.0f')} | "
            f"{cell('seconds', '.0f')} | {cell('chars_per_sec', ',.0f')} |"
        )
    return "\n".join(lines) + "\n"


def plot(results: dict, out_dir: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in results["runs"]:
        _, secs, bpc = zip(*r["curve"]) if r["curve"] else ((), (), ())
        ax.plot(secs, bpc, marker="o", label=f"{r['variant']} (seed {r['seed']})")
    ax.set_xlabel("training seconds (shared 2-core CPU)")
    ax.set_ylabel("validation bits per character")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "stateful_study.png"), dpi=120)
    plt.close(fig)


def main(argv: list[str]) -> None:
    del argv
    steps = 3 if _SMOKE.value else _STEPS.value
    eval_every = 3 if _SMOKE.value else _EVAL_EVERY.value
    stateful = study.Study(
        grid=grid(STUDY.seeds, steps, eval_every),
        name=run_name,
        run=functools.partial(run_one, smoke=_SMOKE.value),
        progress=progress,
        table=table,
        plot=plot,
    )
    STUDY.run(stateful, settings={"seeds": STUDY.seeds, "steps": steps, "eval_every": eval_every})


if __name__ == "__main__":
    app.run(one_line_errors(main))
