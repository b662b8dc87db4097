"""Datasets as numpy arrays: synthetic tasks, text corpora, deterministic resumable batching."""

from seqlstm.data.batching import (
    epoch_permutation,
    eval_batches,
    steps_per_epoch,
    take,
    train_batches,
)
from seqlstm.data.bucketing import bucket_ids, bucketed_batches, bucketed_steps_per_epoch
from seqlstm.data.registry import TASKS, get_task
from seqlstm.data.seq2seq_tasks import SEQ2SEQ_TASKS, make_seq2seq_task, vocab_sizes
from seqlstm.data.streams import STREAM_ORDER, document_windows, stream_batches
from seqlstm.data.synthetic import make_reverse_task, one_hot, reversed_sequences
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
from seqlstm.task import split_size

__all__ = [
    "SEQ2SEQ_TASKS",
    "STREAM_ORDER",
    "TASKS",
    "Corpus",
    "Vocabulary",
    "bucket_ids",
    "bucketed_batches",
    "bucketed_steps_per_epoch",
    "document_windows",
    "epoch_permutation",
    "eval_batches",
    "get_task",
    "list_documents",
    "load_corpus",
    "make_reverse_task",
    "make_seq2seq_task",
    "make_text_task",
    "one_hot",
    "reversed_sequences",
    "split_size",
    "stdlib_dir",
    "steps_per_epoch",
    "stream_batches",
    "take",
    "task_vocabulary",
    "train_batches",
    "vocab_sizes",
    "windows",
]
