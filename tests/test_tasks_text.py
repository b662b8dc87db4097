"""Tests for seqlstm/tasks/text.py: the text task's splits (region, document), determinism, bad
input (the corpus reader alone: tests/test_data_corpus.py)."""

import os

import numpy as np
import pytest
from test_data_corpus import write_docs

from seqlstm.data import train_batches
from seqlstm.data.corpus import load_corpus
from seqlstm.tasks import get_task
from seqlstm.tasks.text import make_text_task


def test_region_split_windows_never_cross_the_boundary(tmp_path):
    # Train, validation and test regions of a single file are told apart by their letter.
    path = write_docs(tmp_path / "c", ["a" * 800 + "b" * 100 + "c" * 100])
    kw = dict(path=path, level="byte", vocab_size=256, val_fraction=0.1, test_fraction=0.1)
    data = make_text_task(**kw, context=16, stride=1, eval_windows=0, targets="every")
    vocab = load_corpus(**kw).vocab
    for name, letter in (("train", "a"), ("val", "b"), ("test", "c")):
        split = data[name]
        seen = set(vocab.decode(np.asarray(split["inputs"])) + vocab.decode(split["targets"]))
        assert seen == {letter}, name
    assert data["train"]["inputs"].shape[0] == 800 - 16


def test_document_split_keeps_files_whole_and_balances_characters(tmp_path):
    letters = "abcdefghijklmnopqrstuvwxy"
    path = write_docs(tmp_path / "c", [ch * (200 + 10 * i) for i, ch in enumerate(letters)])
    # Bytes: every letter keeps its id although validation letters never occur in training.
    kw = dict(level="byte", vocab_size=256, val_fraction=0.1, test_fraction=0.1)
    corpus = load_corpus(path, **kw)
    assert corpus.split == "document" and corpus.documents == 25
    parts = {n: set(corpus.vocab.decode(getattr(corpus, n))) for n in ("train", "val", "test")}
    assert not (parts["train"] & parts["val"] or parts["train"] & parts["test"])
    assert not parts["val"] & parts["test"]
    total = sum(200 + 10 * i for i in range(25))
    for n in ("val", "test"):
        assert 0.1 * total <= getattr(corpus, n).size < 0.1 * total + 450
    data = make_text_task(path=path, context=8, **kw)
    for name in ("train", "val"):
        # Windows may span files of one split, never files of another split.
        seen = set(corpus.vocab.decode(np.asarray(data[name]["inputs"][::5])))
        assert seen <= parts[name]


def test_loading_and_batches_are_deterministic(tmp_path):
    path = write_docs(
        tmp_path / "c", [f"def f{i}(x):\n    return x * {i}\n" * 9 for i in range(30)]
    )
    a = make_text_task(path=path, context=12, eval_windows=20)
    load_corpus.cache_clear()
    b = make_text_task(path=path, context=12, eval_windows=20)
    for split in ("train", "val", "test"):
        for key in ("inputs", "targets"):
            np.testing.assert_array_equal(a[split][key], b[split][key])
    assert a["val"]["inputs"].shape == (20, 12)
    first = [batch for _, batch in train_batches(a["train"], 8, seed=3, epoch=1, start=2)][:3]
    again = [batch for _, batch in train_batches(b["train"], 8, seed=3, epoch=1, start=2)][:3]
    for x, y in zip(first, again):
        np.testing.assert_array_equal(x["inputs"], y["inputs"])
        np.testing.assert_array_equal(x["targets"], y["targets"])
        assert x["inputs"].shape == (8, 12)
        assert not np.shares_memory(x["inputs"], a["train"]["inputs"])  # a batch is gathered
    assert get_task("text", path=path, context=12, eval_windows=20)["val"]["inputs"].shape[0] == 20


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(path="/no/such/corpus"), r"data.path '/no/such/corpus' does not exist"),
        (dict(path="EMPTY_DIR"), r"is empty .*point data.path at text"),
        (dict(path="EMPTY_FILE"), r"is empty"),
        (dict(path="SHORT", context=64), r"shorter than one window .*smaller data.context"),
        (dict(path="SHORT", context=0), r"data.context must be a positive int, got 0"),
        (dict(path="SHORT", stride=0), r"data.stride must be a positive int"),
        (dict(path="SHORT", level="byte"), r"data.level='byte' needs data.vocab_size=256"),
        (dict(path="SHORT", level="word"), r"data.level must be one of"),
        (dict(path="SHORT", val_fraction=0.0), r"data.val_fraction must be in \(0, 0.5\)"),
        (dict(path="SHORT", split="document"), r"needs at least 3 files.*data.split='region'"),
        (dict(path="SHORT", targets="all"), r"data.targets must be one of"),
    ],
)
def test_bad_input_names_what_to_change(tmp_path, kwargs, match):
    os.makedirs(tmp_path / "empty")
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "short.txt").write_text("x = 1\n" * 40)
    lookup = {
        "EMPTY_DIR": str(tmp_path / "empty"),
        "EMPTY_FILE": str(tmp_path / "empty.txt"),
        "SHORT": str(tmp_path / "short.txt"),
    }
    kwargs = {**kwargs, "path": lookup.get(kwargs["path"], kwargs["path"])}
    kwargs.setdefault("context", 8)
    with pytest.raises(ValueError, match=match):
        make_text_task(**kwargs)
