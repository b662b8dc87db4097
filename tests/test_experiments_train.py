"""The absl launcher experiments/train.py, end to end in a subprocess."""

import json
import os
import subprocess
import sys

from launcher import stopped_step, wait_for_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def launch(*args):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run(
        [sys.executable, "-m", "experiments.train", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_launcher_trains_the_smoke_preset_with_overrides(tmp_path):
    workdir = tmp_path / "run"
    proc = launch(
        "--config=configs/reverse.py:smoke,variant=state_last_repeat",
        "--config.train.batch_size=64",
        f"--workdir={workdir}",
    )
    assert proc.returncode == 0, proc.stderr
    assert "Test: loss" in proc.stdout and "token accuracy" in proc.stdout
    with open(workdir / "config.json") as f:
        config = json.load(f)
    assert config["model"]["name"] == "state_last_repeat" and config["train"]["batch_size"] == 64
    assert (workdir / "results.json").exists() and os.listdir(workdir / "checkpoints") == ["6"]
    assert "Saving checkpoint" not in proc.stderr  # orbax's INFO logs stay quiet


def test_launcher_rejects_a_typo_in_a_config_override(tmp_path):
    proc = launch(
        "--config=configs/reverse.py:smoke", "--config.trian.x=1", f"--workdir={tmp_path}"
    )
    assert proc.returncode != 0
    assert "trian" in proc.stderr and 'Did you mean "train"' in proc.stderr
    assert not os.listdir(tmp_path)


def test_sigint_checkpoints_the_step_it_stopped_at_and_exits_cleanly(tmp_path):
    # Ctrl-C takes the same path as SIGTERM; that a resumed run ends bit-identical to an
    # uninterrupted one is tested once, in tests/test_signals.py.
    import signal

    workdir = tmp_path / "run"
    args = ["--config=configs/reverse.py:smoke", "--config.train.num_epochs=500"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiments.train", *args, f"--workdir={workdir}"],
        cwd=ROOT,
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_metrics(workdir)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "Stopped by a signal at step" in out, out
    step = stopped_step(out)
    assert step >= 4 and str(step) in os.listdir(workdir / "checkpoints")
    with open(workdir / "metrics.jsonl") as f:
        assert json.loads(f.readlines()[-1])["step"] <= step
    assert not (workdir / "results.json").exists()  # stopped, not finished


def test_a_config_error_is_one_line_with_exit_code_2(tmp_path):
    proc = launch(
        "--config=configs/reverse.py:smoke", "--config.train.batch_size=-3", f"--workdir={tmp_path}"
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == "error: config.train.batch_size must be a positive int, got -3"
    assert not os.listdir(tmp_path)
    verbose = launch(
        "--config=configs/reverse.py:smoke", "--config.train.batch_size=-3", "--verbosity=0",
        f"--workdir={tmp_path}",
    )  # fmt: skip
    assert verbose.returncode == 2 and "Traceback (most recent call last)" in verbose.stderr
    assert verbose.stderr.strip().splitlines()[-1].startswith("error: config.train.batch_size")


def test_decode_on_a_missing_workdir_suggests_the_seq2seq_config(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.decode", f"--workdir={tmp_path}/none", "--input=1"],
        cwd=ROOT, env=dict(os.environ, JAX_PLATFORMS="cpu"), capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: workdir") and "--config=configs/seq2seq.py" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
