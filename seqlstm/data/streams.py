"""Consecutive windows of documents as parallel streams, for models that carry state across batches.

Truncated backpropagation through time reads each document as consecutive, non-overlapping
windows and carries the model's state from one window to the next (`seqlstm.task.Carry`). A
split of such windows (`document_windows`) holds, besides `inputs`, `targets` and `mask`, a
field `reset: bool[n]`, True at the first window of each document. `STREAM_ORDER` arranges one
epoch into `batch_size` parallel streams:

    documents, in an order fixed by (seed, epoch):   d3 d0 d5 d1 d4 d2 ...
    their windows, one after the other:              w w w | w | w w w w | w w | ...
    cut into batch_size streams of equal length:     row 0: the first steps windows, row 1: ...
    batch i:                                         window i of every row

so row r of batch i + 1 continues row r of batch i, and `reset` is True where a row's window
starts a document, and on every row of an epoch's first batch (a stream's first window follows
nothing). The last `n % batch_size` windows of an epoch's order are left out; which ones changes
with the epoch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from seqlstm.checks import check_int, check_positive
from seqlstm.data.batching import take
from seqlstm.task import Split, TrainOrder, split_size


def document_windows(
    ids: np.ndarray, starts: np.ndarray, context: int, *, name: str = "split"
) -> dict[str, np.ndarray]:
    """Each document of `ids` cut into consecutive windows of `context` ids, targets shifted by one.

    Document d (ids `starts[d]` up to the next start) of `m` ids gives `ceil(m / context)`
    windows; window k reads inputs `k * context ...` and the ids one later as targets, the steps
    past the document's last target masked out (their ids are zeros, or the next document's
    first id as a masked last target). A window never crosses a document.

    Args:
      ids: `int[length]`, the split's ids.
      starts: `int[documents]`, ascending offsets of the documents in `ids`, from 0.
      context: ids per window.
      name: the split's name, for the error.

    Returns:
      `{"inputs": int[n, context], "targets": int[n, context], "mask": bool[n, context],
      "reset": bool[n]}`; `inputs` and `targets` are read-only views of one padded copy of `ids`.

    Raises:
      ValueError: for a bad `context` or `starts`, or no document of at least 2 ids.
    """
    check_positive("data.context", context)
    starts = np.asarray(starts, np.int64)
    ends = np.append(starts[1:], ids.shape[0])
    if starts.ndim != 1 or not starts.size or starts[0] != 0 or np.any(ends <= starts):
        raise ValueError(
            f"document starts of the {name} split must ascend strictly from 0 within its "
            f"{ids.shape[0]} ids, got {starts[:8].tolist()}..."
        )
    lengths = ends - starts
    keep = lengths >= 2  # a document of one id has nothing to predict
    if not keep.any():
        raise ValueError(f"the {name} split has no document of at least 2 characters")
    starts, lengths = starts[keep], lengths[keep]
    per_doc = -(-lengths // context)  # ceil(m / context): the m - 1 targets all fit
    offsets = np.concatenate([[0], np.cumsum(per_doc * context)[:-1]])
    padded = np.zeros(int(per_doc.sum()) * context + 1, ids.dtype)
    for start, length, offset in zip(starts, lengths, offsets):
        padded[offset : offset + length] = ids[start : start + length]
    padded.setflags(write=False)
    view = np.lib.stride_tricks.sliding_window_view(padded, context + 1)[::context]
    doc = np.repeat(np.arange(len(starts)), per_doc)
    first = np.concatenate([[0], np.cumsum(per_doc)[:-1]])
    k = np.arange(view.shape[0]) - first[doc]  # window index within its document
    target_pos = k[:, None] * context + np.arange(1, context + 1)[None, :]
    return {
        "inputs": view[:, :context],
        "targets": view[:, 1:],
        "mask": target_pos < lengths[doc][:, None],
        "reset": k == 0,
    }


def stream_grid(split: Split, batch_size: int, seed: int, epoch: int) -> np.ndarray:
    """`int[batch_size, steps]`: the window each row reads at each step of `epoch` (module
    docstring); a function of `(seed, epoch)` only.

    Raises:
      ValueError: if the split has no `reset: bool[n]` starting at True, or fewer windows than
        `batch_size`.
    """
    check_positive("batch_size", batch_size)
    reset = np.asarray(split.get("reset", np.zeros(0, bool)))
    if reset.ndim != 1 or reset.dtype != bool or not reset.size or not reset[0]:
        raise ValueError(
            "stream batches need a split field reset: bool[n], True at the first window of "
            f"each document (seqlstm.data.streams.document_windows); got {sorted(split)}"
        )
    n = reset.shape[0]
    if n < batch_size:
        raise ValueError(f"batch_size={batch_size} streams need at least as many windows, got {n}")
    starts = np.flatnonzero(reset)
    lengths = np.diff(np.append(starts, n))
    perm = np.random.default_rng([seed, epoch]).permutation(starts.size)
    # The windows of the permuted documents, one after the other, without a Python loop.
    order_lengths = lengths[perm]
    shift = starts[perm] - np.concatenate([[0], np.cumsum(order_lengths)[:-1]])
    order = np.arange(n) + np.repeat(shift, order_lengths)
    steps = n // batch_size
    return order[: steps * batch_size].reshape(batch_size, steps)


def stream_steps_per_epoch(split: Split, batch_size: int) -> int:
    """Batches of a stream epoch: `n // batch_size` (module docstring)."""
    check_positive("batch_size", batch_size)
    return split_size(split) // batch_size


def stream_batches(
    split: Split, batch_size: int, *, seed: int, epoch: int, start: int = 0
) -> Iterator[tuple[int, Split]]:
    """The batches of one stream epoch from batch `start` on: `(index, batch)` (module
    docstring); a batch's `reset` is True on every row at index 0."""
    check_int("start", start, 0)
    grid = stream_grid(split, batch_size, seed, epoch)
    for i in range(start, grid.shape[1]):
        batch = take(split, grid[:, i], batch_size)
        if i == 0:
            batch["reset"] = np.ones(batch_size, bool)
        yield i, batch


STREAM_ORDER = TrainOrder(stream_batches, stream_steps_per_epoch)
