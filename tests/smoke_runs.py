"""Smoke runs of configs/reverse.py for the fault tests (test_nonfinite, test_signals,
test_storage, test_experiments_launch): the config, and what a run's workdir holds. The runs they
compare with and damage copies of, `reference` and `stopped_at_8`, are fixtures in conftest.py."""

import json
import os
import shutil

import jax
import numpy as np

from configs.reverse import get_config
from seqlstm.train import Checkpointer, build, create_train_state, split_model

EPOCHS = 10  # of the reference run: 40 steps of 4 a epoch


def smoke(**train):
    config = get_config("smoke")
    config.train.progress_bar = False
    config.train.update(train)
    return config


def final_params(workdir):
    _, model, tx = build(smoke())
    _, params = split_model(model)
    ckpt = Checkpointer(str(workdir))
    try:
        state, _, meta = ckpt.restore(create_train_state(params, tx, 0), params)
    finally:
        ckpt.close()
    return [np.asarray(x) for x in jax.tree.leaves((state.params, state.opt_state))], meta


def assert_same_params(a, b):
    for x, y in zip(final_params(a)[0], final_params(b)[0], strict=True):
        np.testing.assert_array_equal(x, y)


def read_rows(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def copy_of(workdir, tmp_path):
    shutil.copytree(workdir, tmp_path / "run")
    return tmp_path / "run"
