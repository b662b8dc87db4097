"""Evaluation of parameters on a split: the metrics every task has, then the task's hooks.

A split with no target steps (no rows, or a mask that is all False) has no metrics: `evaluate`
returns them as None with the reason beside them (`absent`), and runs no hook on it. What a hook
returns becomes plain JSON (numpy and JAX numbers and arrays turned into numbers and lists); a
hook that fails, or returns something else than a dict, is an `EvalHookError` naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import numpy as np

from seqlstm.data.batching import eval_batches
from seqlstm.task import EvalContext, EvalHook, split_size
from seqlstm.train.metrics import MetricSums, summarize

BASE_METRICS = ("loss", "token_accuracy", "sequence_accuracy")


class EvalHookError(ValueError):
    """An evaluation hook failed, or returned what cannot go into `results.json`."""


def absent(split_name: str, split: Mapping[str, np.ndarray]) -> dict[str, Any] | None:
    """The metrics of `split` marked absent (None, with the reason under `"absent"`) when it
    has no target steps; None when it has some."""
    if not split_size(split):
        why = f"the {split_name} split has no examples"
    elif not np.any(split["mask"]):
        n, t = np.shape(split["mask"])
        why = f"the {split_name} split has no target steps (its mask [{n}, {t}] is all False)"
    else:
        return None
    return {**dict.fromkeys(BASE_METRICS), "absent": why}


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

    Returns:
      `{"loss", "token_accuracy", "sequence_accuracy", ...what the hooks return}`; for a split
      with no target steps, those three are None and `"absent"` says why (no hook runs).

    Raises:
      EvalHookError: a hook raised, returned something else than a dict (None counts as `{}`)
        or a value JSON cannot hold, or a key another hook or the base metrics already gave.
    """
    missing = absent(split_name, split)
    if missing is not None:
        return missing
    outs = jax.device_get([eval_step(params, b) for b in batches(split, batch_size)])
    sums: dict[str, Any] = {}
    for key in outs[0] if outs else ():
        sums[key] = np.sum([o[key] for o in outs], axis=0, dtype=np.float64)
    scalar = MetricSums()
    scalar.add_all({k: v for k, v in o.items() if np.ndim(v) == 0} for o in outs)
    out: dict[str, Any] = summarize(scalar.sums)
    ctx = EvalContext(split_name, split, sums, dict(out), batch_size, make_model, workdir=workdir)
    for hook in hooks:
        extra = run_hook(hook, ctx)
        clash = sorted(set(extra) & set(out))
        if clash:
            raise EvalHookError(
                f"evaluation hook {hook_name(hook)} returned {clash}, which are already set"
            )
        out.update(extra)
    return out


def hook_name(hook: EvalHook) -> str:
    """`module.qualname` of a hook function (its repr for other callables)."""
    name = getattr(hook, "__qualname__", None)
    module = getattr(hook, "__module__", None)
    return f"{module}.{name}" if name and module else repr(hook)


def run_hook(hook: EvalHook, ctx: EvalContext) -> dict[str, Any]:
    """What `hook(ctx)` returns, as plain JSON (`jsonable`); None counts as `{}`.

    Raises:
      EvalHookError: naming the hook and the split, if it raises or returns something else than
        a dict of what JSON can hold; raised from the hook's own error (its traceback shows with
        verbose logging).
    """
    where = f"evaluation hook {hook_name(hook)} on the {ctx.split_name} split"
    try:
        value = hook(ctx)
    except Exception as e:  # noqa: BLE001 -- any failure of user code: name the hook
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise EvalHookError(
            f"{where} failed: {type(e).__name__}: {first} (the hook's traceback: --verbosity=0)"
        ) from e
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise EvalHookError(
            f"{where} returned {type(value).__name__}; a hook returns a dict (or None)"
        )
    return jsonable(value, where)


def jsonable(value: Any, where: str, key: str = "") -> Any:
    """`value` with numpy and JAX scalars as Python numbers, their arrays as (nested) lists,
    tuples as lists and numpy integer keys as ints, so that `json.dump` takes it.

    Raises:
      EvalHookError: naming `where` and the key, for a value of another type.
    """
    at = f" at key {key}" if key else ""
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            name = int(k) if isinstance(k, np.integer) else k
            if not isinstance(name, (str, int, float, bool)) and name is not None:
                raise EvalHookError(
                    f"{where} returned a key of type {type(k).__name__}{at}; keys are str or int"
                )
            out[name] = jsonable(v, where, f"{key}.{k!r}" if key else repr(k))
        return out
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [jsonable(v, where, key) for v in value]
    if isinstance(value, (np.generic, np.ndarray, jax.Array)):
        array = np.asarray(jax.device_get(value))
        if array.dtype.kind in "biuf":
            return array.tolist()  # Python bool, int or float, nested as the shape
    raise EvalHookError(
        f"{where} returned {type(value).__name__} {str(value)[:60]!r}{at}; a hook's values are "
        "numbers, strings, numpy or JAX arrays, or lists and dicts of them"
    )
