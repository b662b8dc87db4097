"""The G2P study's pieces, without flags (tests import them): its grid, one row's run, the test
predictions TSV, the table beside the published anchors and the learning-curve plot.
`experiments/g2p_study.py` is the launcher.
"""

from __future__ import annotations

import json
import os
import time

from configs.g2p import NUM_STEPS, get_config
from experiments import study
from seqlstm.data.g2p import predict_split
from seqlstm.g2p_scoring import PREDICTIONS, prediction_rows, score, write_predictions

ONE_LAYER_STEPS = 40000  # the 1-layer model's steps within the hour (53 minutes)
ABLATION_STEPS = 8000  # a fifth of ONE_LAYER_STEPS: the ablations compare at equal steps
BEAMS = (1, 4, 8)

OLD_SPLIT = "older CMUdict, 106,837 / 12,000 words"
# Published anchors (test WER %, PER %); dictionary versions and splits differ from ours.
ANCHORS = (
    ("Sequitur joint-sequence model (Bisani & Ney 2008)", OLD_SPLIT, 24.5, 5.9),
    ("Bidirectional LSTM (Yao & Zweig 2015)", OLD_SPLIT, 23.6, 5.5),
    ("Attention encoder-decoder (Toshniwal & Livescu 2016)", OLD_SPLIT, 21.7, 5.0),
    ("CMUSphinx g2p-seq2seq LSTM 2x512", "current CMUdict, its own split", 31.1, None),
    ("CMUSphinx g2p-seq2seq Transformer 3x256", "current CMUdict, its own split", 30.2, None),
)  # fmt: skip


def grid() -> list[dict]:
    """The study's rows: the default run, two runs that also fit the hour, then ablations of the
    1-layer model at `ABLATION_STEPS` steps."""
    rows = [
        dict(name="default", preset="", steps=NUM_STEPS, what="default (additive, 2 layers)"),
        dict(name="layers1", preset="layers=1", steps=ONE_LAYER_STEPS, what="additive, 1 layer"),
        dict(
            name="input_dropout", preset="layers=1,input_dropout=0.2", steps=ONE_LAYER_STEPS,
            what="additive, 1 layer, input dropout 0.2",
        ),
    ]  # fmt: skip
    for name, preset, what in (
        ("additive_short", "layers=1", "additive"),
        ("general_short", "attention=general,layers=1", "general"),
        ("location_short", "attention=location,layers=1", "location-aware"),
        ("no_feeding_short", "no_feeding,layers=1", "additive, no input feeding"),
        ("hidden128_short", "hidden=128,layers=1", "additive, 128 units"),
        ("layers2_short", "layers=2", "additive, 2 layers (encoder and decoder)"),
        ("constant_lr_short", "constant_lr,layers=1", "additive, constant learning rate"),
    ):
        rows.append(dict(name=name, preset=preset, steps=ABLATION_STEPS, what=what))
    return rows


def learning_curve(workdir: str) -> list[list[float]]:
    """`[[step, validation greedy WER], ...]` from the run's metrics.jsonl."""
    curve = []
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        for line in f:
            row = json.loads(line)
            wer = row.get("eval_g2p", {}).get("greedy_wer")
            if wer is not None:
                curve.append([row["step"], wer])
    return curve


def write_test_predictions(workdir: str, beams=BEAMS, batch_size: int = 500) -> dict:
    """Decodes the test words of a finished run at each beam width, writes the TSV of the config's
    beam width (`config.data.beam_size`, else the last width) to `<workdir>/test_predictions.tsv`,
    and returns WER, PER and decoding speed (words/s) per width."""
    from seqlstm.train.restore import load_run

    config, data, model, _ = load_run(workdir)
    d = config.data
    out = {}
    tsv_width = d.beam_size if d.beam_size in beams else beams[-1]
    for width in beams:
        start = time.perf_counter()
        words, preds, refs = predict_split(
            model, data["test"], batch_size, stress=d.stress, beam_size=width,
            length_penalty=d.length_penalty,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        s = score(preds, refs)
        out[f"beam{width}"] = {
            "wer": s["wer"],
            "per": s["per"],
            "words_per_sec": len(words) / seconds,
        }
        if width == tsv_width:
            rows = prediction_rows(words, preds, refs)
            write_predictions(os.path.join(workdir, PREDICTIONS), rows)
    out["words"] = len(words)
    return out


def run_row(row: dict, workdir: str) -> dict:
    """Trains one row, then scores its test words at each beam width and writes the TSV."""
    config = get_config(row["preset"])
    config.train.num_steps = row["steps"]
    res, seconds = study.train(config, workdir)
    decoded = write_test_predictions(workdir)
    val = res.get("val", {}).get("g2p", {})
    return {
        **row,
        "seconds": seconds,
        "train_words_per_sec": row["steps"] * config.train.batch_size / seconds,
        "val_greedy_wer": val.get("greedy_wer"),
        "test": res["test"]["g2p"],
        "decoded": decoded,
        "curve": learning_curve(workdir),
    }


def progress(r: dict) -> str:
    d = r["decoded"]
    return f"test WER greedy {d['beam1']['wer']:.3f} beam4 {d['beam4']['wer']:.3f}"


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def markdown_table(results: dict) -> str:
    """Our rows (test split, no stress) and the published anchors."""
    lines = [
        "| model | steps | train time | WER greedy | WER beam 4 | PER beam 4 | WER beam 8 "
        "| val WER greedy | train words/s | decode words/s (greedy, beam 4) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["runs"]:
        d = r["decoded"]
        lines.append(
            f"| {r['what']} | {r['steps']} | {r['seconds'] / 60:.0f} min "
            f"| {_pct(d['beam1']['wer'])} | {_pct(d['beam4']['wer'])} | {_pct(d['beam4']['per'])} "
            f"| {_pct(d['beam8']['wer'])} | {_pct(r['val_greedy_wer'])} "
            f"| {r['train_words_per_sec']:.0f} "
            f"| {d['beam1']['words_per_sec']:.0f}, {d['beam4']['words_per_sec']:.0f} |"
        )
    lines += [
        "",
        "| published | dictionary, train / test words | WER | PER |",
        "|---|---|---:|---:|",
    ]
    for name, data, wer, per in ANCHORS:
        lines.append(f"| {name} | {data} | {wer} | {'-' if per is None else per} |")
    return "\n".join(lines) + "\n"


def plot(results: dict, out_dir: str) -> None:
    """`learning_curve.png`: validation greedy WER against training step, one line per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for r in results["runs"]:
        if r["curve"]:
            steps, wer = zip(*r["curve"])
            ax.plot(steps, [100 * w for w in wer], marker="o", label=r["what"])
    ax.axhline(25.0, color="gray", lw=0.8, ls=":", label="goal: 25% (test, beam)")
    ax.set(xlabel="training step (batch 64)", ylabel="validation WER %, greedy")
    ax.set_title("G2P on CMUdict 1.1.3 (no stress)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "learning_curve.png"), dpi=110)
    plt.close(fig)
