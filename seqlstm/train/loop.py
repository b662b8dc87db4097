"""`train_and_evaluate(config, workdir)`: the training loop, resumable at any step.

The run is a function of the config alone. The batches of epoch `e` are fixed by
`(config.seed, e)`, the dropout key of step `s` by `(config.seed, s)`, and a checkpoint holds the
position `(epoch, batch index)`; so a run stopped at any step and resumed from its checkpoint ends
with exactly the parameters of an uninterrupted run.

Evaluation on the validation split happens every epoch (or every `config.eval.every_steps`), with
early stopping on validation loss: after `config.train.patience` evaluations without improvement
training stops, and the parameters of the best evaluation are restored (also when the epoch limit
is reached first). The final parameters are then evaluated on the test split.
"""

from __future__ import annotations

import math
import os
import time
from functools import partial
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from seqlstm.checks import check_int
from seqlstm.data import eval_batches, get_task, split_size, steps_per_epoch, train_batches
from seqlstm.data.bucketing import bucketed_batches, bucketed_steps_per_epoch, check_boundaries
from seqlstm.decoding import evaluate_decoding
from seqlstm.models import get_model
from seqlstm.train import faults, parallel
from seqlstm.train.checkpoint import Checkpointer, prepare_workdir
from seqlstm.train.metrics import MetricSums, MetricWriter, NullWriter, summarize
from seqlstm.train.optim import make_optimizer
from seqlstm.train.state import create_train_state, split_model
from seqlstm.train.steps import make_eval_step, make_train_step
from seqlstm.train.workdir import workdir_lock, write_json


def check_config(config: ml_collections.ConfigDict) -> None:
    """Checks the training settings of `config` (data, model and optimizer check themselves).

    Raises:
      ValueError: naming the key, the value given and what was expected.
    """
    t = config.train
    check_int("config.train.batch_size", t.batch_size, 1)
    check_int("config.eval.batch_size", config.eval.batch_size, 1)
    for key in ("num_epochs", "num_steps", "patience", "stop_after_steps", "log_every_steps"):
        check_int(f"config.train.{key}", t[key], 0)
    check_int("config.train.checkpoint_every_steps", t.checkpoint_every_steps, 0)
    check_int("config.train.checkpoint_every_epochs", t.checkpoint_every_epochs, 0)
    check_int("config.train.max_to_keep", t.max_to_keep, 1)
    check_int("config.eval.every_steps", config.eval.every_steps, 0)
    check_int("config.seed", config.seed, 0)
    if t.num_epochs == 0 and t.num_steps == 0:
        raise ValueError("config.train.num_epochs or config.train.num_steps must be positive")
    if t.get("buckets"):
        check_boundaries(t.buckets)
    faults.check_on_nan(t.get("on_nan", "stop"))


def build(config: ml_collections.ConfigDict):
    """Data, model and optimizer of `config`, all validated.

    Returns:
      `(data, model, tx)`: the splits of `config.data`, the `nnx.Module` of `config.model` (its
      parameters drawn from `config.seed`), and the optax optimizer of `config.optim`.

    Raises:
      ValueError: for a bad value anywhere in the config.
    """
    check_config(config)
    data = get_task(**config.data.to_dict())
    rngs = nnx.Rngs(params=config.seed, dropout=config.seed + 1)
    model = get_model(**config.model.to_dict(), rngs=rngs)
    tx = make_optimizer(config.optim.to_dict())
    if config.train.get("buckets") and "source_lengths" not in data["train"]:
        raise ValueError(
            "config.train.buckets needs variable-length seq2seq data (a split with "
            f"source_lengths); task {config.data.name!r} has none"
        )
    return data, model, tx


def evaluate(
    eval_step, params, split: dict, batch_size: int, batches=eval_batches
) -> dict[str, Any]:
    """Loss, token and sequence accuracy, and per-position accuracy of `params` on `split`,
    read in `batches(split, batch_size)`."""
    sums = MetricSums()
    outs = [eval_step(params, b) for b in batches(split, batch_size)]
    host = jax.device_get(outs)
    position = np.sum([o["position_correct"] for o in host], axis=0, dtype=np.float64)
    position_tokens = np.sum([o["position_tokens"] for o in host], axis=0, dtype=np.float64)
    sums.add_all({k: v for k, v in o.items() if not k.startswith("position_")} for o in host)
    out: dict[str, Any] = summarize(sums.sums)
    out["position_accuracy"] = (position / np.maximum(position_tokens, 1.0)).tolist()
    return out


