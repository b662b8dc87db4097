"""The character (or byte) text task (`"text"`): next-character windows over a text corpus.

The corpus (every text file under a path, or the Python standard library's own source by default),
its vocabulary, its splits and its strided windows are read by `seqlstm.data.corpus`; this module
makes the task of them. Evaluation adds bits per character (`seqlstm.tasks.hooks.bits_per_token`),
the loss in bits. With `stream=True` the training windows are read as parallel streams
(`seqlstm.data.streams`) for a model that carries its state across batches.
"""

from __future__ import annotations

import numpy as np

from seqlstm.checks import check_int
from seqlstm.data.corpus import Vocabulary, load_corpus, spread_stride, windows
from seqlstm.data.streams import STREAM_ORDER, document_windows
from seqlstm.task import Task
from seqlstm.tasks.hooks import bits_per_token


def make_text_task(
    *,
    path: str = "",
    pattern: str = "",
    level: str = "char",
    vocab_size: int = 100,
    split: str = "auto",
    val_fraction: float = 0.05,
    test_fraction: float = 0.05,
    max_chars: int = 0,
    context: int = 512,
    targets: str = "next",
    stride: int = 1,
    eval_windows: int = 2048,
    stream: bool = False,
) -> Task:
    """Next-character windows over a text corpus: the `"text"` task of `seqlstm.tasks.get_task`.

    Args:
      path, pattern, level, vocab_size, split, val_fraction, test_fraction, max_chars: the
        corpus, see `load_corpus`.
      context: characters a model reads per window (the long context, 512 in the study).
      targets: `"next"` (one target per window) or `"every"` (a target at every step).
      stride: distance between training window starts.
      eval_windows: windows of validation and of test, spread evenly over their split (0: every
        window at `stride`).
      stream: train on each training document's consecutive windows, read as `batch_size`
        parallel streams for a model that carries its state across batches
        (`seqlstm.data.streams`); needs `targets="every"` and `stride == context`. Every split
        then has `reset: bool[n]` (all True in validation and test, which are evaluated window
        by window as without `stream`).

    Returns:
      `{"train", "val", "test"}` splits of strided views (module docstring), evaluated in bits
      per character as well.

    Raises:
      ValueError: for a bad corpus or argument, naming the config key to change.
    """
    check_int("data.context", context)
    check_int("data.stride", stride)
    check_int("data.eval_windows", eval_windows, 0)
    corpus = load_corpus(
        path,
        pattern=pattern,
        level=level,
        vocab_size=vocab_size,
        split=split,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        max_chars=max_chars,
    )
    if not isinstance(stream, bool):
        raise ValueError(f"data.stream must be True or False, got {stream!r}")
    if stream and (targets != "every" or stride != context):
        raise ValueError(
            f"data.stream=True reads consecutive, non-overlapping windows with a target at every "
            f"step: it needs data.targets='every' (got {targets!r}) and data.stride equal to "
            f"data.context={context} (got {stride})"
        )
    if stream:
        train = document_windows(corpus.train, corpus.train_starts, context, name="train")
    else:
        train = windows(corpus.train, context, stride=stride, targets=targets, name="train")
    out = {"train": train}
    for name in ("val", "test"):
        ids = getattr(corpus, name)
        s = spread_stride(ids.shape[0], context, eval_windows) if eval_windows else stride
        split_windows = windows(ids, context, stride=s, targets=targets, name=name)
        if eval_windows:
            split_windows = {k: v[:eval_windows] for k, v in split_windows.items()}
        if stream:
            split_windows["reset"] = np.ones(split_windows["mask"].shape[0], bool)
        out[name] = split_windows
    return Task(out, hooks=(bits_per_token,), train_order=STREAM_ORDER if stream else None)


def task_vocabulary(data_config) -> Vocabulary:
    """The vocabulary of a `"text"` task config (`config.data`), as training built it."""
    keys = ("path", "pattern", "level", "vocab_size", "split", "val_fraction", "test_fraction")
    kwargs = {k: data_config[k] for k in keys if k in data_config}
    if "max_chars" in data_config:
        kwargs["max_chars"] = data_config["max_chars"]
    return load_corpus(kwargs.pop("path", ""), **kwargs).vocab
