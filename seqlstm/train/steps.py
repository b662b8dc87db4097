"""Pure training and evaluation steps with masked cross-entropy and accuracies.

Metrics come back as sums and counts, so batches of any padding aggregate exactly:
`loss = loss_sum / tokens`, `token_accuracy = token_correct / tokens`,
`sequence_accuracy = seq_correct / sequences`. A padded row (all-False mask) counts for nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from seqlstm.task import check_logits
from seqlstm.train.losses import smoothed_cross_entropy
from seqlstm.train.state import ModelDef, TrainState

Batch = dict[str, jax.Array]


def masked_sums(logits: jax.Array, targets: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
    """Cross-entropy and accuracy sums over the valid steps of a batch.

    Args:
      logits: `[batch, time, classes]`.
      targets: `int[batch, time]`.
      mask: `bool[batch, time]`, True at steps that count.

    Returns:
      Scalars `loss_sum`, `tokens`, `token_correct`, `sequences`, `seq_correct`, and per position
      `position_correct: [time]`, `position_tokens: [time]`.
    """
    w = mask.astype(jnp.float32)
    # bfloat16 logits are scored in float32; float64 ones (JAX's x64 mode) stay float64.
    ce_dtype = jnp.promote_types(logits.dtype, jnp.float32)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(ce_dtype), targets)
    correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32) * w
    row_valid = jnp.any(mask, axis=1)
    row_correct = jnp.all((correct > 0) | ~mask, axis=1) & row_valid
    return {
        "loss_sum": jnp.sum(ce * w),
        "tokens": jnp.sum(w),
        "token_correct": jnp.sum(correct),
        "sequences": jnp.sum(row_valid.astype(jnp.float32)),
        "seq_correct": jnp.sum(row_correct.astype(jnp.float32)),
        "position_correct": jnp.sum(correct, axis=0),
        "position_tokens": jnp.sum(w, axis=0),
    }


def masked_cross_entropy(logits: jax.Array, targets: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean categorical cross-entropy over the valid steps (0 when there are none)."""
    s = masked_sums(logits, targets, mask)
    return s["loss_sum"] / jnp.maximum(s["tokens"], 1.0)


def make_train_step(
    model: ModelDef, tx: optax.GradientTransformation, label_smoothing: float = 0.0
) -> Callable[[TrainState, Batch], tuple[TrainState, dict[str, jax.Array]]]:
    """A pure `train_step(state, batch) -> (state, metrics)`; jit it where it is called.

    `batch` keeps the batch contract (`seqlstm.task`): `targets: int[B, T]`, `mask: bool[B, T]`
    and the fields the model reads; the model's logits must be floating point `[B, T, C]`
    (`seqlstm.task.check_logits`: a ValueError when the step is traced). The step's key
    is `fold_in(state.rng, state.step)`. The model starts from the state carried in
    `state.carry` and the new state carries on; gradients stop at the carried state (truncated
    backpropagation through time). Metrics: the sums of `masked_sums` (without the
    per-position ones), `grad_norm` and `param_norm` (global L2 norms, before the update).
    With `label_smoothing > 0` the gradient is that of `seqlstm.train.losses`'s smoothed
    cross-entropy; the metrics' `loss_sum` stays the plain NLL.
    """

    def train_step(state: TrainState, batch: Batch):
        rng = jax.random.fold_in(state.rng, state.step)

        def loss_fn(params):
            logits, carry = model.train_batch(params, state.carry, batch, rng)
            check_logits(logits, batch["targets"].shape, "the model")  # once, when traced
            sums = masked_sums(logits, batch["targets"], batch["mask"])
            loss_sum = sums["loss_sum"]
            if label_smoothing:
                ce = smoothed_cross_entropy(logits, batch["targets"], label_smoothing)
                loss_sum = jnp.sum(ce * batch["mask"].astype(jnp.float32))
            return loss_sum / jnp.maximum(sums["tokens"], 1.0), (sums, carry)

        grads, (sums, carry) = jax.grad(loss_fn, has_aux=True)(state.params)
        carry = jax.lax.stop_gradient(carry)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {k: v for k, v in sums.items() if not k.startswith("position_")}
        metrics["grad_norm"] = optax.tree.norm(grads)
        metrics["param_norm"] = optax.tree.norm(state.params)
        new_state = TrainState(
            step=state.step + 1, params=params, opt_state=opt_state, rng=state.rng, carry=carry
        )
        return new_state, metrics

    return train_step


def make_eval_step(model: ModelDef) -> Callable[[object, Batch], dict[str, jax.Array]]:
    """A pure `eval_step(params, batch) -> sums` (see `masked_sums`), in evaluation mode.

    Evaluation carries no state between batches: a model that carries state in training
    evaluates each row from the state it was built with (zeros), so every row counts alone and
    in any batch order."""

    def eval_step(params, batch: Batch):
        logits = model.apply_batch(params, batch, train=False)
        check_logits(logits, batch["targets"].shape, "the model")  # once, when traced
        return masked_sums(logits, batch["targets"], batch["mask"])

    return eval_step
