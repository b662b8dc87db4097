"""The joint-sequence G2P baseline's pieces, without flags (tests import them): Phonetisaurus
(`pip install -e ".[g2p-baseline]"`, 0.3.0, which ships its binaries) trained on our training
split and scored on our test words with `seqlstm.tasks.g2p`. `experiments/g2p_baseline.py` is
the launcher.

Training uses exactly the LSTM's data (`seqlstm.tasks.g2p`): the words of the MD5 training split,
in dictionary order, every distinct pronunciation one line each (stress removed, or kept with
`stress=True`), in the lexicon format `phonetisaurus-train` reads (`word<TAB>phone phone ...`).
Training runs `phonetisaurus-train --lexicon <file> --seq2_del` with its other defaults (an 8-gram
joint model over alignments of at most 2 letters to 2 phones), as the package's own
`phonetisaurus.train` does; decoding runs `phonetisaurus-apply --nbest 1` (its defaults, as
`phonetisaurus.predict`). A test word the model gives no pronunciation counts as wrong (an empty
prediction).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterable, Sequence

from seqlstm.tasks.g2p import (
    PREDICTIONS,
    load_lexicon,
    prediction_rows,
    score,
    split_of,
    write_predictions,
)

INSTALL = 'pip install -e ".[g2p-baseline]"'
VERSION = "0.3.0"


def split_lexicon(split: str, stress: bool = False) -> dict[str, list[tuple[str, ...]]]:
    """`{word: [pronunciation, ...]}` of a split's words (every distinct pronunciation), in
    dictionary order. The order matters a little: the MD5 order of `split_words` gives 2 test
    words fewer wrong (25.63% WER) than dictionary order (25.66%, the issue's number)."""
    return {w: p for w, p in load_lexicon(stress).items() if split_of(w) == split}


def lexicon_lines(lexicon: dict[str, Sequence[Sequence[str]]]) -> list[str]:
    """Phonetisaurus's training lexicon: `word<TAB>phones` per pronunciation, in order."""
    return [f"{word}\t{' '.join(pron)}" for word, prons in lexicon.items() for pron in prons]


def write_lexicon(path: str, lexicon: dict[str, Sequence[Sequence[str]]]) -> int:
    """Writes `lexicon_lines` to `path`, one a line; returns the number of lines."""
    lines = lexicon_lines(lexicon)
    with open(path, "w") as f:
        f.writelines(line + "\n" for line in lines)
    return len(lines)


def parse_nbest(lines: Iterable[str]) -> dict[str, list[tuple[list[str], float | None]]]:
    """`phonetisaurus-apply`'s output, `word<TAB>phones`, or `word<TAB>score<TAB>phones` with
    `--verbose` (the score a negative log-probability), one line per hypothesis, a word's best
    first -> `{word: [(phones, score or None), ...]}` in that order. Blank lines are skipped.

    Raises:
      ValueError: for a line that is neither (naming it).
    """
    out: dict[str, list[tuple[list[str], float | None]]] = {}
    for n, line in enumerate(lines, 1):
        line = line.rstrip("\n")
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) not in (2, 3):
            raise ValueError(
                f"line {n} of the Phonetisaurus output, {line!r}, is not word<TAB>phones "
                f"or word<TAB>score<TAB>phones"
            )
        score = float(parts[1]) if len(parts) == 3 else None
        out.setdefault(parts[0], []).append((parts[-1].split(), score))
    return out


def parse_predictions(lines: Iterable[str]) -> dict[str, list[str]]:
    """Each word's best hypothesis in `phonetisaurus-apply`'s output (`parse_nbest`)."""
    return {word: hyps[0][0] for word, hyps in parse_nbest(lines).items()}


def environment() -> dict[str, str]:
    """The environment that finds the package's binaries (its `guess_environment`), plus ours.

    Raises:
      ImportError: naming the extra to install when `phonetisaurus` is missing.
    """
    try:
        import phonetisaurus
    except ImportError as e:
        raise ImportError(
            f"the baseline needs the 'phonetisaurus' package; install {INSTALL}"
        ) from e
    env = dict(os.environ)
    paths = phonetisaurus.guess_environment()
    env["PATH"] = paths["PATH"]
    # guess_environment reads LD_LIBRARY (a typo) and so drops the caller's LD_LIBRARY_PATH.
    env["LD_LIBRARY_PATH"] = (
        paths["LD_LIBRARY_PATH"].split(":")[0] + ":" + env.get("LD_LIBRARY_PATH", "")
    )
    return env


