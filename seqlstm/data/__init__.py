"""Datasets as numpy arrays: synthetic tasks and deterministic, resumable batching."""

from seqlstm.data.synthetic import (
    TASKS,
    epoch_permutation,
    eval_batches,
    get_task,
    make_reverse_task,
    one_hot,
    reversed_sequences,
    split_size,
    steps_per_epoch,
    take,
    train_batches,
)

__all__ = [
    "epoch_permutation",
    "TASKS",
    "eval_batches",
    "get_task",
    "make_reverse_task",
    "one_hot",
    "reversed_sequences",
    "split_size",
    "steps_per_epoch",
    "take",
    "train_batches",
]
