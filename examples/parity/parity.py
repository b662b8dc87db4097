"""A task and a model of your own, trained by the stock launcher: does a bit string have even
parity?

Nothing here is part of seqlstm: it is what a researcher writes in their own folder. The config
(`examples/parity/config.py`) names the two by import path, `parity:make_parity_task` and
`parity:ParityLSTM`, and `python -m experiments.train` trains them with every feature it has
(resume, early stopping, TensorBoard, device meshes, fault handling). See the README, "Your own
task and model".
"""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx

import seqlstm
from seqlstm.task import EvalContext, Task


def _bit_strings(num: int, min_length: int, max_length: int, rng: np.random.Generator) -> dict:
    lengths = rng.integers(min_length, max_length + 1, size=num)
    bits = rng.integers(0, 2, size=(num, max_length))
    bits[np.arange(max_length) >= lengths[:, None]] = 0  # right padding
    inputs = (
        np.eye(2, dtype=np.float32)[bits] * (np.arange(max_length) < lengths[:, None])[..., None]
    )
    return {
        "inputs": inputs,  # float32[n, T, 2]: one-hot bits, zeros at padded steps
        "lengths": lengths.astype(np.int32),  # a field of this task's own: valid steps per row
        "targets": (bits.sum(axis=1) % 2).astype(np.int32)[:, None],  # int32[n, 1]: the parity
        "mask": np.ones((num, 1), dtype=bool),  # one prediction per string
    }


def accuracy_by_length(ctx: EvalContext) -> dict:
    """An evaluation hook: accuracy of the strings of each length (runs the model)."""
    model, split = ctx.model, ctx.split
    predict = nnx.jit(lambda m, x, n: m(x, n).argmax(-1)[:, 0])
    right = np.asarray(predict(model, split["inputs"], split["lengths"])) == split["targets"][:, 0]
    lengths = split["lengths"]
    return {
        "accuracy_by_length": {
            int(n): float(right[lengths == n].mean()) for n in np.unique(lengths)
        }
    }


def make_parity_task(
    *, min_length: int = 1, max_length: int = 8, num_train: int = 2000, num_test: int = 500,
    seed: int = 0,
) -> Task:  # fmt: skip
    """Random bit strings of `min_length..max_length` bits; the target is their parity."""
    if not 1 <= min_length <= max_length:
        raise ValueError(f"need 1 <= min_length <= max_length, got {min_length}, {max_length}")
    splits = {
        name: _bit_strings(num, min_length, max_length, np.random.default_rng([seed, i]))
        for i, (name, num) in enumerate(
            (("train", num_train), ("val", num_test), ("test", num_test))
        )
    }
    return Task(splits, hooks=(accuracy_by_length,))


class ParityLSTM(nnx.Module):
    """An LSTM reads the bits (stopping at each row's length); a Dense reads its last output."""

    batch_fields = (
        "inputs",
        "lengths",
    )  # the launcher calls model(batch["inputs"], batch["lengths"])

    def __init__(self, *, hidden_size: int = 16, rngs: nnx.Rngs):
        self.lstm = seqlstm.LSTM(2, hidden_size, rngs=rngs)
        self.out = nnx.Linear(hidden_size, 2, rngs=rngs)

    def __call__(self, x: jax.Array, lengths: jax.Array) -> jax.Array:
        """`x: [B, T, 2]`, `lengths: int[B]` -> logits `[B, 1, 2]` (one prediction per row)."""
        return self.out(self.lstm(x, seq_lengths=lengths))[:, None, :]
