r"""The reversed-sequence study: five ways to connect two LSTMs x lengths {4, 8, 16} x seeds.

    python -m experiments.reverse_study --workdir=runs/reverse_study
    python -m experiments.reverse_study --dtype=bfloat16 --workdir=runs/reverse_study_bf16 \
        --results_dir=experiments/results/reverse_bf16     # mixed precision, same protocol

Each run is `configs/reverse.py:variant=V,len=L,seed=S` (16 units, Adam, batch 32, up to 100
epochs, early stopping with patience 5 on the validation loss, best parameters restored) in its own
workdir `<workdir>/<V>/len<L>/seed<S>`, so an interrupted study picks up where it stopped.
Writes `results.json`, `table.md`, `accuracy_vs_length.png` and `accuracy_by_position.png` to
`--results_dir`.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
from absl import app, flags, logging

from configs.reverse import get_config
from seqlstm.models import VARIANTS
from seqlstm.train import train_and_evaluate
from seqlstm.train.errors import one_line_errors

LENGTHS = (4, 8, 16)

_WORKDIR = flags.DEFINE_string("workdir", "runs/reverse_study", "Root of the runs' workdirs.")
_RESULTS_DIR = flags.DEFINE_string(
    "results_dir", "experiments/results/reverse", "Where the results, table and plots go."
)
_SEEDS = flags.DEFINE_integer("seeds", 3, "Seeds per (variant, length): 0, 1, ...")
_DTYPE = flags.DEFINE_enum(
    "dtype",
    "float32",
    ["float32", "bfloat16"],
    "Computation dtype of every model (mixed precision).",
)
_REPLOT = flags.DEFINE_bool(
    "replot", False, "Only rewrite table.md and the plots from --results_dir/results.json."
)


def run_all(root: str, seeds: int, dtype: str = "float32") -> list[dict]:
    """Trains (or reads back) every run; returns one record per run."""
    records = []
    total = len(VARIANTS) * len(LENGTHS) * seeds
    for variant in VARIANTS:
        for length in LENGTHS:
            for seed in range(seeds):
                config = get_config(f"variant={variant},len={length},seed={seed}")
                config.train.progress_bar = False
                config.model.dtype = dtype
                workdir = os.path.join(root, variant, f"len{length}", f"seed{seed}")
                start = time.perf_counter()
                res = train_and_evaluate(config, workdir)
                seconds = time.perf_counter() - start
                test = res["test"]
                records.append(
                    {
                        "variant": variant,
                        "length": length,
                        "seed": seed,
                        "epochs": res["epochs"],
                        "best_step": res["best_step"],
                        "stopped_early": res["stopped_early"],
                        "test_loss": test["loss"],
                        "token_accuracy": test["token_accuracy"],
                        "sequence_accuracy": test["sequence_accuracy"],
                        "position_accuracy": test["position_accuracy"],
                        "seconds": seconds,
                    }
                )
                print(
                    f"[{len(records)}/{total}] {variant:>19} T={length:<2} seed={seed} "
                    f"epochs={res['epochs']:>3} token={test['token_accuracy']:.3f} "
                    f"seq={test['sequence_accuracy']:.3f} ({seconds:.0f}s)",
                    flush=True,
                )
    return records


def summarize(records: list[dict]) -> list[dict]:
    """Mean and std over seeds of each (variant, length)."""
    rows = []
    for variant in VARIANTS:
        for length in LENGTHS:
            rs = [r for r in records if r["variant"] == variant and r["length"] == length]
            if not rs:
                continue
            row = {"variant": variant, "length": length, "seeds": len(rs)}
            for key in ("token_accuracy", "sequence_accuracy", "epochs"):
                v = np.array([r[key] for r in rs], np.float64)
                row[f"{key}_mean"], row[f"{key}_std"] = float(v.mean()), float(v.std())
            row["position_accuracy_mean"] = np.mean(
                [r["position_accuracy"] for r in rs], axis=0
            ).tolist()
            rows.append(row)
    return rows


def markdown_table(rows: list[dict]) -> str:
    """The main table (test token / sequence accuracy, mean ± std over seeds) and per-position
    tables."""
    by = {(r["variant"], r["length"]): r for r in rows}
    lines = [
        "| variant | " + " | ".join(f"T={n} token acc | T={n} seq acc" for n in LENGTHS) + " |",
        "|---|" + "---:|---:|" * len(LENGTHS),
    ]
    for variant in VARIANTS:
        cells = []
        for n in LENGTHS:
            r = by.get((variant, n))
            if r is None:
                cells += ["", ""]
                continue
            for key in ("token_accuracy", "sequence_accuracy"):
                cells.append(f"{r[key + '_mean']:.3f} ± {r[key + '_std']:.3f}")
        lines.append(f"| `{variant}` | " + " | ".join(cells) + " |")
    for n in LENGTHS:
        lines += ["", f"Test accuracy per output position, T={n} (mean over seeds):", ""]
        lines.append("| variant | " + " | ".join(str(i) for i in range(n)) + " |")
        lines.append("|---|" + "---:|" * n)
        for variant in VARIANTS:
            r = by.get((variant, n))
            if r is not None:
                acc = " | ".join(f"{a:.2f}" for a in r["position_accuracy_mean"])
                lines.append(f"| `{variant}` | {acc} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], out_dir: str) -> None:
    """`accuracy_vs_length.png` and `accuracy_by_position.png`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for variant in VARIANTS:
        rs = [r for r in rows if r["variant"] == variant]
        x = [r["length"] for r in rs]
        for ax, key in zip(axes, ("token_accuracy", "sequence_accuracy")):
            mean = [r[key + "_mean"] for r in rs]
            std = [r[key + "_std"] for r in rs]
            ax.errorbar(x, mean, yerr=std, marker="o", capsize=3, label=variant)
    for ax, title in zip(axes, ("token accuracy", "whole-sequence accuracy")):
        ax.set(xlabel="sequence length T", title=f"test {title}", xticks=LENGTHS, ylim=(0, 1.02))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (mean ± std over seeds)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "accuracy_vs_length.png"), dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(LENGTHS), figsize=(13, 3.8), sharey=True)
    for ax, n in zip(axes, LENGTHS):
        for variant in VARIANTS:
            r = next((r for r in rows if r["variant"] == variant and r["length"] == n), None)
            if r is not None:
                ax.plot(range(n), r["position_accuracy_mean"], marker=".", label=variant)
        ax.axhline(0.1, color="gray", ls=":", lw=1)
        ax.set(title=f"T={n}", xlabel="output position", ylim=(0, 1.02))
        ax.set_xticks(range(0, n, max(1, n // 8)))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test token accuracy (dotted: chance)")
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "accuracy_by_position.png"), dpi=110)
    plt.close(fig)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    if _SEEDS.value < 1:
        raise app.UsageError(f"--seeds must be positive, got {_SEEDS.value}")
    out = _RESULTS_DIR.value
    if _REPLOT.value:
        with open(os.path.join(out, "results.json")) as f:
            saved = json.load(f)
        records, seconds = saved["runs"], saved["wall_clock_seconds"]
    else:
        start = time.perf_counter()
        records = run_all(_WORKDIR.value, _SEEDS.value, _DTYPE.value)
        seconds = time.perf_counter() - start
    rows = summarize(records)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"wall_clock_seconds": seconds, "summary": rows, "runs": records}, f, indent=1)
        f.write("\n")
    table = markdown_table(rows)
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(table)
    plot(rows, out)
    print(table)
    print(f"{len(records)} runs in {seconds / 60:.1f} min; results in {out}")


if __name__ == "__main__":
    app.run(one_line_errors(main))
