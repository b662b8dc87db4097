"""Evaluation of parameters on a split: the metrics every task has, then the task's hooks."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import jax
import numpy as np

from seqlstm.data.batching import eval_batches
from seqlstm.task import EvalContext, EvalHook
from seqlstm.train.metrics import MetricSums, summarize


def evaluate(
    eval_step: Callable,
    params,
    split: dict,
    batch_size: int,
    batches: Callable[..., Iterable] = eval_batches,
    *,
    hooks: tuple[EvalHook, ...] = (),
    split_name: str = "val",
    make_model: Callable[[], Any] = lambda: None,
    workdir: str | None = None,
) -> dict[str, Any]:
    """Loss, token and sequence accuracy of `params` on `split`, and what each hook returns.

    Args:
      eval_step: `eval_step(params, batch) -> sums` (`seqlstm.train.steps.make_eval_step`).
      params: the parameters evaluated.
      split: the split's arrays.
      batch_size: rows per evaluation batch.
      batches: `batches(split, batch_size)` yields the batches, placed for `eval_step`.
      hooks: `seqlstm.task.EvalHook`s; their results are merged into the returned dict.
      split_name: the split's name, for the hooks.
      make_model: builds the model with `params` in evaluation mode, for hooks that run it.
      workdir: the run's directory, for hooks that write files (None: they write none).

    Raises:
      ValueError: if a hook returns a key another hook or the base metrics already gave.
    """
    outs = jax.device_get([eval_step(params, b) for b in batches(split, batch_size)])
    sums: dict[str, Any] = {}
    for key in outs[0] if outs else ():
        sums[key] = np.sum([o[key] for o in outs], axis=0, dtype=np.float64)
    scalar = MetricSums()
    scalar.add_all({k: v for k, v in o.items() if np.ndim(v) == 0} for o in outs)
    out: dict[str, Any] = summarize(scalar.sums)
    ctx = EvalContext(split_name, split, sums, dict(out), batch_size, make_model, workdir=workdir)
    for hook in hooks:
        extra = dict(hook(ctx))
        clash = sorted(set(extra) & set(out))
        if clash:
            raise ValueError(f"evaluation hook {hook!r} returned {clash}, which are already set")
        out.update(extra)
    return out
