r"""The character-model study: two branches, and how deep to stack.

    python -m experiments.char_study --workdir=runs/char_study

Question 1 (`configs/chars.py`, the published 512/64 two-branch model): the full model, the long
branch only and the short branch only, each single branch also widened to the full model's
parameter count; validation bits per character, plus what each branch contributes
(`experiments/char_analysis.py`: shuffled branch input, accuracy by context category).
Question 2 (`configs/char_lm.py`): 1, 2 and 4 stacked LSTM(64) layers, and 1 and 4 layers widened
or narrowed to the 2-layer model's parameter count; validation bits per character and time; then
the three parameter-matched stacks once more with 4x the steps (`--q2_long_steps`).

Defaults: 3 seeds, 350 steps of 128 windows (Q1), 300 steps of 64 x 128-character windows (Q2),
1,200 steps and 2 seeds for the longer Q2 runs: about 40 minutes on 2 shared CPU cores.

Every run trains for a fixed number of steps in its own workdir `<workdir>/<question>/<variant>/
seed<S>`, so an interrupted study picks up where it stopped. Writes `results.json`, `table.md`
and `chars_study.png` to `--results_dir`; `--replot` redraws the last two from the first, and
`--only=q1/full/seed0` reruns that run alone into it (rows named as in results.json).
"""

from __future__ import annotations

import functools
import json
import math
import os

import numpy as np
from absl import app, flags

from configs import char_lm, chars
from experiments import study
from experiments.char_analysis import CATEGORIES, summarize_branches
from experiments.launch import one_line_errors
from experiments.study_flags import define_flags
from seqlstm.models import param_count, units_for_budget
from seqlstm.train.restore import load_run

STUDY = define_flags(workdir="runs/char_study", results_dir="experiments/results/chars", seeds=3)
_Q1_STEPS = flags.DEFINE_integer("q1_steps", 350, "Training steps of each two-branch run.")
_Q2_STEPS = flags.DEFINE_integer("q2_steps", 300, "Training steps of each stacked-LM run.")
_Q2_LONG_STEPS = flags.DEFINE_integer(
    "q2_long_steps", 1200, "If > 0: the parameter-matched stacks again, trained this many steps."
)
_Q2_LONG_SEEDS = flags.DEFINE_integer(
    "q2_long_seeds", 2, "Seeds of the longer stacked-LM runs (0: as --seeds)."
)
_SMOKE = flags.DEFINE_bool("smoke", False, "Tiny runs on a slice of the corpus (tests).")

BITS = 1.0 / math.log(2.0)
Q2_WIDTH = 64
DDOF = 1  # the sample std over seeds


def q1_variants(smoke: bool) -> dict[str, dict]:
    """Model overrides of each two-branch variant; single branches widened to the full count."""
    config = chars.get_config("smoke" if smoke else None)
    model = config.model.to_dict()
    budget = param_count(**model)

    def widened(branch: str) -> int:
        key = f"{branch}_units"
        return units_for_budget(
            lambda u: param_count(**{**model, "branches": branch, key: u}), budget
        )

    return {
        "full": {"branches": "both"},
        "long": {"branches": "long"},
        "long_matched": {"branches": "long", "long_units": widened("long")},
        "short": {"branches": "short"},
        "short_matched": {"branches": "short", "short_units": widened("short")},
    }


def q2_variants(smoke: bool) -> dict[str, dict]:
    """Layers and units of each stacked-LM variant; `matched` ones have the 2-layer budget."""
    config = char_lm.get_config("smoke" if smoke else None)
    model = config.model.to_dict()
    width = model["units"] if smoke else Q2_WIDTH
    budget = param_count(**{**model, "num_layers": 2, "units": width})

    def matched(layers: int) -> int:
        return units_for_budget(
            lambda u: param_count(**{**model, "num_layers": layers, "units": u}), budget
        )

    out = {f"{n}x{width}": {"num_layers": n, "units": width} for n in (1, 2, 4)}
    out[f"1x{matched(1)}_matched"] = {"num_layers": 1, "units": matched(1)}
    out[f"4x{matched(4)}_matched"] = {"num_layers": 4, "units": matched(4)}
    return out


def grid(
    smoke: bool, seeds: int, steps: dict[str, int], long_seeds: int | None = None
) -> list[dict]:
    """Every run, seed by seed (so every variant has a result early on).

    Args:
      smoke: tiny models (the `smoke` presets).
      seeds: seeds per variant.
      steps: training steps of each question's runs (`q1`, `q2`, `q2_long`; 0 skips `q2_long`).
      long_seeds: seeds of the `q2_long` runs (None: `seeds`).

    Returns:
      One spec per run: question, variant, seed, model overrides and steps.
    """
    plan = [("q1", v, o) for v, o in q1_variants(smoke).items()]
    plan += [("q2", v, o) for v, o in q2_variants(smoke).items()]
    if steps["q2_long"]:
        plan += [
            ("q2_long", v, o)
            for v, o in q2_variants(smoke).items()
            if v.endswith("matched") or o["num_layers"] == 2
        ]
    long_seeds = seeds if long_seeds is None else long_seeds
    return [
        {"question": q, "variant": v, "seed": seed, "overrides": o, "steps": steps[q]}
        for seed in range(seeds)
        for q, v, o in plan
        if q != "q2_long" or seed < long_seeds
    ]


