"""Datasets as numpy arrays: synthetic tasks, text corpora, deterministic resumable batching."""

from seqlstm.data.bucketing import bucket_ids, bucketed_batches, bucketed_steps_per_epoch
from seqlstm.data.seq2seq_tasks import SEQ2SEQ_TASKS, make_seq2seq_task, vocab_sizes
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
from seqlstm.data.text import (
    Corpus,
    Vocabulary,
    list_documents,
    load_corpus,
    make_text_task,
    stdlib_dir,
    task_vocabulary,
    windows,
)

# Text splits follow the synthetic splits' contract (dicts of arrays with a leading example axis,
# here zero-copy strided views), so `get_task`, batching and the training loop serve both.
TASKS["text"] = make_text_task
TASKS["seq2seq"] = make_seq2seq_task

__all__ = [
    "SEQ2SEQ_TASKS",
    "bucket_ids",
    "bucketed_batches",
    "bucketed_steps_per_epoch",
    "make_seq2seq_task",
    "vocab_sizes",
    "Corpus",
    "Vocabulary",
    "list_documents",
    "load_corpus",
    "make_text_task",
    "stdlib_dir",
    "task_vocabulary",
    "windows",
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
