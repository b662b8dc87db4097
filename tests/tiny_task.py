"""A task and a model of a user's own, small enough to build in milliseconds, with knobs that
break the batch contract the way issue 23 found runs breaking it silently.

Configs name them by import path (`tiny_task:make_task`, `tiny_task:TinyModel`), as a user's
config names their own code; tests/ is on the path while the tests run.
"""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from configs.common import base_config
from seqlstm.task import Task


def make_task(
    *, t: int = 1, features: int = 3, classes: int = 2, num: int = 8, target_shift: int = 0,
    nan_in: str = "", all_false_train: bool = False, seed: int = 0,
) -> Task:  # fmt: skip
    """Random features `[num, t, features]`, random targets in `[0, classes)` plus
    `target_shift`; `nan_in` names a split whose first input is NaN; `all_false_train` masks out
    every training step."""
    rng = np.random.default_rng(seed)

    def split(name: str, n: int) -> dict:
        inputs = rng.normal(size=(n, t, features)).astype(np.float32)
        if name == nan_in:
            inputs[0, 0, 0] = np.nan
        targets = rng.integers(0, classes, size=(n, t)) + target_shift
        mask = np.full((n, t), not (all_false_train and name == "train"))
        return {"inputs": inputs, "targets": targets.astype(np.int32), "mask": mask}

    return Task({"train": split("train", num), "val": split("val", 4), "test": split("test", 4)})


class TinyModel(nnx.Module):
    """A Dense layer on each step's features: logits `[B, t, classes]`, or, to break the contract,
    `[B, out_t, classes]` (`out_t > 0`), integer logits, or a tuple."""

    def __init__(
        self, *, features: int = 3, classes: int = 2, out_t: int = 0, int_logits: bool = False,
        as_tuple: bool = False, dtype: str = "float32", rngs: nnx.Rngs,
    ):  # fmt: skip
        self.dense = nnx.Linear(features, classes, dtype=dtype, param_dtype=dtype, rngs=rngs)
        self.out_t, self.int_logits, self.as_tuple = out_t, int_logits, as_tuple

    def __call__(self, x: jnp.ndarray):
        logits = self.dense(x)
        if self.out_t:
            b, _, c = logits.shape
            logits = jnp.broadcast_to(logits[:, :1], (b, self.out_t, c))
        if self.int_logits:
            logits = logits.astype(jnp.int32)
        return (logits, logits) if self.as_tuple else logits


def tiny_config(**sections) -> ml_collections.ConfigDict:
    """A config of the tiny task and model: 2 epochs of 2 steps. `sections` override fields,
    e.g. `tiny_config(data=dict(t=8), model=dict(out_t=1))`."""
    config = base_config()
    config.data.name = "tiny_task:make_task"
    config.model.name = "tiny_task:TinyModel"
    config.train.batch_size = config.eval.batch_size = 4
    config.train.num_epochs = 2
    config.train.progress_bar = False
    for section, fields in sections.items():
        for key, value in fields.items():
            config[section][key] = value
    return config
