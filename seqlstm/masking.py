"""Variable-length sequences: lengths from masks and padding ids, validated before tracing.

seqlstm pads on the right: row b holds `seq_lengths[b]` valid steps followed by padding. A boolean
mask `[batch, time]` is accepted where it is a prefix mask (True then False); it is turned into
lengths here. Values are checked in Python when they are concrete. Under `jit` they cannot raise, so
rows whose lengths are out of range or whose mask is not a prefix are poisoned with NaN instead of
being silently wrong (see `lengths_and_poison`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from seqlstm.checks import is_concrete


def lengths_from_ids(tokens: jax.Array, pad_id: int = 0) -> jax.Array:
    """Lengths of right-padded token rows: Keras's `mask_zero=True`, as lengths.

    Args:
      tokens: integer ids `[batch, time]`, padding on the right with `pad_id`.
      pad_id: the padding id (Keras's `mask_zero=True` means `pad_id=0`).

    Returns:
      `int32[batch]`, the number of leading non-padding tokens of each row.

    Raises:
      ValueError: if `tokens` is not rank 2, or (when concrete) a row has a non-padding token
        after padding.
    """
    tokens = jnp.asarray(tokens)
    if tokens.ndim != 2:
        raise ValueError(f"tokens must be [batch, time], got shape {tokens.shape}")
    return lengths_from_mask(tokens != pad_id, argname="tokens (non-padding positions)")


def lengths_from_mask(mask: jax.Array, argname: str = "mask") -> jax.Array:
    """Turns a right-padded boolean mask `[batch, time]` into `int32[batch]` lengths.

    Raises:
      ValueError: if the mask is not rank 2 or not boolean, or (when concrete) is not a prefix mask.
    """
    mask = jnp.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"{argname} must be [batch, time], got shape {mask.shape}")
    if mask.dtype != jnp.bool_:
        raise ValueError(f"{argname} must be boolean, got dtype {mask.dtype}")
    lengths = jnp.sum(mask, axis=1, dtype=jnp.int32)
    if is_concrete(mask):
        m = np.asarray(mask)
        prefix = np.arange(m.shape[1])[None, :] < np.asarray(lengths)[:, None]
        bad = np.nonzero((m != prefix).any(axis=1))[0]
        if bad.size:
            raise ValueError(
                f"{argname} must be right-padded (True steps, then only False); rows "
                f"{bad[:5].tolist()} have a valid step after padding. seqlstm pads on the right: "
                "move padding to the end of each row."
            )
    return lengths


def lengths_and_poison(
    batch: int,
    time: int,
    seq_lengths: jax.Array | None,
    mask: jax.Array | None,
) -> tuple[jax.Array | None, jax.Array | None]:
    """Validates `seq_lengths` / `mask` against `[batch, time]` and returns lengths.

    Args:
      batch, time: the input's leading dimensions.
      seq_lengths: optional `int[batch]` number of valid steps per row.
      mask: optional boolean `[batch, time]` right-padded mask.

    Returns:
      `(lengths, bad)`: `lengths` is `int32[batch]` or None; `bad` is None, or, when values were
      traced and could not be checked, a boolean `[batch]` marking rows to fill with NaN.
    """
    if seq_lengths is not None and mask is not None:
        raise ValueError("pass seq_lengths or mask, not both")
    if mask is not None:
        mask = jnp.asarray(mask)
        if mask.shape != (batch, time):
            raise ValueError(
                f"mask must have shape [batch, time] = {(batch, time)}, got {mask.shape}"
            )
        lengths = lengths_from_mask(mask)
        if is_concrete(mask):
            return lengths, None
        prefix = jnp.arange(time)[None, :] < lengths[:, None]
        return lengths, jnp.any(mask != prefix, axis=1)
    if seq_lengths is None:
        return None, None
    seq_lengths = jnp.asarray(seq_lengths)
    if seq_lengths.shape != (batch,):
        raise ValueError(
            f"seq_lengths must have shape [batch] = ({batch},), got {seq_lengths.shape}"
        )
    if not jnp.issubdtype(seq_lengths.dtype, jnp.integer):
        raise ValueError(f"seq_lengths must be integers, got dtype {seq_lengths.dtype}")
    lengths = seq_lengths.astype(jnp.int32)
    if is_concrete(seq_lengths):
        v = np.asarray(seq_lengths)
        if v.size and (v.min() < 0 or v.max() > time):
            raise ValueError(
                f"seq_lengths must lie in [0, time] = [0, {time}], got min {v.min()} max {v.max()}"
            )
        return lengths, None
    return lengths, (lengths < 0) | (lengths > time)
