"""The absl launcher experiments/train.py, end to end in a subprocess."""

import json
import os
import subprocess
import sys

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
