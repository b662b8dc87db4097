"""The evaluation hooks any task can use (`seqlstm.task.EvalHook`: `hook(ctx) -> dict`).

  position_accuracy   token accuracy at each target position (reads the evaluation's sums)
  bits_per_token      the loss in bits per target token: bits per character for text
  decoding_accuracy   free-running (greedy) accuracy of an encoder-decoder (runs the model)

A task lists the hooks it wants in `Task.hooks`; the loop calls them and never knows what they
compute. A hook of one task alone (the G2P WER and PER) stays in that task's module.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from seqlstm.decoding import evaluate_decoding
from seqlstm.task import EvalContext


def position_accuracy(ctx: EvalContext) -> dict[str, Any]:
    """Token accuracy at each target position: `{"position_accuracy": [T floats]}`."""
    correct = np.asarray(ctx.sums["position_correct"], np.float64)
    tokens = np.asarray(ctx.sums["position_tokens"], np.float64)
    return {"position_accuracy": (correct / np.maximum(tokens, 1.0)).tolist()}


def bits_per_token(ctx: EvalContext) -> dict[str, Any]:
    """The loss in bits per target token (for text: bits per character)."""
    if "loss" not in ctx.metrics:
        return {}
    return {"bits_per_char": ctx.metrics["loss"] / math.log(2.0)}


def decoding_accuracy(ctx: EvalContext) -> dict[str, dict[str, float]]:
    """Free-running (greedy) accuracy of an encoder-decoder: `{"decoded": {...}}` (see
    `seqlstm.decoding.evaluate_decoding`). Teacher-forced accuracy reads the true previous token;
    a user of the model reads its own."""
    return {"decoded": evaluate_decoding(ctx.model, ctx.split, ctx.batch_size)}
