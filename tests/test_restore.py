"""Tests for seqlstm/train/restore.py: a saved run is data, never code.

The attacks are the ones observed on a shared run (issue 23): each edits the `config.json` of a
real, loadable run (an untrained smoke model, checkpointed without training) and loads it.
"""

import json
import os
import shutil
import sys

import pytest

from configs.reverse import get_config
from seqlstm.train import Checkpointer, create_train_state, prepare_workdir, split_model
from seqlstm.train.restore import load_config, load_model, load_run
from seqlstm.train.run import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARITY = os.path.join(ROOT, "examples", "parity")


def save_untrained(config, workdir: str) -> None:
    """`workdir` as a run of `config` leaves it: config.json and a checkpoint (step 1)."""
    prepare_workdir(config, workdir)
    model, tx = build_model(config)
    _, params = split_model(model)
    ckpt = Checkpointer(workdir)
    try:
        ckpt.save(1, create_train_state(params, tx, config.seed), params, {"done": True})
    finally:
        ckpt.close()


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A loadable run of configs/reverse.py:smoke (registered names only)."""
    workdir = str(tmp_path_factory.mktemp("reverse_run"))
    save_untrained(get_config("smoke"), workdir)
    return workdir


def edited(saved_run, tmp_path, model=None, data=None):
    """A copy of `saved_run` whose config.json's model and data sections are replaced."""
    workdir = tmp_path / "shared_run"
    shutil.copytree(saved_run, workdir)
    config = json.loads((workdir / "config.json").read_text())
    config["model"] = model or config["model"]
    config["data"] = data or config["data"]
    (workdir / "config.json").write_text(json.dumps(config))
    return str(workdir)


def test_a_registered_run_loads_without_opt_in(saved_run):
    config, model, meta = load_model(saved_run)
    assert config.model.name == "state_seq" and meta == {"done": True}
    assert type(model).__name__ == "StateSeq"


def test_a_model_import_path_is_not_imported_without_opt_in(saved_run, tmp_path, monkeypatch,
                                                              capsys):  # fmt: skip
    # Before: importing `this` printed the Zen of Python, then failed on `X`.
    monkeypatch.delitem(sys.modules, "this", raising=False)
    workdir = edited(saved_run, tmp_path, model={"name": "this:X"})
    with pytest.raises(
        ValueError,
        match=r"config.json names code: config.model.name='this:X' would import module 'this'.*"
        r"pass --trust_run_code \(trust_run_code=True in Python\)",
    ) as e:
        load_model(workdir)
    assert "\n" not in str(e.value)
    assert "this" not in sys.modules and "Beautiful" not in capsys.readouterr().out


def test_a_payload_module_in_the_run_folder_does_not_run(saved_run, tmp_path, monkeypatch):
    # Before: the module, found beside the run (its folder on the path, as when run from there),
    # wrote its file, and only then was it found not to be a model.
    workdir = edited(saved_run, tmp_path, model={"name": "run_payload_x7:Model"})
    marker = tmp_path / "pwned"
    with open(os.path.join(workdir, "run_payload_x7.py"), "w") as f:
        f.write(f"open({str(marker)!r}, 'w').write('ran')\nModel = None\n")
    monkeypatch.syspath_prepend(workdir)
    monkeypatch.delitem(sys.modules, "run_payload_x7", raising=False)
    with pytest.raises(ValueError, match="would import module 'run_payload_x7'"):
        load_model(workdir)
    with pytest.raises(ValueError, match="would import module 'run_payload_x7'"):
        load_run(workdir)
    assert not marker.exists() and "run_payload_x7" not in sys.modules


def test_a_data_import_path_does_not_run_a_command(saved_run, tmp_path):
    # Before: load_run called os.system(command=...) with the config's other keys.
    marker = tmp_path / "pwned"
    data = {"name": "os:system", "command": f"touch {marker}"}
    workdir = edited(saved_run, tmp_path, data=data)
    with pytest.raises(ValueError, match=r"config.data.name='os:system' would import module 'os'"):
        load_run(workdir)
    assert not marker.exists()


def test_data_arguments_are_checked_against_the_task_signature(saved_run, tmp_path):
    config = json.loads(open(os.path.join(saved_run, "config.json")).read())
    workdir = edited(saved_run, tmp_path, data={**config["data"], "command": "ls"})
    # Before: load_config and load_model passed it, so pronounce and decode never noticed.
    with pytest.raises(
        ValueError,
        match=r"config.json: data task 'reverse' got unknown arguments \['command'\]; "
        r"it takes \['length'",
    ):
        load_config(workdir)
    with pytest.raises(ValueError, match=r"unknown model 'nope' \(config.model.name\)"):
        load_config(edited(saved_run, tmp_path / "b", model={"name": "nope"}))


def test_an_import_path_run_loads_with_opt_in(tmp_path, monkeypatch):
    from examples.parity.config import get_config as parity_config

    monkeypatch.syspath_prepend(PARITY)
    workdir = str(tmp_path / "parity")
    save_untrained(parity_config("smoke"), workdir)
    with pytest.raises(ValueError, match="config.model.name='parity:ParityLSTM' would import"):
        load_run(workdir)
    config, data, model, meta = load_run(workdir, trust_run_code=True)
    assert type(model).__name__ == "ParityLSTM" and meta == {"done": True}
    assert data["train"]["targets"].shape == (config.data.num_train, 1)