def run_name(spec: dict) -> str:
    """A run's workdir under the study's root, from its spec or its record."""
    return f"{spec['question']}/{spec['variant']}/seed{spec['seed']}"


def run_one(spec: dict, workdir: str, smoke: bool = False) -> dict:
    """Trains one run and returns its record."""
    question, seed = spec["question"], spec["seed"]
    module = chars if question == "q1" else char_lm
    config = module.get_config(f"seed={seed}" + (",smoke" if smoke else ""))
    config.train.num_steps = spec["steps"]
    if smoke:
        config.train.num_steps = 3 if question != "q2_long" else 5
    config.train.checkpoint_every_steps = 0
    for key, value in spec["overrides"].items():
        config.model[key] = value
    res, seconds = study.train(config, workdir)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rates = [json.loads(line)["steps_per_sec"] for line in f if line.strip()]
    record = {
        "question": question,
        "variant": spec["variant"],
        "seed": seed,
        "model": {k: v for k, v in config.model.to_dict().items()},
        "params": param_count(**config.model.to_dict()),
        "steps": res["steps"],
        "seconds": seconds,
        "steps_per_sec": float(np.median(rates)),
        "chars_per_sec": float(np.median(rates))
        * config.train.batch_size
        * (1 if config.data.targets == "next" else config.data.context),
        "val_bpc": res["val"]["loss"] * BITS,
        "test_bpc": res["test"]["loss"] * BITS,
        "val_accuracy": res["val"]["token_accuracy"],
    }
    if question == "q1":
        _, data, model, _ = load_run(workdir)
        record["branches"] = summarize_branches(model, data["val"], config.model.short_context)
    return record


def progress(r: dict) -> str:
    return f"val bpc {r['val_bpc']:.3f}"


def summarize(records: list[dict]) -> dict:
    return {"sum_run_seconds": float(sum(r["seconds"] for r in records))}


def cell(values: list[float]) -> str:
    """`"mean ± std"` over seeds, `"-"` for none."""
    return study.format_mean_std(*study.mean_std(values, ddof=DDOF))


