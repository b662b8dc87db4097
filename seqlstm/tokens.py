"""Token ids for sequence-to-sequence models: reserved ids, padding into batches, validation.

Every vocabulary reserves the first three ids; data tokens start at `FIRST_ID`:

  PAD = 0   padding after a sequence's end (never predicted, never attended to)
  BOS = 1   the decoder's first input ("beginning of sequence")
  EOS = 2   the last target token: the decoder learns to stop by predicting it

A target `y_1..y_m` is trained as `target_in = [BOS, y_1..y_m]`, `targets = [y_1..y_m, EOS]`, and
the loss counts `m + 1` steps (EOS included). Batches are right-padded with PAD.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PAD, BOS, EOS = 0, 1, 2
FIRST_ID = 3
RESERVED = ("<pad>", "<bos>", "<eos>")


def check_vocab_size(vocab_size, argname: str = "vocab_size") -> None:
    """Raises ValueError unless `vocab_size` is an int above the reserved ids."""
    if not isinstance(vocab_size, (int, np.integer)) or isinstance(vocab_size, bool):
        raise ValueError(f"{argname} must be an int, got {vocab_size!r}")
    if vocab_size <= FIRST_ID:
        raise ValueError(
            f"{argname} must exceed the {FIRST_ID} reserved ids (PAD, BOS, EOS), got {vocab_size}"
        )


def check_ids(ids: np.ndarray, vocab_size: int, argname: str = "tokens") -> None:
    """Raises ValueError when an id of `ids` lies outside `[0, vocab_size)`, naming the first."""
    ids = np.asarray(ids)
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"{argname} must hold integer ids, got dtype {ids.dtype}")
    bad = np.argwhere((ids < 0) | (ids >= vocab_size))
    if bad.size:
        where = tuple(int(i) for i in bad[0])
        raise ValueError(
            f"{argname} holds id {int(ids[where])} at index {where}, outside the vocabulary "
            f"[0, {vocab_size}); {len(bad)} such ids in all"
        )


def pad_batch(
    sequences: Sequence[Sequence[int]],
    max_len: int,
    *,
    vocab_size: int,
    bos: bool = False,
    eos: bool = False,
    argname: str = "sequences",
) -> tuple[np.ndarray, np.ndarray]:
    """Right-pads token sequences into one array, optionally adding BOS and EOS.

    Args:
      sequences: data-token sequences (ids in `[FIRST_ID, vocab_size)`); empty ones are allowed.
      max_len: time steps of the result; a sequence (with BOS/EOS added) longer than this is an
        error, never silently cut.
      vocab_size: ids must be below it.
      bos, eos: prepend BOS / append EOS.
      argname: named in error messages.

    Returns:
      `(ids int32[n, max_len], lengths int32[n])`, lengths counting BOS/EOS.

    Raises:
      ValueError: for a sequence longer than `max_len`, an id outside `[FIRST_ID, vocab_size)`,
        or a non-positive `max_len`.
    """
    if not isinstance(max_len, (int, np.integer)) or max_len <= 0:
        raise ValueError(f"max_len must be a positive int, got {max_len!r}")
    extra = int(bos) + int(eos)
    out = np.full((len(sequences), max_len), PAD, np.int32)
    lengths = np.zeros((len(sequences),), np.int32)
    for i, seq in enumerate(sequences):
        seq = np.asarray(seq, dtype=np.int64).reshape(-1)
        if len(seq) + extra > max_len:
            raise ValueError(
                f"{argname}[{i}] has {len(seq)} tokens{' plus BOS/EOS' if extra else ''}, more "
                f"than the maximum length {max_len}"
            )
        if seq.size and (seq.min() < FIRST_ID or seq.max() >= vocab_size):
            bad = seq[(seq < FIRST_ID) | (seq >= vocab_size)][0]
            raise ValueError(
                f"{argname}[{i}] holds id {int(bad)}, outside the data ids "
                f"[{FIRST_ID}, {vocab_size}) (0, 1, 2 are PAD, BOS, EOS)"
            )
        row = ([BOS] if bos else []) + seq.tolist() + ([EOS] if eos else [])
        out[i, : len(row)] = row
        lengths[i] = len(row)
    return out, lengths


def seq2seq_arrays(
    sources: Sequence[Sequence[int]],
    targets: Sequence[Sequence[int]],
    *,
    max_source_len: int,
    max_target_len: int,
    source_vocab_size: int,
    target_vocab_size: int,
) -> dict[str, np.ndarray]:
    """Pads source/target pairs into the arrays an `EncoderDecoder` trains on.

    Args:
      sources, targets: data-token sequences, pairwise.
      max_source_len: time steps S of `source`.
      max_target_len: time steps T of `target_in` / `targets` (a target of m tokens needs
        `m + 1 <= T`: BOS in front of the input, EOS after the output).

    Returns:
      `source int32[n, S]`, `source_lengths int32[n]`, `target_in int32[n, T]` (BOS, y),
      `targets int32[n, T]` (y, EOS), `mask bool[n, T]` (the `m + 1` steps that count).
    """
    if len(sources) != len(targets):
        raise ValueError(f"got {len(sources)} sources but {len(targets)} targets")
    source, source_lengths = pad_batch(
        sources, max_source_len, vocab_size=source_vocab_size, argname="sources"
    )
    targets_out, target_lengths = pad_batch(
        targets, max_target_len, vocab_size=target_vocab_size, eos=True, argname="targets"
    )
    target_in = np.full_like(targets_out, PAD)
    target_in[:, 0] = BOS
    target_in[:, 1:] = np.where(targets_out[:, :-1] == EOS, PAD, targets_out[:, :-1])
    mask = np.arange(max_target_len)[None, :] < target_lengths[:, None]
    return {
        "source": source,
        "source_lengths": source_lengths,
        "target_in": target_in,
        "targets": targets_out,
        "mask": mask,
    }


def strip(ids: Sequence[int]) -> list[int]:
    """The data tokens of a decoded row: everything before the first EOS, without PAD/BOS."""
    out = []
    for i in np.asarray(ids).tolist():
        if i == EOS:
            break
        if i >= FIRST_ID:
            out.append(int(i))
    return out
