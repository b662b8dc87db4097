r"""The encoder-decoder study: reversal at lengths 4..64 without and with attention, dedup-reverse,
addition, and length generalisation.

    python -m experiments.seq2seq_study --workdir=runs/seq2seq_study

Each row is one run of `configs/seq2seq.py` with a preset (bidirectional LSTM(64) encoder,
LSTM(64) decoder, general attention or none, Adam 3e-3 with cosine decay, batch 64, a fixed number
of steps per row) in its own workdir `<workdir>/<row>`, so an interrupted study picks up where it
stopped. Accuracy is measured on 1,000 test sequences by decoding (greedy, and beam search with 4
beams): a sequence counts only when the whole output, EOS included, is exactly right. Writes
`results.json`, `table.md` and `accuracy_vs_length.png` to `--results_dir`, and the table into the
page there, `README.md`, between its table markers. `--only=addition` reruns that row alone into
the results; `--replot` redraws the table and plot.
"""

from __future__ import annotations

import json
import os

from absl import app

from configs.seq2seq import get_config
from experiments import study
from experiments.launch import one_line_errors
from experiments.study_flags import define_flags
from seqlstm.decoding import evaluate_decoding
from seqlstm.train.restore import load_run

LENGTHS = (4, 8, 16, 32, 64)
# Steps per reversal length: longer sequences need more updates (and each costs more).
STEPS = {4: 1000, 8: 1500, 16: 2000, 32: 3000, 64: 4000}

STUDY = define_flags(workdir="runs/seq2seq_study", results_dir="experiments/results/seq2seq")


def grid() -> list[dict]:
    """The study's rows: name, description, preset and steps."""
    out = []
    for length in LENGTHS:
        for attention in ("none", "general"):
            out.append(
                dict(
                    name=f"reverse_len{length}_{attention}",
                    task="reverse",
                    lengths=f"{length}",
                    attention=attention,
                    preset=f"len={length},attention={attention}",
                    steps=STEPS[length],
                )
            )
    out += [
        # Input feeding: the decoder knows where it attended last (skipping seen numbers,
        # walking digits right to left), the coverage these two tasks need.
        dict(name="dedup_reverse", task="dedup_reverse", lengths="1..16", attention="general",
             preset="task=dedup_reverse,minlen=1,len=16", steps=3000,
             overrides={"model.input_feeding": True}),
        dict(name="addition", task="addition (3 digits)", lengths="3..7", attention="general",
             preset="task=addition", steps=12000, overrides={"model.input_feeding": True}),
        dict(name="generalize_none", task="reverse, train 1..16, test 17..32", lengths="17..32",
             attention="none", preset="generalize,attention=none,bucket", steps=3000),
        dict(name="generalize_general", task="reverse, train 1..16, test 17..32",
             lengths="17..32", attention="general", preset="generalize,bucket", steps=3000),
        # Location-aware attention (Chorowski et al., 2015) sees where it attended last: does
        # moving one position per step carry over to longer sequences?
        dict(name="generalize_location", task="reverse, train 1..16, test 17..32",
             lengths="17..32", attention="location", preset="generalize,bucket,attention=location",
             steps=3000),
    ]  # fmt: skip
    return out


def run_row(row: dict, workdir: str) -> dict:
    """Trains one row, then decodes its test split greedily and by beam search."""
    config = get_config(row["preset"])
    config.train.num_steps = row["steps"]  # the learning rate decays over these steps
    for key, value in row.get("overrides", {}).items():
        section, name = key.split(".")
        config[section][name] = value
    res, train_seconds = study.train(config, workdir)
    _, data, model, _ = load_run(workdir)
    beam = evaluate_decoding(model, data["test"], 250, beam_size=4, length_penalty=0.6)
    greedy = res["test"]["decoded"]
    return {
        **row,
        "seconds": train_seconds,
        "teacher_forced_token_accuracy": res["test"]["token_accuracy"],
        "teacher_forced_sequence_accuracy": res["test"]["sequence_accuracy"],
        "token_accuracy": greedy["token_accuracy"],
        "sequence_accuracy": greedy["sequence_accuracy"],
        "beam4_sequence_accuracy": beam["sequence_accuracy"],
        "test_sequences": greedy["sequences"],
    }


def progress(r: dict) -> str:
    return (
        f"token {r['token_accuracy']:.3f} seq {r['sequence_accuracy']:.3f} "
        f"beam4 {r['beam4_sequence_accuracy']:.3f}"
    )


def markdown_table(results: dict) -> str:
    """One line per row, in the grid's order."""
    lines = [
        "| task | test lengths | attention | steps | token acc | seq acc | seq acc, beam 4 "
        "| teacher-forced seq acc | train time |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["runs"]:
        lines.append(
            f"| {r['task']} | {r['lengths']} | {r['attention']} | {r['steps']} "
            f"| {r['token_accuracy']:.3f} | {r['sequence_accuracy']:.3f} "
            f"| {r['beam4_sequence_accuracy']:.3f} | {r['teacher_forced_sequence_accuracy']:.3f} "
            f"| {r['seconds']:.0f} s |"
        )
    return "\n".join(lines) + "\n"


def plot(results: dict, out_dir: str) -> None:
    """`accuracy_vs_length.png`: reversal accuracy against length, with the best stacked model of
    the reversed-sequence study (`state_seq`, teacher-forced per-step outputs) beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for attention, label in (("none", "no attention"), ("general", "attention (general)")):
        rs = [r for r in results["runs"] if r["task"] == "reverse" and r["attention"] == attention]
        x = [int(r["lengths"]) for r in rs]
        for ax, key in zip(axes, ("token_accuracy", "sequence_accuracy")):
            ax.plot(x, [r[key] for r in rs], marker="o", label=f"encoder-decoder, {label}")
    stacked = os.path.join(os.path.dirname(out_dir.rstrip("/")), "reverse", "results.json")
    if os.path.exists(stacked):
        with open(stacked) as f:
            rows = [r for r in json.load(f)["summary"] if r["variant"] == "state_seq"]
        for ax, key in zip(axes, ("token_accuracy", "sequence_accuracy")):
            ax.plot(
                [r["length"] for r in rows], [r[key + "_mean"] for r in rows], marker="s",
                ls="--", color="gray", label="stacked LSTM(16) state_seq (reverse study)",
            )  # fmt: skip
    for ax, title in zip(axes, ("token accuracy", "whole-sequence accuracy")):
        ax.set_xscale("log", base=2)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set(xticks=LENGTHS, xticklabels=[str(n) for n in LENGTHS], ylim=(0, 1.02))
        ax.set(xlabel="sequence length T", title=f"reversal: test {title}")
        ax.axhline(0.99, color="gray", lw=0.8, ls=":")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (seq2seq: 1,000 sequences, greedy)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "accuracy_vs_length.png"), dpi=110)
    plt.close(fig)


def main(argv: list[str]) -> None:
    seq2seq = study.Study(
        grid=grid(),
        name=lambda row: row["name"],
        run=run_row,
        progress=progress,
        table=markdown_table,
        plot=plot,
    )
    STUDY.run(seq2seq)


if __name__ == "__main__":
    app.run(one_line_errors(main))
