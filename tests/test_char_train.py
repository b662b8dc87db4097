"""Character models through the training stack: smoke runs, sampling a checkpoint, bad input."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from configs import char_lm, chars
from experiments.char_analysis import context_categories, summarize_branches
from experiments.sampling import sample
from seqlstm.train import build, train_and_evaluate
from seqlstm.train.restore import load_run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A tiny folder of Python-like files (enough for a document split)."""
    root = tmp_path_factory.mktemp("corpus")
    for i in range(24):
        body = "".join(f"def f{i}_{j}(x):\n    return x + {j}\n\n" for j in range(8))
        (root / f"m{i:02d}.py").write_text(body)
    return str(root)


def smoke(module, corpus, **overrides):
    config = module.get_config("smoke")
    config.data.path = corpus
    config.data.vocab_size = 40
    config.train.progress_bar = False
    for key, value in overrides.items():
        section, name = key.split("__")
        config[section][name] = value
    return config


@pytest.fixture(scope="module")
def chars_run(corpus, tmp_path_factory):
    """One smoke run of the two-branch model, shared: `(config, workdir, results)`."""
    config = smoke(chars, corpus)
    workdir = str(tmp_path_factory.mktemp("chars_run"))
    return config, workdir, train_and_evaluate(config, workdir)


def check_workdir(config, workdir, res, corpus):
    assert res["steps"] == config.train.num_steps
    assert math.isfinite(res["val"]["loss"]) and res["val"]["loss"] < math.log(40) + 0.5
    for name in ("config.json", "metrics.jsonl", "results.json", "checkpoints"):
        assert os.path.exists(os.path.join(workdir, name)), name
    with open(os.path.join(workdir, "config.json")) as f:
        saved = json.load(f)
    assert saved["data"]["path"] == corpus and saved["model"]["vocab_size"] == 40


def test_smoke_run_chars_writes_a_complete_workdir(chars_run, corpus):
    check_workdir(*chars_run, corpus)


def test_smoke_run_char_lm_writes_a_complete_workdir(corpus, tmp_path):
    config = smoke(char_lm, corpus)
    check_workdir(config, str(tmp_path), train_and_evaluate(config, str(tmp_path)), corpus)


def test_sample_from_a_smoke_checkpoint_in_a_subprocess(chars_run):
    _, workdir, _ = chars_run
    cmd = [sys.executable, "-m", "experiments.sample", f"--workdir={workdir}", "--num_chars=12"]
    ok = subprocess.run(
        [*cmd, "--prompt=def f", "--seed=3"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("def f") and len(ok.stdout.rstrip("\n")) >= len("def f") + 1
    # The same entry point in-process: same text for the same seed, clear error for bad input.
    text = sample(workdir, "def f", num_chars=12, temperature=0.8, seed=3)
    assert ok.stdout == "def f" + text + "\n"
    with pytest.raises(ValueError, match=r"--prompt has 1 character\(s\) outside.*data.vocab_size"):
        sample(workdir, "def \u00e9t\u00e9", num_chars=5, temperature=1.0)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        sample(workdir, "def", num_chars=5, temperature=-0.5)


def test_load_run_restores_the_trained_parameters_and_analysis_runs(chars_run, tmp_path):
    config, workdir, res = chars_run
    _, data, model, meta = load_run(workdir)
    assert meta["done"]
    out = summarize_branches(model, data["val"], config.model.short_context)
    np.testing.assert_allclose(out["normal_bpc"] * math.log(2), res["val"]["loss"], rtol=1e-4)
    assert {"long_shuffled_bpc", "short_shuffled_bpc", "novel_share"} <= set(out)
    with pytest.raises(ValueError, match="holds no run"):
        load_run(str(tmp_path / "nothing"))


def test_context_categories_by_hand():
    # Window "abcxyzab" (short slice: the last 3), k=3 grams ending at the target.
    w = np.array([[0, 1, 2, 7, 8, 9, 0, 1]])
    assert context_categories(w, np.array([[2]]), short_context=3, k=3)[0] == 1  # "abc": far
    w2 = np.array([[5, 5, 5, 5, 0, 1, 0, 1]])
    assert context_categories(w2, np.array([[0]]), short_context=4, k=3)[0] == 0  # "010": local
    assert context_categories(w2, np.array([[3]]), short_context=4, k=3)[0] == 2  # "013": novel


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(data__path="/no/such/dir"), "data.path '/no/such/dir' does not exist"),
        (dict(data__context=0), "data.context must be a positive int, got 0"),
        (dict(model__short_context=0), "model.short_context must be a positive int, got 0"),
        (dict(data__context=10_000), "shorter than one window"),
        (dict(model__branches="all"), "model.branches must be one of"),
    ],
)
def test_bad_config_fails_before_training(corpus, tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        build(smoke(chars, corpus, **overrides))
    assert not os.path.exists(tmp_path / "config.json")


def test_empty_corpus_fails_with_a_clear_error(tmp_path):
    os.makedirs(tmp_path / "empty")
    config = smoke(chars, str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="is empty"):
        train_and_evaluate(config, str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run")
