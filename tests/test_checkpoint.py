"""Tests for seqlstm/train/checkpoint.py: what config.json states, checksums, failed saves."""

import errno
import json
import os

import pytest
from orbax.checkpoint._src.handlers import json_checkpoint_handler
from smoke_runs import smoke

from seqlstm.train import Checkpointer, build, create_train_state, split_model, train_and_evaluate
from seqlstm.train.checkpoint import CorruptCheckpointError, prepare_workdir
from seqlstm.train.restore import load_config
from seqlstm.train.storage import WorkdirWriteError


def test_config_json_states_what_the_run_did(tmp_path):
    workdir, path = str(tmp_path), tmp_path / "config.json"
    train_and_evaluate(smoke(stop_after_steps=9), workdir)  # epoch 2, batch 1 (4 a epoch)
    written = path.read_text()
    # Before: this trained to the end of epoch 3 while config.json said 2.
    with pytest.raises(ValueError, match=r"already 2 epochs in \(step 9\).*num_epochs 3 -> 2"):
        train_and_evaluate(smoke(num_epochs=2), workdir)
    with pytest.raises(ValueError, match="already at step 9"):
        train_and_evaluate(smoke(num_steps=9), workdir)
    assert path.read_text() == written
    assert train_and_evaluate(smoke(), workdir)["steps"] == 12
    written = path.read_text()
    # Before: this only re-evaluated, but config.json said 10 epochs.
    with pytest.raises(ValueError, match=r"holds a finished run \(12 steps\); train.num_epochs"):
        train_and_evaluate(smoke(num_epochs=10), workdir)
    assert train_and_evaluate(smoke(log_every_steps=1), workdir)["steps"] == 12  # re-evaluates
    assert path.read_text() == written and json.loads(written)["train"]["log_every_steps"] == 0


def test_a_damaged_config_json_is_named(tmp_path):
    (tmp_path / "config.json").write_text('{"data": {"name": "rev')
    path = str(tmp_path / "config.json")
    with pytest.raises(ValueError, match=f"{path} is not valid JSON.*use a new --workdir"):
        train_and_evaluate(smoke(), str(tmp_path))
    with pytest.raises(ValueError, match=f"{path} is not valid JSON"):
        load_config(str(tmp_path))


def templates():
    _, model, tx = build(smoke())
    _, params = split_model(model)
    return create_train_state(params, tx, 0), params


def test_a_full_disk_while_saving_names_the_checkpoint_and_keeps_the_last_one(
    tmp_path, monkeypatch
):
    state, params = templates()
    ckpt = Checkpointer(str(tmp_path))
    assert ckpt.save(4, state, params, {"step": 4})

    async def full_disk(self, directory, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(json_checkpoint_handler.JsonCheckpointHandler, "async_save", full_disk)
    with pytest.raises(WorkdirWriteError, match=f"disk full writing {tmp_path}/checkpoints/8"):
        ckpt.save(8, state, params, {"step": 8})
    monkeypatch.undo()
    ckpt.close()
    ckpt = Checkpointer(str(tmp_path))
    assert ckpt.latest_step() == 4 and ckpt.restore(state, params)[2] == {"step": 4}
    ckpt.close()


def test_checksums_catch_a_changed_file_and_name_it(tmp_path):
    state, params = templates()
    ckpt = Checkpointer(str(tmp_path))
    ckpt.save(4, state, params, {"step": 4})
    ckpt.verify(4)
    meta = tmp_path / "checkpoints" / "4" / "meta" / "metadata"
    meta.write_text(meta.read_text().replace("4", "5"))
    with pytest.raises(CorruptCheckpointError, match=r"4 is damaged: meta/metadata differ"):
        ckpt.restore(state, params)
    os.remove(tmp_path / "checkpoints" / "4" / "checksums.json")
    assert ckpt.restore(state, params)[2] == {"step": 5}  # saved before checksums: unverified
    ckpt.close()


def test_a_config_json_whose_run_saved_no_checkpoint_gives_way_to_a_corrected_config(
    tmp_path, capsys
):
    # Issue 23: a run that ran out of memory before its first checkpoint left its config.json,
    # which then refused the smaller batch in the same workdir.
    workdir, path = str(tmp_path), tmp_path / "config.json"
    prepare_workdir(smoke(), workdir)
    (tmp_path / "checkpoints").mkdir()  # as orbax leaves it: empty
    (tmp_path / "checkpoints" / "4.orbax-checkpoint-tmp").mkdir()  # a save cut short
    assert not prepare_workdir(smoke(batch_size=16), workdir)
    assert json.loads(path.read_text())["train"]["batch_size"] == 16
    out = capsys.readouterr().out
    assert (
        out
        == f"{path} is of a run that saved no checkpoint: replaced (train.batch_size 32 -> 16)\n"
    )
    (tmp_path / "checkpoints" / "4").mkdir()  # with a checkpoint, the config is the run's
    with pytest.raises(ValueError, match=r"(?s)different config.*train.batch_size: 16 -> 8"):
        prepare_workdir(smoke(batch_size=8), workdir)
    assert json.loads(path.read_text())["train"]["batch_size"] == 16


def test_a_key_added_since_the_run_resumes_at_its_old_meaning(tmp_path):
    """A run saved before `train.label_smoothing` existed resumes with it at 0.0 (what the run
    computed), and is refused with any other value."""
    from seqlstm.train.checkpoint import prepare_workdir

    workdir, path = str(tmp_path), tmp_path / "config.json"
    assert prepare_workdir(smoke(), workdir) is False
    old = json.loads(path.read_text())
    del old["train"]["label_smoothing"]
    path.write_text(json.dumps(old))
    os.makedirs(tmp_path / "checkpoints" / "4")  # a checkpoint: the config is the run's
    with pytest.raises(ValueError, match=r"train.label_smoothing: None -> 0.1"):
        prepare_workdir(smoke(label_smoothing=0.1), workdir)
    assert prepare_workdir(smoke(), workdir) is True
    assert json.loads(path.read_text())["train"]["label_smoothing"] == 0.0
