"""Tests for seqlstm/data/corpus.py: strided windows, the vocabulary, the stdlib default corpus."""

import os

import numpy as np
import pytest

from seqlstm.data.corpus import (
    STDLIB_SKIP_DIRS,
    Vocabulary,
    list_documents,
    load_corpus,
    stdlib_dir,
    windows,
)


def write_docs(root, texts):
    os.makedirs(root, exist_ok=True)
    for i, t in enumerate(texts):
        with open(os.path.join(root, f"doc{i:02d}.txt"), "w", encoding="utf-8") as f:
            f.write(t)
    return str(root)


def test_windows_are_strided_views_with_next_character_targets():
    ids = np.arange(100, dtype=np.int32)
    nxt = windows(ids, 10, stride=7, targets="next")
    assert nxt["inputs"].shape == (13, 10) and nxt["targets"].shape == (13, 1)
    for i in (0, 5, 12):
        np.testing.assert_array_equal(nxt["inputs"][i], ids[7 * i : 7 * i + 10])
        assert nxt["targets"][i, 0] == ids[7 * i + 10]
    every = windows(ids, 10, stride=3, targets="every")
    np.testing.assert_array_equal(every["targets"][:, :-1], every["inputs"][:, 1:])
    np.testing.assert_array_equal(every["targets"][:, -1], every["inputs"][:, -1] + 1)
    for split in (nxt, every):
        # No [num_windows, context] copy: every array is a view of `ids` (or a broadcast).
        assert np.shares_memory(split["inputs"], ids) and np.shares_memory(split["targets"], ids)
        assert split["mask"].all() and split["mask"].strides == (0, 0)
        assert not split["inputs"].flags.writeable


def test_vocabulary_by_frequency_unknown_and_round_trips(tmp_path):
    path = write_docs(tmp_path / "c", ["aaaab bbc\u00e9" * 20])
    corpus = load_corpus(path, vocab_size=4, val_fraction=0.1, test_fraction=0.1)
    assert corpus.vocab.chars == ("a", "b", " ")  # most frequent first, then unknown id 0
    assert corpus.vocab.size == 4 and corpus.split == "region"
    assert corpus.vocab.decode(corpus.vocab.encode("ab a")) == "ab a"
    assert corpus.vocab.decode([1, 0, 99]) == "a\ufffd\ufffd"  # unknown and unused ids
    assert set(np.unique(corpus.train).tolist()) == {0, 1, 2, 3}  # 'c' and 'é' are unknown
    with pytest.raises(ValueError, match=r"prompt has 2 character\(s\) outside.*'c', 'é'"):
        corpus.vocab.encode("cab\u00e9", what="prompt")
    byte = Vocabulary("byte")
    assert byte.decode(byte.encode("na\u00efve \u2713")) == "na\u00efve \u2713" and byte.size == 256


def test_stdlib_is_the_default_corpus_and_is_real_text():
    files = list_documents("")
    assert files and all(f.startswith(stdlib_dir()) and f.endswith(".py") for f in files)
    assert len(files) > 100
    assert any(f.endswith(os.sep + "argparse.py") for f in files)
    parts = {p for f in files for p in os.path.relpath(f, stdlib_dir()).split(os.sep)[:-1]}
    assert not parts & STDLIB_SKIP_DIRS
    assert sum(os.path.getsize(f) for f in files) > 2_000_000  # multi-megabyte, not read here