def tables(results: dict) -> str:
    """The markdown tables of both questions (mean ± std over seeds), and the time taken."""
    records = results["runs"]

    def group(question):
        out: dict[str, list[dict]] = {}
        for r in records:
            if r["question"] == question:
                out.setdefault(r["variant"], []).append(r)
        return out

    lines = [
        "### Question 1: two branches (validation bits per character, mean ± std over seeds)",
        "",
        "| variant | units (long/short) | params | val bpc | test bpc | val accuracy | "
        + " | ".join(f"acc. {c}" for c in CATEGORIES)
        + " | s/run |",
        "|---|---|---|---|---|---|" + "---|" * len(CATEGORIES) + "---|",
    ]
    for variant, rs in group("q1").items():
        m = rs[0]["model"]
        units = {"both": "{long_units}/{short_units}", "long": "{long_units}/-"}.get(
            m["branches"], "-/{short_units}"
        )
        cats = " | ".join(
            cell([r["branches"].get(f"{c}_accuracy", np.nan) for r in rs]) for c in CATEGORIES
        )
        lines.append(
            f"| {variant} | {units.format(**m)} | {rs[0]['params']:,} | "
            f"{cell([r['val_bpc'] for r in rs])} | {cell([r['test_bpc'] for r in rs])} | "
            f"{cell([r['val_accuracy'] for r in rs])} | {cats} | "
            f"{study.mean([r['seconds'] for r in rs]):.0f} |"
        )
    full = group("q1").get("full", [])
    if full:
        b = [r["branches"] for r in full]
        shares = ", ".join(f"{c} {b[0][f'{c}_share']:.1%}" for c in CATEGORIES)
        lines += [
            "",
            f"Validation predictions by context category: {shares}.",
            "",
            "| full model, validation | bpc | accuracy |",
            "|---|---|---|",
        ]
        for cond, label in (
            ("normal", "both branches read the window"),
            ("long_shuffled", "long branch reads another window"),
            ("short_shuffled", "short branch reads another window"),
        ):
            lines.append(
                f"| {label} | {cell([x[f'{cond}_bpc'] for x in b])} | "
                f"{cell([x[f'{cond}_accuracy'] for x in b])} |"
            )
    for question in ("q2", "q2_long"):
        rows = group(question)
        if not rows:
            continue
        steps = next(iter(rows.values()))[0]["steps"]
        lines += [
            "",
            f"### Question 2: stacked character LM, {steps} steps (validation bits per character)",
            "",
            "| variant | layers x units | params | val bpc | test bpc | val accuracy | "
            "steps/s | chars/s | s/run |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for variant, rs in rows.items():
            m = rs[0]["model"]
            lines.append(
                f"| {variant} | {m['num_layers']} x {m['units']} | {rs[0]['params']:,} | "
                f"{cell([r['val_bpc'] for r in rs])} | "
                f"{cell([r['test_bpc'] for r in rs])} | "
                f"{cell([r['val_accuracy'] for r in rs])} | "
                f"{study.mean([r['steps_per_sec'] for r in rs]):.2f} | "
                f"{study.mean([r['chars_per_sec'] for r in rs]):,.0f} | "
                f"{study.mean([r['seconds'] for r in rs]):.0f} |"
            )
    lines += [
        "",
        f"Time of the {len(records)} runs (training, evaluation and analysis), summed: "
        f"{results['sum_run_seconds'] / 60:.1f} min; this invocation: "
        f"{results['wall_clock_seconds'] / 60:.1f} min "
        "(finished runs are read back from their workdirs).",
    ]
    return "\n".join(lines) + "\n"


def plot(results: dict, out_dir: str) -> None:
    """`chars_study.png`: Q1's bits per character and accuracy by category, Q2's stacking."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(18, 5), gridspec_kw={"width_ratios": [1.4, 1, 1]})
    by: dict[str, dict[str, list[dict]]] = {"q1": {}, "q2": {}, "q2_long": {}}
    for r in results["runs"]:
        by[r["question"]].setdefault(r["variant"], []).append(r)
    q1 = by["q1"]

    ax = axes[0]
    names = list(q1)
    stats = [study.mean_std([r["val_bpc"] for r in q1[n]], ddof=DDOF) for n in names]
    vals, errs = [m for m, _ in stats], [s for _, s in stats]
    ax.bar(names, vals, yerr=errs, capsize=4, color="tab:blue", label="trained variant")
    if "full" in q1:
        for cond in ("long_shuffled", "short_shuffled"):
            m, err = study.mean_std([r["branches"][f"{cond}_bpc"] for r in q1["full"]], ddof=DDOF)
            ax.bar(
                f"full, {cond.split('_')[0]}\nshuffled",
                m,
                yerr=err,
                capsize=4,
                color="tab:gray",
                label=None
                if cond.startswith("short")
                else "full model, one branch reads another window",
            )
            vals.append(m)
    lo = min(vals) - 0.3 if vals else 0
    ax.set_ylim(max(lo, 0), max(vals) + 0.5 if vals else 1)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_ylabel("validation bits per character")
    ax.set_title("Q1: two-branch model (512/64)")
    ax.tick_params(axis="x", rotation=20)

    ax = axes[1]
    width = 0.8 / max(len(names), 1)
    for i, n in enumerate(names):
        acc = [
            study.mean([r["branches"].get(f"{c}_accuracy", np.nan) for r in q1[n]])
            for c in CATEGORIES
        ]
        ax.bar(np.arange(len(CATEGORIES)) + i * width, acc, width, label=n)
    ax.set_xticks(np.arange(len(CATEGORIES)) + 0.4 - width / 2, CATEGORIES)
    ax.set_ylabel("validation accuracy")
    ax.set_title("Q1: accuracy by where the 8-gram recurs")
    ax.legend(fontsize=8)

    ax = axes[2]
    lines = (
        ("q2", f"width {Q2_WIDTH}", lambda n: not n.endswith("matched"), "-"),
        ("q2", "matched to 2-layer params", lambda n: n.endswith("matched") or "2x" in n, "-"),
        ("q2_long", "matched, longer training", lambda n: True, "--"),
    )
    for question, label, keep, style in lines:
        runs = by[question]
        if not runs:
            continue
        steps = next(iter(runs.values()))[0]["steps"]
        pts = sorted(
            (rs[0]["model"]["num_layers"], study.mean([r["val_bpc"] for r in rs]))
            for n, rs in runs.items()
            if keep(n)
        )
        ax.plot(*zip(*pts), marker="o", linestyle=style, label=f"{label} ({steps} steps)")
        for n, rs in runs.items():
            if keep(n):
                ax.annotate(
                    f"{study.mean([r['seconds'] for r in rs]):.0f}s",
                    (rs[0]["model"]["num_layers"], study.mean([r["val_bpc"] for r in rs])),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize=8,
                )
    ax.set_xticks([1, 2, 4])
    ax.set_xlabel("stacked LSTM layers")
    ax.set_ylabel("validation bits per character")
    ax.set_title("Q2: stacking (labels: seconds per run)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "chars_study.png"), dpi=120)
    plt.close(fig)


def main(argv: list[str]) -> None:
    steps = {"q1": _Q1_STEPS.value, "q2": _Q2_STEPS.value, "q2_long": _Q2_LONG_STEPS.value}
    seeds = STUDY.seeds
    long_seeds = _Q2_LONG_SEEDS.value or seeds
    char = study.Study(
        grid=grid(_SMOKE.value, seeds, steps, long_seeds),
        name=run_name,
        run=functools.partial(run_one, smoke=_SMOKE.value),
        progress=progress,
        table=tables,
        plot=plot,
        summarize=summarize,
    )
    settings = {"seeds": seeds, **{f"{q}_steps": n for q, n in steps.items()}}
    settings["q2_long_seeds"] = long_seeds
    STUDY.run(char, settings=settings)


if __name__ == "__main__":
    app.run(one_line_errors(main))
