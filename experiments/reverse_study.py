r"""The reversed-sequence study: five ways to connect two LSTMs x lengths {4, 8, 16} x seeds.

    python -m experiments.reverse_study --workdir=runs/reverse_study
    python -m experiments.reverse_study --dtype=bfloat16 --workdir=runs/reverse_study_bf16 \
        --results_dir=experiments/results/reverse_bf16     # mixed precision, same protocol

Each run is `configs/reverse.py:variant=V,len=L,seed=S` (16 units, Adam, batch 32, up to 100
epochs, early stopping with patience 5 on the validation loss, best parameters restored) in its own
workdir `<workdir>/<V>/len<L>/seed<S>`, so an interrupted study picks up where it stopped.
Writes `results.json`, `table.md`, `accuracy_vs_length.png` and `accuracy_by_position.png` to
`--results_dir`. `--only=state_seq/len8/seed0` reruns that run alone into the results there
(rows named as in results.json); `--replot` redraws the table and plots from them.
"""

from __future__ import annotations

import functools
import os

from absl import app, flags

from configs.reverse import get_config
from experiments import study
from experiments.launch import one_line_errors
from experiments.study_flags import define_flags
from seqlstm.models import VARIANTS

LENGTHS = (4, 8, 16)
# The population std over seeds: the published tables were made with it (char_study's use the
# sample std, ddof=1).
DDOF = 0

STUDY = define_flags(
    workdir="runs/reverse_study", results_dir="experiments/results/reverse", seeds=3
)
_DTYPE = flags.DEFINE_enum(
    "dtype",
    "float32",
    ["float32", "bfloat16"],
    "Computation dtype of every model (mixed precision).",
)


def grid(seeds: int) -> list[dict]:
    """Every (variant, length, seed), variant by variant."""
    return [
        {"variant": v, "length": n, "seed": s}
        for v in VARIANTS
        for n in LENGTHS
        for s in range(seeds)
    ]


def run_name(spec: dict) -> str:
    """A run's workdir under the study's root, from its spec or its record."""
    return f"{spec['variant']}/len{spec['length']}/seed{spec['seed']}"


def run_one(spec: dict, workdir: str, dtype: str = "float32") -> dict:
    """Trains one run; returns its record."""
    variant, length, seed = spec["variant"], spec["length"], spec["seed"]
    config = get_config(f"variant={variant},len={length},seed={seed}")
    config.model.dtype = dtype
    res, seconds = study.train(config, workdir)
    test = res["test"]
    return {
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


def progress(r: dict) -> str:
    return (
        f"epochs={r['epochs']:>3} token={r['token_accuracy']:.3f} seq={r['sequence_accuracy']:.3f}"
    )


def summarize(records: list[dict]) -> dict:
    """`{"summary": rows}`: mean and std over seeds of each (variant, length)."""
    rows = []
    for variant in VARIANTS:
        for length in LENGTHS:
            rs = [r for r in records if r["variant"] == variant and r["length"] == length]
            if not rs:
                continue
            row = {"variant": variant, "length": length, "seeds": len(rs)}
            for key in ("token_accuracy", "sequence_accuracy", "epochs"):
                m, s = study.mean_std([r[key] for r in rs], ddof=DDOF)
                row[f"{key}_mean"], row[f"{key}_std"] = float(m), float(s)
            row["position_accuracy_mean"] = study.mean(
                [r["position_accuracy"] for r in rs]
            ).tolist()
            rows.append(row)
    return {"summary": rows}


def markdown_table(results: dict) -> str:
    """The main table (test token / sequence accuracy, mean ± std over seeds) and per-position
    tables."""
    by = {(r["variant"], r["length"]): r for r in results["summary"]}
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
                cells.append(study.format_mean_std(r[key + "_mean"], r[key + "_std"]))
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


def plot(results: dict, out_dir: str) -> None:
    """`accuracy_vs_length.png` and `accuracy_by_position.png`."""
    rows = results["summary"]
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
    reverse = study.Study(
        grid=grid(STUDY.seeds),
        name=run_name,
        run=functools.partial(run_one, dtype=_DTYPE.value),
        progress=progress,
        table=markdown_table,
        plot=plot,
        summarize=summarize,
    )
    STUDY.run(reverse)


if __name__ == "__main__":
    app.run(one_line_errors(main))
