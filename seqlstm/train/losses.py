"""Training objectives beside the plain cross-entropy of `seqlstm.train.steps`.

Label smoothing (Szegedy et al. 2016): the target distribution puts `1 - smoothing` on the true
class and spreads `smoothing` uniformly over all `K` classes, so per position

  loss = -sum_k q_k log p_k,   q_k = (1 - smoothing) [k == target] + smoothing / K
       = (1 - smoothing) * NLL + smoothing * mean_k(-log p_k)

(`optax.smooth_labels` + `optax.softmax_cross_entropy`, without building the one-hot labels).
Only the training objective changes: the loss a run logs and evaluates stays the unsmoothed NLL.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from seqlstm.checks import check_rate


def smoothed_cross_entropy(logits: jax.Array, targets: jax.Array, smoothing: float) -> jax.Array:
    """Cross-entropy against label-smoothed targets (module docstring), per position.

    Args:
      logits: `[batch, time, classes]` (any leading shape).
      targets: `int[batch, time]`, the true classes.
      smoothing: the mass spread uniformly over all classes, in `[0, 1)`; 0 is the plain NLL.

    Returns:
      `[batch, time]`, float32 (float64 for float64 logits); mask and sum it as the plain
      cross-entropy.

    Raises:
      ValueError: for a `smoothing` outside `[0, 1)`.
    """
    smoothing = check_rate("smoothing", smoothing)
    # As the plain cross-entropy (`steps.masked_sums`): bfloat16 scored in float32, float64 kept.
    logp = jax.nn.log_softmax(logits.astype(jnp.promote_types(logits.dtype, jnp.float32)), -1)
    nll = -jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
    if smoothing == 0.0:
        return nll
    return (1.0 - smoothing) * nll - smoothing * jnp.mean(logp, axis=-1)
