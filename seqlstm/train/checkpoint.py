"""Checkpoints (orbax) and the workdir's identity (`config.json`).

A checkpoint at step s holds two items:

  state  (orbax StandardSave): the `TrainState` (params, optimizer state, step, rng) and the
         early-stopping parameters `best_params`.
  meta   (JSON): the data position (`epoch`, `batch` index within that epoch's permutation), the
         early-stopping counters, the metric sums since the last log, and `done`.

Saving is synchronous, and a step that is already saved is never written again. orbax writes a
checkpoint under a temporary name and renames it once complete, so a save killed midway is never
listed; its leftovers are removed when the next run opens the directory.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp

# Keys that may change between a run and its resumption: they steer how long or how verbosely
# the run goes on, never what it computes up to the step it resumes from.
RESUMABLE_KEYS = (
    "train.num_epochs",
    "train.num_steps",
    "train.stop_after_steps",
    "train.log_every_steps",
    "train.checkpoint_every_steps",
    "train.checkpoint_every_epochs",
    "train.max_to_keep",
    "train.progress_bar",
    # How the steps are spread over devices changes their results by float rounding only, so a
    # run preempted on 8 devices may resume on 4; the non-finite policy matters only once a loss
    # is NaN, and switching to "skip" is how such a run is resumed.
    "train.on_nan",
    "parallel.mesh_shape",
    "parallel.axis_names",
    "parallel.data_axis",
    "parallel.param_axis",
    "parallel.min_param_size",
)


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def config_diff(old: dict, new: dict) -> dict[str, tuple[Any, Any]]:
    """`{dotted key: (old, new)}` for every key whose value differs or exists in one only."""
    a, b = _flatten(old), _flatten(new)
    missing = object()
    diff = {}
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k, missing), b.get(k, missing)
        if va != vb:
            diff[k] = (None if va is missing else va, None if vb is missing else vb)
    return diff


def prepare_workdir(config: ml_collections.ConfigDict, workdir: str, write: bool = True) -> bool:
    """Checks that `workdir` is empty or holds a compatible run, then writes `config.json`.

    Args:
      config: the run's config.
      workdir: the run's directory (created if missing).
      write: False only checks (every process of a multi-process run but the first).

    Returns:
      True when the workdir already holds this run (so training resumes), False when it is new.

    Raises:
      ValueError: if the workdir holds checkpoints without a `config.json`, or a run whose config
        differs in a key outside `RESUMABLE_KEYS`. Nothing is written in that case.
    """
    path = os.path.join(workdir, "config.json")
    ckpt_dir = os.path.join(workdir, "checkpoints")
    new = json.loads(config.to_json_best_effort())
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        diff = {k: v for k, v in config_diff(old, new).items() if k not in RESUMABLE_KEYS}
        if diff:
            lines = "\n".join(
                f"  {k}: {a!r} -> {b!r}" for k, a, b in ((k, *v) for k, v in diff.items())
            )
            raise ValueError(
                f"workdir {workdir!r} holds a run with a different config; refusing to resume it "
                f"or overwrite its checkpoints. Differences (workdir -> now):\n{lines}\n"
                "Use a new --workdir, or the workdir's config."
            )
        resuming = True
    elif os.path.isdir(ckpt_dir) and os.listdir(ckpt_dir):
        raise ValueError(
            f"workdir {workdir!r} has checkpoints but no config.json, so its run cannot be "
            "identified; refusing to touch it. Use a new --workdir."
        )
    else:
        resuming = False
    if not write:
        return resuming
    os.makedirs(workdir, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(new, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
    return resuming


class Checkpointer:
    """Saves and restores (`TrainState`, best params, meta) in `workdir/checkpoints/`.

    Args:
      workdir: the run's directory.
      max_to_keep: number of most recent checkpoints kept.
    """

    def __init__(self, workdir: str, max_to_keep: int = 3):
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            enable_async_checkpointing=False,
            create=True,
            cleanup_tmp_directories=True,
        )
        directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
        self.manager = ocp.CheckpointManager(directory, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state, best_params, meta: dict) -> bool:
        """Saves at `step` unless that step is already saved; returns whether it wrote."""
        if step in self.manager.all_steps():
            return False
        tree = {"train": state._asdict(), "best_params": best_params}
        self.manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(meta)
            ),
        )
        self.manager.wait_until_finished()
        return True

    def restore(
        self, state_like, best_params_like, step: int | None = None
    ) -> tuple[Any, Any, dict]:
        """Restores checkpoint `step` (default: the latest) into the structure, and the
        shardings, of the given templates.

        Returns:
          `(state, best_params, meta)`; `state` has the type of `state_like`.
        """
        step = self.manager.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError("no checkpoint to restore")
        tree = {"train": state_like._asdict(), "best_params": best_params_like}
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)
        out = self.manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
            ),
        )
        return type(state_like)(**out.state["train"]), out.state["best_params"], dict(out.meta)

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