def train(lexicon_path: str, workdir: str, order: int = 8) -> tuple[str, float]:
    """Runs `phonetisaurus-train --lexicon <lexicon_path> --seq2_del` in `workdir`, with
    `--ngram_order <order>` unless it is the default 8 (a toy lexicon needs less: the 8-gram's
    estimation fails without words long enough to hold 8-grams with repeated counts).

    Returns:
      The model's path (`<workdir>/train/model.fst`) and the seconds training took (alignment,
      the joint n-gram and its conversion to a WFST).
    """
    env = environment()
    os.makedirs(workdir, exist_ok=True)
    start = time.perf_counter()
    cmd = ["phonetisaurus-train", "--lexicon", os.path.abspath(lexicon_path), "--seq2_del"]
    _run(cmd + ([] if order == 8 else ["--ngram_order", str(order)]), cwd=workdir, env=env)
    return os.path.join(workdir, "train", "model.fst"), time.perf_counter() - start


def _run(cmd: list[str], **kwargs) -> str:
    """Runs a Phonetisaurus tool; returns its stdout.

    Raises:
      RuntimeError: when it fails, with its exit code and the end of what it printed.
    """
    out = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if out.returncode:
        said = (out.stderr + out.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"{cmd[0]} failed (exit code {out.returncode}): " + " / ".join(said))
    return out.stdout


def apply(model_path: str, words: Sequence[str], workdir: str) -> tuple[dict, float]:
    """`phonetisaurus-apply --nbest 1` on `words`: `({word: phones}, seconds)`."""
    start = time.perf_counter()
    out = _apply(model_path, words, workdir, ["--nbest", "1"])
    return parse_predictions(out.splitlines()), time.perf_counter() - start


def apply_nbest(model_path: str, words: Sequence[str], workdir: str, n: int) -> dict:
    """`phonetisaurus-apply --nbest n --verbose` on `words`: `parse_nbest`'s lists, each word's
    up to `n` hypotheses with their negative log-probabilities (for n-best rescoring)."""
    return parse_nbest(
        _apply(model_path, words, workdir, ["--nbest", str(n), "--verbose"]).splitlines()
    )


def _apply(model_path: str, words: Sequence[str], workdir: str, options: list[str]) -> str:
    word_list = os.path.join(workdir, "words.txt")
    with open(word_list, "w") as f:
        f.writelines(w + "\n" for w in words)
    cmd = ["phonetisaurus-apply", "--model", model_path, "--word_list", word_list, *options]
    return _run(cmd, env=environment())


def predictions_for(words: Sequence[str], predicted: dict[str, list[str]]) -> list[list[str]]:
    """One prediction per word, in order; a word without one gets `[]` (counted wrong)."""
    return [predicted.get(w, []) for w in words]


def run_variant(stress: bool, workdir: str) -> dict:
    """Trains on the training split and scores the test words; writes the lexicon, the model and
    `<workdir>/test_predictions.tsv`.

    Returns:
      The record: `stress`, `train_words`, `train_pronunciations`, `train_seconds`, `test`
      (`seqlstm.tasks.g2p.score`'s fields), `missing` (test words without a prediction),
      `decode_seconds`.
    """
    os.makedirs(workdir, exist_ok=True)
    train_lex = split_lexicon("train", stress)
    lexicon_path = os.path.join(workdir, "train.lexicon")
    lines = write_lexicon(lexicon_path, train_lex)
    model, train_seconds = train(lexicon_path, workdir)
    test_lex = split_lexicon("test", stress)
    words = list(test_lex)
    predicted, decode_seconds = apply(model, words, workdir)
    preds, refs = predictions_for(words, predicted), [test_lex[w] for w in words]
    write_predictions(os.path.join(workdir, PREDICTIONS), prediction_rows(words, preds, refs))
    return {
        "stress": stress,
        "train_words": len(train_lex),
        "train_pronunciations": lines,
        "train_seconds": train_seconds,
        "test": score(preds, refs),
        "missing": sum(w not in predicted for w in words),
        "decode_seconds": decode_seconds,
    }


def markdown_table(results: dict) -> str:
    """One row per variant: test WER and PER (any reference), training and decoding time."""
    lines = [
        f"Phonetisaurus {VERSION} (8-gram joint-sequence model, `--seq2_del`) on our split: "
        f"trained on the training words, scored on the test words.",
        "",
        "| model | symbols | train words / pronunciations | WER | PER | train time "
        "| decode time (test words) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["runs"]:
        t = r["test"]
        lines.append(
            f"| Phonetisaurus | {'69 (stress)' if r['stress'] else '39 (no stress)'} "
            f"| {r['train_words']:,} / {r['train_pronunciations']:,} "
            f"| {100 * t['wer']:.2f} | {100 * t['per']:.2f} | {r['train_seconds'] / 60:.1f} min "
            f"| {r['decode_seconds']:.0f} s ({t['words']:,}) |"
        )
    return "\n".join(lines) + "\n"
