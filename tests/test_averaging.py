"""Tests for seqlstm/train/averaging.py: the average of saved checkpoints is the mean of their
parameters, loaded directly and as a run of its own; too few kept checkpoints are refused."""

import os

import jax
import numpy as np
import pytest

from configs.reverse import get_config
from seqlstm.train import Checkpointer, create_train_state, prepare_workdir, split_model
from seqlstm.train.averaging import average_checkpoints, average_trees, write_averaged
from seqlstm.train.restore import load_model
from seqlstm.train.run import build_model


@pytest.fixture(scope="module")
def three_checkpoints(tmp_path_factory):
    """A workdir with checkpoints at steps 1, 2 and 3 holding different parameters."""
    workdir = str(tmp_path_factory.mktemp("run"))
    config = get_config("smoke")
    config.train.max_to_keep = 3
    model, tx = build_model(config)
    model_def, params = split_model(model)
    state = create_train_state(params, tx, config.seed, model_def.carry)
    prepare_workdir(config, workdir)
    saved = []
    ckpt = Checkpointer(workdir, max_to_keep=3)
    for step in (1, 2, 3):
        p = jax.tree.map(lambda x, s=step: x * s + 0.1 * s, params)
        ckpt.save(step, state._replace(step=state.step + step, params=p), p, {"done": step == 3})
        saved.append(jax.tree.map(np.asarray, p))
    ckpt.close()
    return workdir, saved


def model_params(model):
    return jax.tree.map(np.asarray, split_model(model)[1])


def test_average_trees_by_hand():
    got = average_trees([{"a": np.float32(1.0), "b": [np.ones(2)]}, {"a": 2.0, "b": [np.zeros(2)]}])
    assert float(got["a"]) == 1.5
    np.testing.assert_array_equal(got["b"][0], [0.5, 0.5])


def test_averaging_the_last_two_checkpoints_is_their_mean(three_checkpoints, tmp_path):
    workdir, saved = three_checkpoints
    mean = jax.tree.map(lambda a, b: (a + b) / 2, saved[1], saved[2])  # steps 2 and 3
    _, model, meta = average_checkpoints(workdir, 2)
    assert meta["averaged_steps"] == [2, 3] and meta["done"]
    for got, want in zip(jax.tree.leaves(model_params(model)), jax.tree.leaves(mean)):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    # Written as a run of its own, it loads as any run.
    out = str(tmp_path / "averaged")
    write_averaged(workdir, out, 2)
    _, loaded, meta = load_model(out)
    assert meta["averaged_steps"] == [2, 3] and meta["averaged_from"] == workdir
    for got, want in zip(jax.tree.leaves(model_params(loaded)), jax.tree.leaves(mean)):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    with pytest.raises(ValueError, match="already holds files"):
        write_averaged(workdir, out, 2)
    # One checkpoint: the latest itself.
    _, latest, _ = average_checkpoints(workdir, 1)
    for got, want in zip(jax.tree.leaves(model_params(latest)), jax.tree.leaves(saved[2])):
        np.testing.assert_array_equal(got, want)


def test_more_than_the_kept_checkpoints_is_refused(three_checkpoints):
    workdir, _ = three_checkpoints
    with pytest.raises(ValueError, match=r"keeps 3 checkpoints .*max_to_keep=4"):
        average_checkpoints(workdir, 4)
    with pytest.raises(ValueError, match="last must be"):
        average_checkpoints(workdir, 0)


def test_a_write_cut_short_leaves_no_run_behind(three_checkpoints, tmp_path, monkeypatch):
    # config.json used to be written first: a crash before the checkpoint left a run that the
    # study took as done (it tests for config.json) and that no loader could read.
    from seqlstm.train import averaging

    def crash(*args, **kwargs):
        raise OSError("disk full (test)")

    monkeypatch.setattr(averaging.Checkpointer, "save", crash)
    out = str(tmp_path / "averaged")
    with pytest.raises(OSError, match="disk full"):
        write_averaged(three_checkpoints[0], out, 2)
    assert not os.path.exists(os.path.join(out, "config.json"))
