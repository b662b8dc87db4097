"""Non-finite steps: a NaN or Inf loss, gradient or update changes no parameter.

`guard_nonfinite` makes a step with a non-finite loss, gradient or update change no parameter
and report it; `config.train.on_nan` then stops the run naming the step and the cause
(`NonFiniteLossError`; nothing after it is checkpointed) or skips such steps. Non-finite data is
refused before, when the run is built (`seqlstm.train.run.check_task_data`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from seqlstm.train.state import TrainState

ON_NAN = ("stop", "skip")


def check_on_nan(value: str) -> str:
    """Returns `value` if it is one of `ON_NAN`, else raises ValueError."""
    if value not in ON_NAN:
        raise ValueError(f"config.train.on_nan must be one of {ON_NAN}, got {value!r}")
    return value


class NonFiniteLossError(FloatingPointError):
    """A training step had a NaN or Inf loss, gradient or update, and `on_nan` is "stop".

    Attributes:
      step: the first such step (1-based, as in metrics.jsonl).
      checkpoint: the step of the last checkpoint, all of whose steps were finite (None: none).
      cause: `"loss"` (the loss or gradient), `"update"` (the parameters or optimizer state
        after a finite loss and gradient: `nonfinite_cause`), or `"every_step"`: with `on_nan`
        "skip", every step of the run was skipped (then `step` is the last one), so the
        parameters are still the initial ones.
    """

    def __init__(self, step: int, checkpoint: int | None, workdir: str, cause: str = "loss"):
        self.step, self.checkpoint, self.cause = step, checkpoint, cause
        where = (
            f"the last good checkpoint is step {checkpoint} in {workdir}; running again resumes "
            "from it"
            if checkpoint is not None
            else f"no checkpoint was saved in {workdir}; running again starts over"
        )
        if cause == "every_step":
            what = (
                f"Every one of the {step} training steps had a non-finite loss, gradient or "
                "update and was skipped (train.on_nan=skip), so the parameters were never "
                "updated"
            )
            where = f"nothing more is checkpointed in {workdir}"
            advice = (
                "Lower --config.optim.learning_rate or set --config.optim.grad_clip_norm, and "
                "train in a new --workdir."
            )
            super().__init__(f"{what}: stopped before the final evaluation; {where}. {advice}")
            return
        if cause == "update":
            what = "Non-finite parameters or optimizer state after the update"
            advice = (
                "The loss and gradient were finite, so the optimizer made them: check "
                "--config.optim (eps, b1, b2, learning_rate), or skip such steps with "
                "--config.train.on_nan=skip."
            )
        else:
            what = "Non-finite loss or gradient"
            advice = (
                "Lower --config.optim.learning_rate, set --config.optim.grad_clip_norm, or skip "
                "such steps with --config.train.on_nan=skip."
            )
        super().__init__(
            f"{what} at step {step}: stopped without checkpointing it; {where}. {advice}"
        )


def all_finite(tree: Any) -> jax.Array:
    """A bool scalar: True when every floating value of `tree` is finite. Integer leaves, such
    as optax's step counts, cannot be NaN and are skipped.

    Leaves of one shape and dtype (a parameter and its optimizer moments) are checked in one
    pass: `sum(a * 0 + b * 0 + ...)` is exactly 0 when all are finite and NaN otherwise
    (`inf * 0` is NaN; no sum of zeros overflows): one reduction where `isfinite` took one per
    leaf (G2P's Adam update with this guard, alone, in a scratch timing: 7.8 against 8.4 ms).
    """
    groups: dict[tuple, list] = {}
    for x in jax.tree.leaves(tree):
        if jnp.issubdtype(jnp.result_type(x), jnp.inexact):
            x = jnp.asarray(x)
            groups.setdefault((x.shape, x.dtype), []).append(x)
    if not groups:
        return jnp.asarray(True)
    zeros = [jnp.sum(sum(x * 0 for x in xs)) == 0 for xs in groups.values()]
    return jnp.all(jnp.stack(zeros))


def guard_nonfinite(train_step: Callable) -> Callable:
    """Wraps a pure `train_step(state, batch) -> (state, metrics)` against non-finite values.

    A step whose `loss_sum` or `grad_norm` is NaN or Inf, or whose update leaves a NaN or Inf in
    the parameters, optimizer state or carried state (finite gradients, but an optimizer setting
    that divides by zero or overflows), keeps the parameters, optimizer state and carried state it
    was given (the step counter still advances: its batch is consumed), zeroes its metric sums
    (so the logged loss stays the mean of the steps taken), and reports `nonfinite = 1`, with
    `nonfinite_update = 1` when the loss and gradient were finite and the update was not. Finite
    steps are returned bit for bit, with both 0.
    """

    def guarded(state: TrainState, batch):
        new, metrics = train_step(state, batch)
        loss_ok = jnp.isfinite(metrics["loss_sum"]) & jnp.isfinite(metrics["grad_norm"])
        update_ok = all_finite((new.params, new.opt_state, new.carry))
        ok = loss_ok & update_ok
        keep = lambda a, b: jnp.where(ok, a, b)
        new = new._replace(
            params=jax.tree.map(keep, new.params, state.params),
            opt_state=jax.tree.map(keep, new.opt_state, state.opt_state),
            carry=jax.tree.map(keep, new.carry, state.carry),
        )
        metrics = {k: jnp.where(ok, v, jnp.zeros_like(v)) for k, v in metrics.items()}
        metrics["nonfinite"] = (~ok).astype(jnp.float32)
        metrics["nonfinite_update"] = (loss_ok & ~update_ok).astype(jnp.float32)
        return new, metrics

    return guarded


def nonfinite_steps(metrics: Sequence[dict[str, Any]], last_step: int) -> list[int]:
    """The steps among `metrics` (host values of consecutive steps ending at `last_step`) that
    `guard_nonfinite` flagged."""
    first = last_step - len(metrics) + 1
    return [first + i for i, m in enumerate(metrics) if float(m.get("nonfinite", 0.0)) > 0]


def nonfinite_cause(metrics: Sequence[dict[str, Any]], last_step: int, step: int) -> str:
    """What `guard_nonfinite` found non-finite at `step` (one of `nonfinite_steps`): `"update"`
    (the parameters or optimizer state after a finite loss and gradient) or `"loss"`."""
    m = metrics[step - (last_step - len(metrics) + 1)]
    return "update" if float(m.get("nonfinite_update", 0.0)) > 0 else "loss"
