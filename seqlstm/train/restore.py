"""Loading a trained model back from its workdir (`config.json` + the latest checkpoint)."""

from __future__ import annotations

import os
from typing import Any

import ml_collections
from flax import nnx

from seqlstm.data import get_task
from seqlstm.train.checkpoint import Checkpointer
from seqlstm.train.run import build_model, check_config
from seqlstm.train.state import create_train_state, split_model
from seqlstm.train.workdir import read_json


def load_config(workdir: str, example: str = "configs/chars.py") -> ml_collections.ConfigDict:
    """The config a workdir's run was trained with.

    Args:
      workdir: a directory written by `train_and_evaluate`.
      example: the config the error message suggests training when there is no run.

    Raises:
      ValueError: if `workdir` holds no run, or its `config.json` is not valid JSON (naming it).
    """
    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        raise ValueError(
            f"workdir {workdir!r} holds no run (no config.json); train one first, e.g. "
            f"python -m experiments.train --config={example} --workdir={workdir}"
        )
    return ml_collections.ConfigDict(read_json(path))


def load_model(
    workdir: str, example: str = "configs/chars.py"
) -> tuple[ml_collections.ConfigDict, nnx.Module, dict]:
    """Rebuilds a workdir's model, without its data, and loads its latest checkpoint's parameters.

    The parameters are the training state's: after a finished run with early stopping, those of
    the best validation loss (the loop restores them before its final checkpoint).

    Args:
      workdir: a directory written by `train_and_evaluate`.
      example: the config the error message suggests training when there is no run.

    Returns:
      `(config, model, meta)`: the config, the model in evaluation mode holding the checkpoint's
      parameters, and the checkpoint's meta (`done`, `best_step`, ...).

    Raises:
      ValueError: if the workdir holds no run or no checkpoint.
    """
    config = load_config(workdir, example)
    if not os.path.isdir(os.path.join(workdir, "checkpoints")):
        raise ValueError(f"workdir {workdir!r} has no checkpoints/ to load")
    check_config(config)
    model, tx = build_model(config)
    model_def, params = split_model(model)
    state = create_train_state(params, tx, config.seed, model_def.carry)
    ckpt = Checkpointer(workdir)
    try:
        if ckpt.latest_step() is None:
            raise ValueError(f"workdir {workdir!r} has no checkpoint yet; let training save one")
        state, _, meta = ckpt.restore(state, params)
    finally:
        ckpt.close()
    nnx.update(model, state.params)
    model.eval()
    return config, model, meta


def load_run(workdir: str) -> tuple[ml_collections.ConfigDict, Any, nnx.Module, dict]:
    """`load_model`, and the run's data splits rebuilt from its config.

    Returns:
      `(config, data, model, meta)`: the config, its data splits (a `seqlstm.task.Task`), the
      model in evaluation mode holding the checkpoint's parameters, and the checkpoint's meta.

    Raises:
      ValueError: if the workdir holds no run or no checkpoint.
    """
    config, model, meta = load_model(workdir)
    return config, get_task(**config.data.to_dict()), model, meta
