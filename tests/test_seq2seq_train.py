"""Smoke training runs of every configs/seq2seq.py preset family, through the train stack."""

import json
import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from configs.seq2seq import get_config
from seqlstm.train import make_optimizer, train_and_evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PRESETS = [
    "smoke",
    "smoke,task=dedup_reverse,attention=additive,bucket",
    "smoke,task=addition,attention=none",
]


@pytest.mark.parametrize("preset", PRESETS)
def test_smoke_run(preset, tmp_path, capsys):
    config = get_config(preset)
    config.train.progress_bar = False
    results = train_and_evaluate(config, str(tmp_path))
    assert np.isfinite(results["test"]["loss"])
    decoded = results["test"]["decoded"]
    assert 0.0 <= decoded["sequence_accuracy"] <= 1.0 and decoded["sequences"] == 32
    with open(os.path.join(tmp_path, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    assert rows[-1]["step"] == 6 and np.isfinite(rows[-1]["train_loss"])
    assert os.listdir(os.path.join(tmp_path, "checkpoints"))
    if preset == "smoke":
        check_decode_launcher(tmp_path)
        check_unwritable_heatmap(tmp_path, capsys)


def check_decode_launcher(workdir):
    """experiments/decode.py loads the run, decodes the inputs and draws the heat-map."""
    heatmap = os.path.join(workdir, "heat.png")
    cmd = [sys.executable, "-m", "experiments.decode", f"--workdir={workdir}"]
    out = subprocess.run(
        [*cmd, "--input=1 2 3", "--input=", "--beam_size=2", f"--heatmap={heatmap}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "input:  1 2 3" in out.stdout and "input:  (empty)" in out.stdout
    assert out.stdout.count("output: ") == 2 and os.path.getsize(heatmap) > 0


def check_unwritable_heatmap(workdir, capsys):
    """A heat map that cannot be written (as in a read-only workdir) is a warning after the
    outputs, not an error (before: exit code 2 after the decoding)."""
    from experiments.decoding import decode_inputs

    os.mkdir(os.path.join(workdir, "attention.png"))  # the default path, blocked even for root
    capsys.readouterr()
    decode_inputs(str(workdir), ["1 2 3", ""], beam_size=2)  # the launcher's shapes: compiled
    out = capsys.readouterr()
    assert "input:  1 2 3" in out.out and out.out.count("output: ") == 2
    assert out.err.startswith("warning: cannot write the attention heat-map ") and (
        out.err.count("\n") == 1
    )


def test_presets_set_the_model_from_the_data():
    config = get_config("task=addition")
    assert (config.model.source_vocab_size, config.model.target_vocab_size) == (14, 13)
    assert (config.model.max_source_len, config.model.max_target_len) == (7, 5)
    config = get_config("generalize")
    assert (config.data.max_length, config.data.test_max_length) == (16, 32)
    assert (config.model.max_source_len, config.model.max_target_len) == (32, 33)
    assert get_config("len=64,attention=none").model.attention is None
    with pytest.raises(ValueError, match="unknown preset"):
        get_config("length=4")
    with pytest.raises(ValueError, match="unknown attention"):
        get_config("attention=luong")


def test_learning_rate_decays_over_the_run():
    config = get_config("smoke")
    config.train.num_steps = 40
    assert config.optim.to_dict()["decay_steps"] == 40  # follows the run's length
    tx = make_optimizer({"name": "sgd", "learning_rate": 1.0, "decay_steps": 4})
    params = {"w": jnp.zeros(())}
    state = tx.init(params)
    lrs = []
    for _ in range(5):
        updates, state = tx.update({"w": jnp.ones(())}, state, params)
        lrs.append(-float(updates["w"]))
    np.testing.assert_allclose(lrs, [1.0, 0.8535534, 0.5, 0.1464466, 0.0], atol=1e-6)
    with pytest.raises(ValueError, match="decay_steps"):
        make_optimizer({"name": "adam", "decay_steps": -1})


def test_buckets_serve_any_task_by_its_mask():
    from configs.reverse import get_config as reverse_config
    from seqlstm.train import build_run

    config = reverse_config("smoke")
    plain = build_run(config)
    config.train.buckets = (4,)  # every reversal has 4 steps: one bucket, the same batch count
    bucketed = build_run(config)
    assert bucketed.steps_per_epoch == plain.steps_per_epoch == 4
    (_, batch), *_ = bucketed.epoch(0)
    assert batch["inputs"].shape == (32, 4, 10) and batch["mask"].shape == (32, 4)