def _fresh_meta() -> dict[str, Any]:
    return {
        "epoch": 0,
        "batch": 0,
        "best_loss": None,
        "best_step": None,
        "bad_evals": 0,
        "stopped_early": False,
        "done": False,
        "train_sums": {},
    }


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Trains `config`'s model in `workdir`, or resumes the run that workdir holds.

    Writes `config.json`, `metrics.jsonl`, TensorBoard events, `checkpoints/`, and at the end
    `results.json` (test loss, token and sequence accuracy, per-position accuracy).

    Args:
      config: see `configs/reverse.py`.
      workdir: the run's directory; a workdir holding a finished run only re-evaluates it.

    Returns:
      The contents of `results.json`, or `{"interrupted": True, "step": s}` when
      `config.train.stop_after_steps` stopped the run early (checkpointed, to be resumed).

    Raises:
      ValueError: for a bad config, a mesh that does not fit the devices or batch, or a workdir
        holding a run with a different config; nothing in the workdir is touched then.
      seqlstm.train.faults.NonFiniteLossError: a step's loss was NaN or Inf and
        `config.train.on_nan` is "stop"; the checkpoints before it are kept.
      seqlstm.train.workdir.WorkdirBusyError: another run holds the workdir.
      seqlstm.train.errors.WorkdirWriteError: a write failed (e.g. the disk is full).
    """
    with workdir_lock(workdir, enabled=jax.process_index() == 0):  # one run per workdir
        return _train_and_evaluate(config, workdir)


def _train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    data, model, tx = build(config)
    t, ev = config.train, config.eval
    par = parallel.from_config(config.get("parallel"))
    par.check_batch_size(t.batch_size)
    lead = jax.process_index() == 0  # only process 0 writes config, metrics and results
    prepare_workdir(config, workdir, write=lead)
    if par.mesh is not None:
        print(f"Training on a {par.describe()}")
    model_def, params = split_model(model)
    state = par.put(create_train_state(params, tx, config.seed))
    best_params = state.params
    meta = _fresh_meta()
    ckpt = Checkpointer(workdir, max_to_keep=t.max_to_keep)
    restored = ckpt.latest_step()
    if restored is not None:
        restored, state, best_params, meta = faults.restore_latest_readable(
            ckpt, state, best_params
        )
        if meta["done"]:
            print(
                f"{workdir} holds a finished run (step {restored}): evaluating its final parameters"
            )
        else:
            where = f"epoch {meta['epoch']}, batch {meta['batch']}"
            print(f"Resuming {workdir} at step {restored} ({where})")
    writer = MetricWriter(workdir, resume_step=restored) if lead else NullWriter()

    train_step = par.jit_train_step(faults.guard_nonfinite(make_train_step(model_def, tx)), state)
    eval_step = par.jit_eval_step(make_eval_step(model_def))
    eval_size = par.eval_batch_size(ev.batch_size)
    on_nan = t.get("on_nan", "stop")
    train, val = data["train"], data["val"]
    has_val = split_size(val) > 0
    buckets = tuple(t.get("buckets", ()))
    if buckets:
        spe = bucketed_steps_per_epoch(train, t.batch_size, buckets)
        epoch_batches = partial(bucketed_batches, boundaries=buckets)
    else:
        spe = steps_per_epoch(split_size(train), t.batch_size)
        epoch_batches = train_batches
    total = t.num_steps if t.num_steps else t.num_epochs * spe
    step = int(state.step)
    sums = MetricSums(meta["train_sums"])
    pending: list = []

    def flush() -> None:
        host = jax.device_get(pending)
        bad = faults.nonfinite_steps(host, step)
        if bad and on_nan == "stop":
            raise faults.NonFiniteLossError(bad[0], ckpt.latest_step(), workdir)
        if bad:
            print(f"Skipped step(s) {bad}: non-finite loss or gradient (train.on_nan=skip)")
        sums.add_all(host)
        pending.clear()

    def save() -> None:
        flush()
        meta["train_sums"] = sums.sums
        ckpt.save(step, state, best_params, meta)

    pbar = tqdm(
        total=total,
        initial=min(step, total),
        disable=not (t.progress_bar and lead),
        unit="step",
        desc=f"{config.model.name} T={config.model.get('length', '?')}",
        dynamic_ncols=True,
    )
    clock, clock_step = time.perf_counter(), step
    stop = faults.StopRequest()
    try:
        while not meta["done"]:
            epoch = meta["epoch"]
            for i, batch in par.train_batches(
                epoch_batches, train, t.batch_size, seed=config.seed, epoch=epoch,
                start=meta["batch"],
            ):  # fmt: skip
                state, m = train_step(state, batch)
                step += 1
                pending.append(m)
                pbar.update(1)
                meta["epoch"], meta["batch"] = divmod(step, spe)
                epoch_end = i + 1 == spe
                if t.num_steps:
                    at_end = step >= t.num_steps
                else:
                    at_end = epoch_end and epoch + 1 >= t.num_epochs
                if ev.every_steps:
                    do_eval = has_val and (at_end or step % ev.every_steps == 0)
                else:
                    do_eval = has_val and (at_end or epoch_end)
                row: dict[str, Any] = {}
                if do_eval or at_end or (t.log_every_steps and step % t.log_every_steps == 0):
                    flush()
                    now = time.perf_counter()
                    row = {"step": step, "epoch": round(step / spe, 4)}
                    row.update(summarize(sums.sums, "train_"))
                    if sums.sums.get("nonfinite"):
                        row["train_nonfinite_steps"] = sums.sums["nonfinite"]
                    row["steps_per_sec"] = (step - clock_step) / max(now - clock, 1e-9)
                    clock, clock_step, sums = now, step, MetricSums()
                if do_eval:
                    val_metrics = evaluate(
                        eval_step, state.params, val, eval_size, par.eval_batches
                    )
                    del val_metrics["position_accuracy"]
                    row.update({f"eval_{k}": v for k, v in val_metrics.items()})
                    loss = val_metrics["loss"]
                    if meta["best_loss"] is None or loss < meta["best_loss"] - t.min_delta:
                        meta.update(best_loss=loss, best_step=step, bad_evals=0)
                        best_params = state.params
                    else:
                        meta["bad_evals"] += 1
                    if t.patience and meta["bad_evals"] >= t.patience:
                        meta["stopped_early"] = True
                    row["eval_best_loss"] = meta["best_loss"]
                if at_end or meta["stopped_early"]:
                    meta["done"] = True
                    if t.patience and has_val:
                        state = state._replace(params=best_params)
                if row:
                    writer.write(row)
                    shown = {
                        "train_loss": "loss",
                        "eval_loss": "val_loss",
                        "eval_token_accuracy": "val_acc",
                    }
                    pbar.set_postfix(
                        {v: f"{row[k]:.3f}" for k, v in shown.items() if k in row}, refresh=False
                    )
                every_steps, every_epochs = t.checkpoint_every_steps, t.checkpoint_every_epochs
                if (
                    meta["done"]
                    or (every_steps and step % every_steps == 0)
                    or (every_epochs and epoch_end and (epoch + 1) % every_epochs == 0)
                ):
                    save()
                if meta["done"]:
                    break
                signalled = stop.agreed(step)
                if signalled or (t.stop_after_steps and step >= t.stop_after_steps):
                    save()
                    why = "a signal" if signalled else "train.stop_after_steps"
                    print(f"Stopped by {why} at step {step}, checkpointed: run again to resume.")
                    return {"interrupted": True, "step": step}
    finally:
        stop.restore()
        pbar.close()
        writer.close()
        ckpt.close()

    results = _final_results(
        config, model_def, eval_step, state.params, data, meta, step, spe, has_val, par
    )
    if lead:
        write_json(os.path.join(workdir, "results.json"), results)
    _print_results(results)
    return results


def _final_results(
    config, model_def, eval_step, params, data, meta, step, spe, has_val, par
) -> dict[str, Any]:
    batch_size = par.eval_batch_size(config.eval.batch_size)
    results: dict[str, Any] = {
        "model": config.model.name,
        "length": config.data.get("length"),
        "seed": config.seed,
        "steps": step,
        "epochs": math.ceil(step / spe),
        "stopped_early": meta["stopped_early"],
        "best_step": meta["best_step"],
        # Early stopping (patience > 0) restores the best parameters; otherwise the final ones.
        "restored_best": bool(config.train.patience and has_val),
    }
    if has_val:
        results["val"] = evaluate(eval_step, params, data["val"], batch_size, par.eval_batches)
    results["test"] = evaluate(eval_step, params, data["test"], batch_size, par.eval_batches)
    if "source" in data["test"]:
        # Teacher-forced accuracy reads the true previous token; a user's model reads its own.
        # Decoding runs on each process's default device, from the whole parameters.
        model = nnx.merge(model_def.eval_def, par.fetch(params), model_def.rest, copy=True)
        results["test"]["decoded"] = evaluate_decoding(model, data["test"], batch_size)
    return results


def _print_results(results: dict[str, Any]) -> None:
    test = results["test"]
    how = "early stopping" if results["stopped_early"] else "epoch limit"
    if results["best_step"] is None or not results.get("restored_best", True):
        params = "final parameters"
    else:
        params = f"parameters of the best validation loss, step {results['best_step']}"
    print(
        f"Done: {results['steps']} steps, {results['epochs']} epochs ({how}; {params}).\n"
        f"Test: loss {test['loss']:.4f}, token accuracy {test['token_accuracy']:.4f}, "
        f"sequence accuracy {test['sequence_accuracy']:.4f}\n"
        "Test accuracy per position: " + " ".join(f"{a:.2f}" for a in test["position_accuracy"])
    )
    if "decoded" in test:
        d = test["decoded"]
        print(
            f"Test, greedy decoding: sequence accuracy {d['sequence_accuracy']:.4f}, "
            f"token accuracy {d['token_accuracy']:.4f}"
        )
