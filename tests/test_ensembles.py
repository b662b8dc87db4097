"""Ensemble folders (seqlstm.train.ensembles): what they name, and what they refuse before any
model loads. Decoding an ensemble folder is tested on a smoke run in tests/test_tasks_g2p.py."""

import json
import os

import pytest

from configs import g2p
from seqlstm.train import prepare_workdir
from seqlstm.train.ensembles import (
    ENSEMBLE,
    ensemble_members,
    is_ensemble,
    load_ensemble,
    write_ensemble,
)


@pytest.fixture()
def runs(tmp_path):
    """Three config-only G2P runs: two alike, one with stress kept."""
    out = {}
    for name, preset in (("a", "smoke"), ("b", "smoke,seed=1"), ("stress", "smoke,stress")):
        out[name] = str(tmp_path / "runs" / name)
        prepare_workdir(g2p.get_config(preset), out[name])
    return out


def test_folder_names_its_members_relative_to_itself(runs, tmp_path):
    ens = str(tmp_path / "ens")
    write_ensemble(ens, [runs["a"], runs["b"]])
    with open(os.path.join(ens, ENSEMBLE)) as f:
        assert json.load(f) == {"members": ["../runs/a", "../runs/b"]}
    assert is_ensemble(ens) and not is_ensemble(runs["a"])
    assert ensemble_members(ens) == [os.path.normpath(runs["a"]), os.path.normpath(runs["b"])]
    assert ensemble_members(runs["a"]) == [runs["a"]]
    moved = tmp_path / "moved"  # the runs and the folder, moved together, still resolve
    moved.mkdir()
    os.rename(tmp_path / "runs", moved / "runs")
    os.rename(ens, moved / "ens")
    assert ensemble_members(str(moved / "ens")) == [str(moved / "runs/a"), str(moved / "runs/b")]


def test_bad_members_are_refused(runs, tmp_path):
    with pytest.raises(ValueError, match="needs at least one member"):
        write_ensemble(str(tmp_path / "e"), [])
    with pytest.raises(ValueError, match="name a run twice"):
        write_ensemble(str(tmp_path / "e"), [runs["a"], runs["a"] + "/"])
    with pytest.raises(ValueError, match=r"member '.*nowhere' holds no run"):
        write_ensemble(str(tmp_path / "e"), [runs["a"], str(tmp_path / "nowhere")])
    assert not os.path.exists(tmp_path / "e")  # nothing written for a refused ensemble
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / ENSEMBLE).write_text('{"members": []}')
    with pytest.raises(ValueError, match="'members' must be a non-empty list"):
        ensemble_members(str(bad))
    (bad / ENSEMBLE).write_text("{not json")
    with pytest.raises(ValueError, match="is not an ensemble file"):
        ensemble_members(str(bad))


def test_members_trained_on_other_data_are_refused_before_loading(runs, tmp_path):
    ens = str(tmp_path / "ens")
    write_ensemble(ens, [runs["a"], runs["stress"]])
    # No checkpoints exist: a check after loading would say "no checkpoints/" instead.
    with pytest.raises(ValueError) as e:
        load_ensemble(ens)
    message = str(e.value)
    assert "\n" not in message
    assert f"member {os.path.normpath(runs['stress'])!r} was trained on other data" in message
    assert "(data.stress: False against True)" in message
    write_ensemble(ens, [runs["a"], runs["b"]])  # seeds differ, data alike: on to loading
    with pytest.raises(ValueError, match="has no checkpoints/ to load"):
        load_ensemble(ens)
