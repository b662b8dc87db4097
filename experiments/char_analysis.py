"""What each branch of a two-branch character model contributes (used by `char_study`).

Two measurements on the validation windows:

* **Shuffled branch input.** The loss when one branch reads another window (the next row of the
  batch) while the other branch reads the true one. If the loss barely moves when the short
  branch is shuffled, the model does not use it; if it jumps, the model depends on it.
* **Context categories.** Each prediction is labelled by where a copy of its `k`-gram (the
  `k - 1` characters before the target, then the target) occurs in the window:
  `local` (inside the last `short_context` characters, which both branches see), `long` (only
  earlier in the window, which only the long branch sees), or `novel` (nowhere). Accuracy and
  bits per character per category show which model exploits which context.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

CATEGORIES = ("local", "long", "novel")


def context_categories(
    inputs: np.ndarray, targets: np.ndarray, short_context: int, k: int = 8
) -> np.ndarray:
    """Labels each window's prediction 0 (`local`), 1 (`long`) or 2 (`novel`), see module doc.

    Args:
      inputs: `int[n, N]` windows; targets: `int[n, 1]` the next ids.
      short_context: M, the length of the short branch's slice at the end of the window.
      k: length of the k-gram (target included) looked up in the window.

    Returns:
      `int8[n]` category ids, indexing `CATEGORIES`.
    """
    inputs = np.asarray(inputs, np.int64)
    n, width = inputs.shape
    base = int(inputs.max(initial=0)) + 1
    base = max(base, int(np.asarray(targets).max(initial=0)) + 1)
    if k * math.log2(base) >= 62:
        raise ValueError(f"k={k} is too long to hash exactly with {base} symbols")
    grams = np.zeros((n, width - k + 1), np.int64)
    for j in range(k):
        grams = grams * base + inputs[:, j : width - k + 1 + j]
    query = np.zeros(n, np.int64)
    for j in range(width - k + 1, width):
        query = query * base + inputs[:, j]
    query = query * base + np.asarray(targets, np.int64)[:, 0]
    hit = grams == query[:, None]
    first_local = width - short_context  # grams starting here lie inside the short slice
    local = hit[:, first_local:].any(axis=1)
    far = hit[:, :first_local].any(axis=1)
    return np.where(local, 0, np.where(far, 1, 2)).astype(np.int8)


def per_example(model: nnx.Module, split: dict, batch_size: int = 256) -> dict[str, np.ndarray]:
    """Per-window cross-entropy (nats) and correctness on a split, normally and, for a model
    with both branches, with the long or the short branch reading the next row's window.

    Returns:
      `{"<condition>_ce": float[n], "<condition>_correct": bool[n]}` for the conditions
      `normal` (and `long_shuffled`, `short_shuffled` when both branches are on).
    """
    graphdef, state = nnx.split(model)
    both = getattr(model, "use_long", False) and getattr(model, "use_short", False)

    @jax.jit
    def run(state, x, y):
        m = nnx.merge(graphdef, state)
        other = jnp.roll(x, 1, axis=0)  # every row reads a different window
        logits = {"normal": m.next_logits(x)}
        if both:
            logits["long_shuffled"] = m(x, long_x=other)[:, 0, :]
            logits["short_shuffled"] = m(x, short_x=other)[:, 0, :]
        out = {}
        for name, lg in logits.items():
            out[f"{name}_ce"] = optax.softmax_cross_entropy_with_integer_labels(lg, y)
            out[f"{name}_correct"] = jnp.argmax(lg, axis=-1) == y
        return out

    n = split["inputs"].shape[0]
    parts = []
    for i in range(0, n, batch_size):
        x = np.asarray(split["inputs"][i : i + batch_size], np.int32)
        y = np.asarray(split["targets"][i : i + batch_size, 0], np.int32)
        if x.shape[0] < 2:  # a lone row cannot be shuffled with another
            continue
        parts.append(jax.device_get(run(state, x, y)))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def summarize_branches(model: nnx.Module, split: dict, short_context: int) -> dict:
    """Bits per character and accuracy: overall, per shuffled condition, and per category."""
    ex = per_example(model, split)
    n = ex["normal_ce"].shape[0]
    cats = context_categories(split["inputs"][:n], split["targets"][:n], short_context)
    bits = 1.0 / math.log(2.0)
    out: dict = {}
    for cond in ("normal", "long_shuffled", "short_shuffled"):
        if f"{cond}_ce" in ex:
            out[f"{cond}_bpc"] = float(ex[f"{cond}_ce"].mean() * bits)
            out[f"{cond}_accuracy"] = float(ex[f"{cond}_correct"].mean())
    for i, name in enumerate(CATEGORIES):
        sel = cats == i
        out[f"{name}_share"] = float(sel.mean())
        if sel.any():
            out[f"{name}_accuracy"] = float(ex["normal_correct"][sel].mean())
            out[f"{name}_bpc"] = float(ex["normal_ce"][sel].mean() * bits)
    return out
