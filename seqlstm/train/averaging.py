"""Checkpoint averaging: the mean of a run's parameters over its last checkpoints.

Averaging the parameters of the last few checkpoints of one run (Vaswani et al. 2017; Popel &
Bojar 2018) smooths out the noise of the last updates at no training cost. A run keeps only
`config.train.max_to_keep` checkpoints, so to average the last `k` it must keep `k` or more, and
save them close enough together (`config.train.checkpoint_every_steps`).

`write_averaged(workdir, out, last=k)` writes the averaged model as a run of its own (the
config, one checkpoint at the last step, its meta naming the averaged steps), which everything that
loads a workdir (`seqlstm.train.restore.load_model`, `experiments.decode`, `experiments.pronounce`,
the studies) reads as any other run; `experiments/average_checkpoints.py` is its launcher.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from seqlstm.checks import check_int
from seqlstm.train.checkpoint import Checkpointer
from seqlstm.train.restore import load_config, state_template
from seqlstm.train.state import TrainState
from seqlstm.train.workdir import write_json


def average_trees(trees: Sequence[Any]) -> Any:
    """The leafwise mean of trees of one structure, accumulated in float32, in each leaf's dtype.

    Raises:
      ValueError: for no trees.
    """
    if not trees:
        raise ValueError("average_trees needs at least one tree")

    def mean(*leaves):
        total = sum(jnp.asarray(x, jnp.float32) for x in leaves)
        return (total / len(leaves)).astype(jnp.asarray(leaves[0]).dtype)

    return jax.tree.map(mean, *trees)


def averaged_state(
    workdir: str, last: int, *, trust_run_code: bool = False
) -> tuple[ml_collections.ConfigDict, TrainState, dict]:
    """The run's latest training state with its parameters replaced by the mean over its last
    `last` checkpoints.

    Args:
      workdir: a directory written by `train_and_evaluate`.
      last: how many of the newest checkpoints to average, at least 1.
      trust_run_code: allow import paths in the run's config (see `restore.load_config`).

    Returns:
      `(config, state, meta)`: the run's config, the state (step, optimizer state and key of the
      latest checkpoint), and the latest checkpoint's meta with `averaged_steps` added.

    Raises:
      ValueError: if the workdir holds no run, or fewer than `last` checkpoints (naming how many
        it kept and `config.train.max_to_keep`).
    """
    config, _, state, meta = _averaged(workdir, last, trust_run_code)
    return config, state, meta


def _averaged(workdir: str, last: int, trust_run_code: bool):
    """`averaged_state`, and the freshly built model its state fits: `(config, model, state,
    meta)`."""
    check_int("last", last, 1)
    config = load_config(workdir, trust_run_code=trust_run_code)
    model, params, template = state_template(config)
    ckpt = Checkpointer(workdir)
    try:
        steps = sorted(ckpt.manager.all_steps())
        if len(steps) < last:
            raise ValueError(
                f"workdir {workdir!r} keeps {len(steps)} checkpoints (steps {steps}), fewer than "
                f"last={last}; train with --config.train.max_to_keep={last} or more to average "
                "that many"
            )
        states, meta = [], {}
        for step in steps[-last:]:
            state, _, meta = ckpt.restore(template, params, step=step)
            states.append(state)
    finally:
        ckpt.close()
    mean = average_trees([s.params for s in states])
    meta = {**meta, "averaged_steps": [int(s) for s in steps[-last:]]}
    return config, model, states[-1]._replace(params=mean), meta


def average_checkpoints(
    workdir: str, last: int, *, trust_run_code: bool = False
) -> tuple[ml_collections.ConfigDict, nnx.Module, dict]:
    """`load_model` with the mean of the last `last` checkpoints' parameters (`averaged_state`).

    Returns:
      `(config, model, meta)`: the model in evaluation mode holding the averaged parameters.
    """
    config, model, state, meta = _averaged(workdir, last, trust_run_code)
    nnx.update(model, state.params)
    model.eval()
    return config, model, meta


def write_averaged(workdir: str, out: str, last: int, *, trust_run_code: bool = False) -> dict:
    """Writes the averaged model of `workdir`'s last `last` checkpoints as the run `out`: its
    `config.json` and one checkpoint at the latest step.

    Returns:
      The meta saved with it (the latest checkpoint's, with `averaged_steps` and
      `averaged_from`).

    Raises:
      ValueError: as `averaged_state`, or if `out` already holds files.
    """
    if os.path.isdir(out) and os.listdir(out):
        raise ValueError(f"out {out!r} already holds files; name a new directory")
    config, state, meta = averaged_state(workdir, last, trust_run_code=trust_run_code)
    meta["averaged_from"] = os.path.abspath(workdir)
    # Written beside `out` and renamed when complete: a crash midway never leaves a run whose
    # config.json promises a checkpoint it lacks.
    partial = os.path.normpath(out) + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    write_json(os.path.join(partial, "config.json"), json.loads(config.to_json_best_effort()), True)
    ckpt = Checkpointer(partial, max_to_keep=1)
    try:
        ckpt.save(int(state.step), state, state.params, meta)
    finally:
        ckpt.close()
    if os.path.isdir(out):
        os.rmdir(out)  # empty, checked above
    os.rename(partial, out)
    return meta
