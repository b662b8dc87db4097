"""Metric aggregation and writing: `metrics.jsonl`, TensorBoard events (`train/tfevents.py`).

Steps return sums and counts (`seqlstm.train.steps.masked_sums`); `MetricSums` adds them up on the
host in float64 and `summarize` turns them into means.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import numpy as np

from seqlstm.task import scalars
from seqlstm.train.storage import after_failure, writing
from seqlstm.train.tfevents import EventFile


class MetricSums:
    """Running float64 sums of step metrics; `grad_norm` and `param_norm` are averaged per step."""

    def __init__(self, sums: Mapping[str, float] | None = None):
        self.sums: dict[str, float] = dict(sums or {})

    def add_all(self, metrics: Iterable[Mapping[str, jax.Array]]) -> None:
        """Adds step metrics (device arrays, fetched together in one transfer)."""
        for m in jax.device_get(list(metrics)):
            for k, v in m.items():
                self.sums[k] = self.sums.get(k, 0.0) + float(np.asarray(v, np.float64).sum())
            self.sums["steps"] = self.sums.get("steps", 0.0) + 1.0

    def __bool__(self) -> bool:
        return bool(self.sums)


def summarize(sums: Mapping[str, float], prefix: str = "") -> dict[str, float]:
    """Means from sums: loss, token_accuracy, sequence_accuracy, and the per-step norms."""
    out = {}
    if sums.get("tokens"):
        out["loss"] = sums["loss_sum"] / sums["tokens"]
        out["token_accuracy"] = sums["token_correct"] / sums["tokens"]
    if sums.get("sequences"):
        out["sequence_accuracy"] = sums["seq_correct"] / sums["sequences"]
    if sums.get("steps") and "grad_norm" in sums:
        out["grad_norm"] = sums["grad_norm"] / sums["steps"]
        out["param_norm"] = sums["param_norm"] / sums["steps"]
    return {f"{prefix}{k}": float(v) for k, v in out.items()}


NULL_REASON = "_null_reason"  # the key beside a number written as null: `loss_null_reason`


def json_safe(value: Any) -> Any:
    """`value` with every NaN or Inf number (Python or numpy) written as None, which JSON holds
    as `null`, and the reason beside it in the enclosing dict: `{"loss": nan}` becomes
    `{"loss": None, "loss_null_reason": "non-finite value: nan"}`; a list holding such numbers
    gets one reason for the list. Everything else is returned as it is."""
    if isinstance(value, Mapping):
        out: dict = {}
        for k, v in value.items():
            out[k] = json_safe(v)
            if _has_nonfinite(v) and not isinstance(v, Mapping):
                what = f"value: {float(v)}" if _is_nonfinite(v) else "values (NaN or Inf) in it"
                out[f"{k}{NULL_REASON}"] = f"non-finite {what}"
        return out
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return None if _is_nonfinite(value) else value


def _is_nonfinite(value: Any) -> bool:
    return isinstance(value, (float, np.floating)) and not math.isfinite(value)


def _has_nonfinite(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return any(_has_nonfinite(v) for v in value)
    return _is_nonfinite(value)


def read_rows(path: str, log: Callable[[str], None] = print) -> list[str]:
    """The lines of a `metrics.jsonl` that hold a JSON object with a step; any other line (the
    torn last line a crash or a full disk leaves) is dropped, with a warning through `log`."""
    with open(path, errors="replace") as f:
        lines = f.readlines()
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            step = json.loads(line)["step"]
            int(step)
        except (ValueError, KeyError, TypeError):
            log(
                f"warning: dropped line {number} of {path}, not a complete metrics row (cut "
                f"short by a crash or a full disk): {line.strip()[:80]!r}"
            )
            continue
        rows.append(line if line.endswith("\n") else line + "\n")
    return rows


class MetricWriter:
    """Appends one JSON object per logged step to `metrics.jsonl` and mirrors scalars to
    TensorBoard. A failed write raises `WorkdirWriteError` naming the file.

    Args:
      workdir: the run's directory.
      resume_step: when resuming from a checkpoint at this step, rows logged after it by the
        interrupted run are dropped (from the JSON file, and purged in TensorBoard), so the
        workdir reads as one uninterrupted run; so is a torn last row.
    """

    def __init__(self, workdir: str, resume_step: int | None = None):
        self.path = os.path.join(workdir, "metrics.jsonl")
        if resume_step is not None and os.path.exists(self.path):
            kept = [r for r in read_rows(self.path) if json.loads(r)["step"] <= resume_step]
            with writing(self.path):
                with open(self.path + ".tmp", "w") as f:
                    f.writelines(kept)
                os.replace(self.path + ".tmp", self.path)
        elif resume_step is None and os.path.exists(self.path):
            os.remove(self.path)
        purge = None if resume_step is None else resume_step + 1
        self.tb = EventFile(workdir, purge_step=purge)

    def write(self, row: Mapping) -> None:
        """Writes `row` (must hold `step`); its numbers other than the step (nested dicts
        flattened, as evaluation hooks return them) go to TensorBoard as `train/...`, `eval/...`
        scalars. A NaN or Inf is written as null with its reason beside it (`json_safe`)."""
        row = json_safe(dict(row))
        line = json.dumps(row, sort_keys=True, allow_nan=False)
        with writing(self.path), open(self.path, "a") as f:
            f.write(line + "\n")  # one write: torn at worst
        step = int(row["step"])
        for k, v in scalars(row).items():
            if k == "step":
                continue
            tag = k.replace("train_", "train/", 1).replace("eval_", "eval/", 1)
            self.tb.add_scalar(tag, v, step)

    def close(self) -> None:
        with after_failure():
            self.tb.close()


class NullWriter:
    """A `MetricWriter` that writes nothing: every process of a multi-process run but the first."""

    def write(self, row: Mapping) -> None:
        pass

    def close(self) -> None:
        pass
