"""Loading a trained model back from its workdir (`config.json` + the latest checkpoint).

A saved run is data, never code: its `config.json` may come from anyone (a run shared as a
folder), so reading it resolves registered model and task names only. An import path
(`"package.module:attribute"`) in `model.name` or `data.name` would import that module, running
whatever it holds, so it needs the caller's opt-in, `trust_run_code=True` (the `--trust_run_code`
flag of the commands that load runs), as Hugging Face's `trust_remote_code`. The training launcher
is not concerned: its config is the user's own Python file.
"""

from __future__ import annotations

import os
from typing import Any

import ml_collections
from flax import nnx

from seqlstm.models.registry import MODELS
from seqlstm.registry import Registry, check_kwargs
from seqlstm.tasks.registry import TASKS, get_task
from seqlstm.train.checkpoint import Checkpointer
from seqlstm.train.run import build_model, check_config
from seqlstm.train.state import create_train_state, split_model
from seqlstm.train.workdir import read_json


def load_config(
    workdir: str, example: str = "configs/chars.py", *, trust_run_code: bool = False
) -> ml_collections.ConfigDict:
    """The config a workdir's run was trained with, its model and task checked (nothing built).

    Args:
      workdir: a directory written by `train_and_evaluate`.
      example: the config the error message suggests training when there is no run.
      trust_run_code: allow `model.name` and `data.name` to be import paths, whose modules are
        imported (running their code). Only for runs whose author you trust.

    Raises:
      ValueError: if `workdir` holds no run, its `config.json` is not valid JSON (naming it), or
        its model or task is unknown, an import path without `trust_run_code`, or given
        arguments it does not take (named, with those it takes).
    """
    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        raise ValueError(
            f"workdir {workdir!r} holds no run (no config.json); train one first, e.g. "
            f"python -m experiments.train --config={example} --workdir={workdir}"
        )
    config = ml_collections.ConfigDict(read_json(path))
    for section, registry in (("model", MODELS), ("data", TASKS)):
        check_run_entry(config, section, registry, path, trust_run_code)
    return config


def check_run_entry(
    config: ml_collections.ConfigDict,
    section: str,
    registry: Registry,
    path: str,
    trust_run_code: bool,
) -> None:
    """Checks that `config[section]` names an entry of `registry` and arguments it takes,
    importing nothing unless `trust_run_code`.

    Raises:
      ValueError: naming `path` and the key: a missing or unknown name, an import path without
        `trust_run_code` (saying what would be imported and how to allow it), or an argument the
        entry does not take.
    """
    kwargs = config.get(section)
    kwargs = kwargs.to_dict() if isinstance(kwargs, ml_collections.ConfigDict) else {}
    name = kwargs.pop("name", None)
    if isinstance(name, str) and ":" in name and not trust_run_code:
        module = name.partition(":")[0]
        raise ValueError(
            f"{path} names code: {registry.key}={name!r} would import module {module!r}, "
            "running whatever it holds; refusing to import it from a saved run. If you trust "
            "the run's author, pass --trust_run_code (trust_run_code=True in Python)"
        )
    try:
        entry = registry.resolve(name)
        check_kwargs(entry, kwargs, f"{registry.kind} {name!r}")
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def state_template(config: ml_collections.ConfigDict) -> tuple[nnx.Module, Any, Any]:
    """`(model, params, state)`: a run's model built fresh from its config, its parameters, and
    a training state of the checkpoints' structure, for `Checkpointer.restore` to fill."""
    check_config(config)
    model, tx = build_model(config)
    model_def, params = split_model(model)
    return model, params, create_train_state(params, tx, config.seed, model_def.carry)


def load_model(
    workdir: str, example: str = "configs/chars.py", *, trust_run_code: bool = False
) -> tuple[ml_collections.ConfigDict, nnx.Module, dict]:
    """Rebuilds a workdir's model, without its data, and loads its latest checkpoint's parameters.

    The parameters are the training state's: after a finished run with early stopping, those of
    the best validation loss (the loop restores them before its final checkpoint).

    Args:
      workdir: a directory written by `train_and_evaluate`.
      example: the config the error message suggests training when there is no run.
      trust_run_code: allow import paths in the run's config (see `load_config`).

    Returns:
      `(config, model, meta)`: the config, the model in evaluation mode holding the checkpoint's
      parameters, and the checkpoint's meta (`done`, `best_step`, ...).

    Raises:
      ValueError: if the workdir holds no run or no checkpoint, or a config `load_config`
        refuses.
    """
    config = load_config(workdir, example, trust_run_code=trust_run_code)
    if not os.path.isdir(os.path.join(workdir, "checkpoints")):
        raise ValueError(f"workdir {workdir!r} has no checkpoints/ to load")
    model, params, state = state_template(config)
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


def load_run(
    workdir: str, *, trust_run_code: bool = False
) -> tuple[ml_collections.ConfigDict, Any, nnx.Module, dict]:
    """`load_model`, and the run's data splits rebuilt from its config.

    Args:
      workdir: a directory written by `train_and_evaluate`.
      trust_run_code: allow import paths in the run's config (see `load_config`).

    Returns:
      `(config, data, model, meta)`: the config, its data splits (a `seqlstm.task.Task`), the
      model in evaluation mode holding the checkpoint's parameters, and the checkpoint's meta.

    Raises:
      ValueError: if the workdir holds no run or no checkpoint, or a config `load_config`
        refuses.
    """
    config, model, meta = load_model(workdir, trust_run_code=trust_run_code)
    return config, get_task(**config.data.to_dict()), model, meta
