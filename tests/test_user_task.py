"""A task and a model defined outside the package (examples/parity), trained by the stock
launcher from another folder: import paths, a stop and exact resume, and a 4-device mesh."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from launcher import xla_flags

from seqlstm.models import MODELS, get_model
from seqlstm.tasks import TASKS, get_task

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "parity")


def launch(workdir, user_dir, *overrides):
    env = dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        PYTHONPATH=os.pathsep.join([user_dir, ROOT]),
        XLA_FLAGS=xla_flags("--xla_force_host_platform_device_count=4"),
    )
    return subprocess.run(
        [sys.executable, "-m", "experiments.train", f"--config={user_dir}/config.py:smoke",
         f"--workdir={workdir}", "--config.parallel.mesh_shape=(4,)", *overrides],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_user_task_and_model_train_stop_and_resume_exactly_on_a_mesh(tmp_path):
    user_dir = str(tmp_path / "my_project")
    shutil.copytree(EXAMPLE, user_dir)
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    every3 = ("--config.train.checkpoint_every_steps=3", "--config.train.max_to_keep=5")
    proc = launch(whole, user_dir, *every3)
    assert proc.returncode == 0, proc.stderr
    assert "mesh (data=4) of 4 devices" in proc.stdout
    assert "accuracy_by_length_8" in proc.stdout  # the task's own hook, printed
    assert sorted(os.listdir(whole / "checkpoints"), key=int) == ["3", "6", "8"]

    # The run as a stop after step 3 leaves it (killed there: later checkpoints and results not
    # written yet), then resumed by the launcher.
    shutil.copytree(whole, stopped)
    for later in ("6", "8"):
        shutil.rmtree(stopped / "checkpoints" / later)
    (stopped / "results.json").unlink()
    resumed = launch(stopped, user_dir, *every3)
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming" in resumed.stdout and "at step 3" in resumed.stdout

    results = [json.loads((w / "results.json").read_text()) for w in (whole, stopped)]
    assert results[0] == results[1]  # bit for bit: loss, accuracies and the hook's numbers
    test = results[0]["test"]
    assert set(test["accuracy_by_length"]) == {str(n) for n in range(1, 9)}
    assert 0.0 <= test["token_accuracy"] <= 1.0
    rows = [json.loads(line) for line in (whole / "metrics.jsonl").read_text().splitlines()]
    assert "eval_accuracy_by_length" in rows[-1]  # hooks run at every evaluation too


def test_import_paths_resolve_and_bad_ones_name_the_key(monkeypatch):
    monkeypatch.syspath_prepend(EXAMPLE)
    task = get_task("parity:make_parity_task", num_train=8, num_test=4, max_length=3)
    assert task["train"]["targets"].shape == (8, 1) and len(task.hooks) == 1
    model = get_model("parity:ParityLSTM", hidden_size=3, rngs=__import__("flax").nnx.Rngs(0))
    assert type(model).__name__ == "ParityLSTM"
    with pytest.raises(ValueError, match=r"unknown model 'nope'.*expected one of \['char_lm'"):
        get_model("nope", rngs=None)
    with pytest.raises(ValueError, match=r"config.model.name='no_such_module:X'.*does not import"):
        get_model("no_such_module:X", rngs=None)
    with pytest.raises(ValueError, match=r"'parity' has no attribute 'Nope'"):
        get_model("parity:Nope", rngs=None)
    with pytest.raises(
        ValueError, match=r"config.model.name='parity:make_parity_task'.*not a model"
    ):
        get_model("parity:make_parity_task", rngs=None)
    with pytest.raises(ValueError, match=r"config.data.name='parity:ParityLSTM'.*not a task fun"):
        get_task("parity:ParityLSTM")
    with pytest.raises(
        ValueError, match=r"unknown data task 'nope'.*\['g2p', 'reverse', 'seq2seq'"
    ):
        get_task("nope")
    assert sorted(TASKS) == ["g2p", "reverse", "seq2seq", "text"] and "encoder_decoder" in MODELS


def test_a_model_class_with_eval_hooks_is_refused_naming_where_hooks_go(monkeypatch):
    monkeypatch.syspath_prepend(EXAMPLE)
    import parity

    class WithHooks(parity.ParityLSTM):
        eval_hooks = (parity.accuracy_by_length,)

    monkeypatch.setattr(parity, "WithHooks", WithHooks, raising=False)
    with pytest.raises(ValueError, match=r"defines eval_hooks.*return them in its Task\(hooks="):
        get_model("parity:WithHooks", hidden_size=3, rngs=None)
