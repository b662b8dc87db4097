"""Generic input machinery: deterministic resumable batching, length bucketing, parallel streams,
reading text corpora. The built-in tasks made of it live in `seqlstm.tasks`."""

from importlib import import_module
from typing import Any

from seqlstm.data.batching import (
    epoch_permutation,
    eval_batches,
    steps_per_epoch,
    take,
    train_batches,
)
from seqlstm.data.bucketing import bucket_ids, bucketed_batches, bucketed_steps_per_epoch
from seqlstm.data.corpus import Corpus, Vocabulary, list_documents, load_corpus, stdlib_dir, windows
from seqlstm.data.streams import STREAM_ORDER, document_windows, stream_batches
from seqlstm.task import split_size

# Kept for one release: names that moved to `seqlstm.tasks` (imported on first use, so that this
# package imports nothing of the tasks built on it).
_MOVED = {
    "TASKS": "seqlstm.tasks.registry",
    "get_task": "seqlstm.tasks.registry",
    "SEQ2SEQ_TASKS": "seqlstm.tasks.seq2seq",
    "make_seq2seq_task": "seqlstm.tasks.seq2seq",
    "vocab_sizes": "seqlstm.tasks.seq2seq",
    "make_reverse_task": "seqlstm.tasks.reverse",
    "one_hot": "seqlstm.tasks.reverse",
    "reversed_sequences": "seqlstm.tasks.reverse",
    "make_text_task": "seqlstm.tasks.text",
    "task_vocabulary": "seqlstm.tasks.text",
}


def __getattr__(name: str) -> Any:
    """The names of `_MOVED`, from their new homes in `seqlstm.tasks`."""
    if name in _MOVED:
        return getattr(import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "STREAM_ORDER",
    "Corpus",
    "Vocabulary",
    "bucket_ids",
    "bucketed_batches",
    "bucketed_steps_per_epoch",
    "document_windows",
    "epoch_permutation",
    "eval_batches",
    "list_documents",
    "load_corpus",
    "split_size",
    "stdlib_dir",
    "steps_per_epoch",
    "stream_batches",
    "take",
    "train_batches",
    "windows",
]
