"""`train_and_evaluate(config, workdir)`: the training loop, resumable at any step.

The run is a function of the config alone. The batches of epoch `e` are fixed by
`(config.seed, e)`, the dropout key of step `s` by `(config.seed, s)`, and a checkpoint holds the
position `(epoch, batch index)`; so a run stopped at any step and resumed from its checkpoint ends
with exactly the parameters of an uninterrupted run.

Evaluation on the validation split happens every epoch (or every `config.eval.every_steps`), with
early stopping on validation loss: after `config.train.patience` evaluations without improvement
training stops, and the parameters of the best evaluation are restored (also when the epoch limit
is reached first). A NaN validation loss is never an improvement (a warning says so). The final
parameters are then evaluated on the test split; a NaN metric is written as null, with the reason
beside it (`seqlstm.train.metrics.json_safe`).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator
from typing import Any

import jax
import ml_collections
import numpy as np
from tqdm.auto import tqdm

from seqlstm.task import scalars, split_size
from seqlstm.train import causes, host_memory, nonfinite, signals, storage
from seqlstm.train.checkpoint import Checkpointer, latest_meta, prepare_workdir
from seqlstm.train.evaluate import absent, evaluate  # evaluate: tests patch it here
from seqlstm.train.metrics import MetricSums, MetricWriter, NullWriter, json_safe, summarize
from seqlstm.train.run import Run, build_run
from seqlstm.train.state import create_train_state
from seqlstm.train.workdir import check_workdir_path, workdir_lock, write_json

# Test rows the evaluation hooks first run on when there is no validation split (`check_hooks`).
HOOK_CHECK_ROWS = 4


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Trains `config`'s model in `workdir`, or resumes the run that workdir holds.

    Writes `config.json`, `metrics.jsonl`, TensorBoard events, `checkpoints/`, and at the end
    `results.json` (the validation and test metrics, with what the task's hooks add; a split
    without target steps, such as a validation split the task does not have, has them null, with
    the reason under `"absent"`).

    Args:
      config: see `configs/reverse.py`; `config.model.name` and `config.data.name` are
        registered names or import paths (`seqlstm.task`).
      workdir: the run's directory; a workdir holding a finished run only re-evaluates it.

    Returns:
      The contents of `results.json`, or `{"interrupted": True, "step": s}` when
      `config.train.stop_after_steps` or a signal stopped the run early (checkpointed).

    Raises:
      ValueError: for a bad config, a mesh that does not fit the devices or batch, a model and
        data that break the batch contract (`seqlstm.task`: logits' shape or dtype, targets out
        of range, NaN inputs, an all-False training mask), or a workdir holding a run with a
        different config; nothing in the workdir is touched then.
      seqlstm.train.nonfinite.NonFiniteLossError: a step's loss was NaN or Inf and
        `config.train.on_nan` is "stop"; the checkpoints before it are kept. With "skip", when
        every step of the run was skipped (nothing trained; no results then).
      seqlstm.train.workdir.WorkdirBusyError: another run holds the workdir.
      seqlstm.train.storage.WorkdirWriteError: a write failed (e.g. the disk is full).
      seqlstm.train.causes.OutOfMemoryError: the device (or host) ran out of memory.
      seqlstm.train.signals.Interrupted: a second SIGINT during training (the first stops it
        cleanly), or SIGINT or SIGTERM during the final evaluation.
    """
    host_memory.keep_freed_memory()  # XLA:CPU's step buffers reused, not faulted in again
    run = build_run(config)  # build: everything checked before the workdir is touched
    check_workdir_path(workdir)
    lead = jax.process_index() == 0  # only process 0 writes config, metrics and results
    # one run per workdir; running out of memory is one error saying what to change
    with workdir_lock(workdir, enabled=lead), _out_of_memory_said(config, workdir):
        prepare_workdir(config, workdir, write=lead)
        if run.place.mesh is not None:
            print(f"Training on a {run.place.describe()}")
        ckpt = Checkpointer(workdir, max_to_keep=config.train.max_to_keep)
        trainer = _Trainer(run, workdir, ckpt, lead)
        stop = signals.StopRequest()  # SIGINT / SIGTERM: checkpoint after this step, then stop
        try:
            trainer.restore()  # restore
            if not trainer.train_epochs(stop):  # epochs
                return {"interrupted": True, "step": trainer.step}
        except KeyboardInterrupt as e:  # a second Ctrl-C (the first one stops cleanly)
            raise _interrupted_at_once(trainer.step, workdir) from e
        finally:
            trainer.close()
            stop.restore()  # last: its deadline also covers a close that hangs
        done = (
            f"during the final evaluation; training is done and checkpointed (step "
            f"{trainer.step}) in {workdir}: run again to evaluate it"
        )
        with signals.signals_interrupt(done):  # no clean stop here: one line, exit 130 or 143
            written = workdir if lead else None
            results = final_results(run, trainer.state.params, trainer.meta, trainer.step, written)
            results = json_safe(results)  # a NaN metric: null, with the reason beside it
            if lead:
                write_json(os.path.join(workdir, "results.json"), results)
    print_results(results)
    return results


def _interrupted_at_once(step: int, workdir: str) -> signals.Interrupted:
    """What a second SIGINT during training says: where it stopped, and what is kept."""
    latest = latest_meta(workdir)
    kept = (
        f"the last complete checkpoint, step {latest[0]}, is kept: run again to resume from it"
        if latest is not None
        else "no checkpoint was saved: running again starts over"
    )
    return signals.Interrupted(f"SIGINT again: stopped at once after step {step}; {kept}")


@contextlib.contextmanager
def _out_of_memory_said(config: ml_collections.ConfigDict, workdir: str) -> Iterator[None]:
    """Turns running out of memory in the block (XLA's RESOURCE_EXHAUSTED, or a MemoryError)
    into an `OutOfMemoryError` saying what to change and whether the workdir takes it."""
    try:
        yield
    except Exception as e:
        oom = causes.out_of_memory(e)
        if oom is None or isinstance(e, causes.OutOfMemoryError):
            raise
        latest = latest_meta(workdir)
        if latest is None:
            kept = "No checkpoint was saved, so this --workdir takes the changed config."
        else:
            kept = (
                f"Checkpoint {latest[0]} in {workdir} resumes with the same config only: train "
                "a smaller one in a new --workdir."
            )
        raise causes.OutOfMemoryError(
            f"out of memory ({causes.first_line(oom) or type(oom).__name__}). Lower "
            f"--config.train.batch_size={config.train.batch_size} (or "
            f"--config.eval.batch_size={config.eval.batch_size}, or the model's size), or use a "
            f"device with more memory. {kept}"
        ) from e


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
        "skipped_steps": 0,  # steps train.on_nan=skip skipped, over the whole run
    }


class _Trainer:
    """The state of one training run between `restore` and `close`: the train state, the best
    parameters, the position and counters (`meta`), the writers and the steps."""

    def __init__(self, run: Run, workdir: str, ckpt: Checkpointer, lead: bool) -> None:
        self.run, self.workdir, self.ckpt, self.lead = run, workdir, ckpt, lead
        self.config = run.config
        fresh = create_train_state(run.params, run.tx, self.config.seed, run.model_def.carry)
        self.state = run.place.put(fresh)
        self._step = int(fresh.step)
        self.best_params = self.state.params
        self.meta = _fresh_meta()
        self.writer: Any = NullWriter()
        self.pbar: Any = None
        self.pending: list = []

    @property
    def step(self) -> int:
        """`state.step`, counted on the host: reading the device's value after each step
        waits for that step to finish before the next is dispatched, so that on an accelerator
        the host's batch and bookkeeping would run while the device idles (on 2 CPU cores, where
        they share the cores anyway, G2P measured the same: 15.6-16.1 steps/s both ways)."""
        return self._step

    def restore(self) -> None:
        """Resumes from the newest readable checkpoint, if there is one; opens the writers."""
        restored = self.ckpt.latest_step()
        if restored is not None:
            restored, self.state, self.best_params, self.meta = storage.restore_latest_readable(
                self.ckpt, self.state, self.best_params
            )
            self._step = int(self.state.step)
            if self.meta["done"]:
                print(f"{self.workdir} holds a finished run (step {restored}): evaluating it")
            else:
                where = f"epoch {self.meta['epoch']}, batch {self.meta['batch']}"
                print(f"Resuming {self.workdir} at step {restored} ({where})")
        if self.lead:
            self.writer = MetricWriter(self.workdir, resume_step=restored)

    def train_epochs(self, stop: signals.StopRequest) -> bool:
        """Trains until done (True), or until `stop` is signalled or `train.stop_after_steps`
        (False)."""
        run, t, meta = self.run, self.config.train, self.meta
        spe = run.steps_per_epoch
        total = t.num_steps if t.num_steps else t.num_epochs * spe
        train_step, eval_step = run.train_step(self.state), run.eval_step()
        self.sums = MetricSums(meta["train_sums"])
        self.pbar = tqdm(
            total=total, initial=min(self.step, total), disable=not (t.progress_bar and self.lead),
            unit="step", desc=str(self.config.model.name), dynamic_ncols=True,
        )  # fmt: skip
        self.clock, self.clock_step = time.perf_counter(), self.step
        if not meta["done"]:
            self.check_hooks(eval_step)
        while not meta["done"]:
            epoch = meta["epoch"]
            for i, batch in run.epoch(epoch, start=meta["batch"]):
                self.state, m = train_step(self.state, batch)
                self._step += 1
                step = self.step
                self.pending.append(m)
                self.pbar.update(1)
                meta["epoch"], meta["batch"] = divmod(step, spe)
                epoch_end = i + 1 == spe
                if t.num_steps:
                    at_end = step >= t.num_steps
                else:
                    at_end = epoch_end and epoch + 1 >= t.num_epochs
                self._log_and_evaluate(eval_step, epoch_end, at_end)
                if self._checkpoint_due(epoch, epoch_end):
                    self.save()
                if meta["done"]:
                    break
                signalled = stop.agreed(step)
                if signalled or (t.stop_after_steps and step >= t.stop_after_steps):
                    self.save()
                    why = "a signal" if signalled else "train.stop_after_steps"
                    print(f"Stopped by {why} at step {step}, checkpointed: run again to resume.")
                    return False
        return True

    def _log_and_evaluate(self, eval_step, epoch_end: bool, at_end: bool) -> None:
        run, t, ev, meta, step = self.run, self.config.train, self.config.eval, self.meta, self.step
        has_val = run.has("val")
        every = ev.every_steps and step % ev.every_steps == 0
        do_eval = has_val and (at_end or (every if ev.every_steps else epoch_end))
        row: dict[str, Any] = {}
        if do_eval or at_end or (t.log_every_steps and step % t.log_every_steps == 0):
            self.flush()
            now = time.perf_counter()
            row = {"step": step, "epoch": round(step / run.steps_per_epoch, 4)}
            row.update(summarize(self.sums.sums, "train_"))
            if self.sums.sums.get("nonfinite"):
                row["train_nonfinite_steps"] = self.sums.sums["nonfinite"]
            row["steps_per_sec"] = (step - self.clock_step) / max(now - self.clock, 1e-9)
            self.clock, self.clock_step, self.sums = now, step, MetricSums()
        if do_eval:
            val = evaluate_split(run, eval_step, self.state.params, "val")
            row.update({f"eval_{k}": v for k, v in val.items()})
            loss = val["loss"]
            if not math.isfinite(loss):  # never an improvement: NaN compares False to anything
                print(
                    f"warning: validation loss at step {step} is {loss}, not counted as an "
                    "improvement (early stopping keeps the best finite one)"
                )
                meta["bad_evals"] += 1
            elif meta["best_loss"] is None or loss < meta["best_loss"] - t.min_delta:
                meta.update(best_loss=loss, best_step=step, bad_evals=0)
                self.best_params = self.state.params
            else:
                meta["bad_evals"] += 1
            if t.patience and meta["bad_evals"] >= t.patience:
                meta["stopped_early"] = True
            row["eval_best_loss"] = meta["best_loss"]
        if at_end or meta["stopped_early"]:
            if meta.get("skipped_steps", 0) >= step:  # nothing trained: no results of it
                raise nonfinite.NonFiniteLossError(
                    step, self.ckpt.latest_step(), self.workdir, cause="every_step"
                )
            meta["done"] = True
            if t.patience and has_val and meta["best_step"] is not None:
                self.state = self.state._replace(params=self.best_params)
        if row:
            self.writer.write(row)
            shown = {
                "train_loss": "loss",
                "eval_loss": "val_loss",
                "eval_token_accuracy": "val_acc",
            }
            post = {v: row[k] for k, v in shown.items() if k in row}
            if do_eval:
                base = ("loss", "token_accuracy", "sequence_accuracy", "best_loss")
                post.update({k: v for k, v in scalars(val).items() if k not in base})
            self.pbar.set_postfix({k: f"{v:.3f}" for k, v in post.items()}, refresh=False)

    def check_hooks(self, eval_step) -> None:
        """Runs the evaluation hooks once on a few test rows when there is no validation split
        (their first evaluation would otherwise come only after all of training), so that a
        failing hook ends the run now; with one, the first evaluation on it comes at the first
        epoch end (or `eval.every_steps`). What they return here is dropped; they write no file.
        """
        run = self.run
        if split_size(run.task["val"]) and not run.has("val"):  # rows, no target steps
            print(
                f"Note: {absent('val', run.task['val'])['absent']}: no evaluation during training"
            )
        if not run.hooks or run.has("val") or not run.has("test"):
            return
        test = run.task["test"]
        rows = np.flatnonzero(np.any(test["mask"], axis=1))[:HOOK_CHECK_ROWS]
        few = {k: np.asarray(v)[rows] for k, v in test.items()}
        evaluate(
            eval_step, self.state.params, few, run.eval_batch_size, run.place.eval_batches,
            hooks=run.hooks, split_name="test", make_model=run.model_maker(self.state.params),
        )  # fmt: skip

    def _checkpoint_due(self, epoch: int, epoch_end: bool) -> bool:
        t, step = self.config.train, self.step
        every_steps, every_epochs = t.checkpoint_every_steps, t.checkpoint_every_epochs
        return bool(
            self.meta["done"]
            or (every_steps and step % every_steps == 0)
            or (every_epochs and epoch_end and (epoch + 1) % every_epochs == 0)
        )

    def flush(self) -> None:
        """Adds the pending steps' metrics to the running sums; stops on a non-finite loss."""
        host = jax.device_get(self.pending)
        bad = nonfinite.nonfinite_steps(host, self.step)
        if bad and self.config.train.get("on_nan", "stop") == "stop":
            cause = nonfinite.nonfinite_cause(host, self.step, bad[0])
            raise nonfinite.NonFiniteLossError(
                bad[0], self.ckpt.latest_step(), self.workdir, cause=cause
            )
        if bad:
            print(f"Skipped step(s) {bad}: non-finite loss, gradient or update (train.on_nan=skip)")
            self.meta["skipped_steps"] = self.meta.get("skipped_steps", 0) + len(bad)
        self.sums.add_all(host)
        self.pending.clear()

    def save(self) -> None:
        self.flush()
        self.meta["train_sums"] = self.sums.sums
        self.ckpt.save(self.step, self.state, self.best_params, self.meta)

    def close(self) -> None:
        if self.pbar is not None:
            self.pbar.close()
        self.writer.close()
        self.ckpt.close()


def evaluate_split(
    run: Run, eval_step, params, split_name: str, workdir: str | None = None
) -> dict[str, Any]:
    """`evaluate` of `params` on `run`'s split `split_name`, with the run's hooks (which may
    write files into `workdir`)."""
    return evaluate(
        eval_step, params, run.task[split_name], run.eval_batch_size, run.place.eval_batches,
        hooks=run.hooks, split_name=split_name, make_model=run.model_maker(params),
        workdir=workdir,
    )  # fmt: skip


def final_results(
    run: Run, params, meta: dict, step: int, workdir: str | None = None
) -> dict[str, Any]:
    """What `results.json` holds: how training ended, and validation and test metrics (the hooks
    may write files of their own into `workdir`)."""
    config = run.config
    has_val = run.has("val")
    eval_step = run.eval_step()
    results: dict[str, Any] = {
        "model": config.model.name,
        "seed": config.seed,
        "steps": step,
        "epochs": math.ceil(step / run.steps_per_epoch),
        "stopped_early": meta["stopped_early"],
        "best_step": meta["best_step"],
        "skipped_steps": meta.get("skipped_steps", 0),  # train.on_nan=skip
        # Early stopping (patience > 0) restores the parameters of the best finite validation
        # loss; otherwise (or with none finite) the final ones.
        "restored_best": bool(config.train.patience and has_val and meta["best_step"] is not None),
    }
    # A split without target steps (none given, say) has its metrics marked absent.
    results["val"] = evaluate_split(run, eval_step, params, "val", workdir)
    results["test"] = evaluate_split(run, eval_step, params, "test", workdir)
    return results


def print_results(results: dict[str, Any]) -> None:
    """Prints how training ended, the test metrics, and every number the hooks added."""
    test = results["test"]
    how = "early stopping" if results["stopped_early"] else "epoch limit"
    val = results.get("val") or {}
    if results["best_step"] is None and val and not val.get("absent"):  # evaluated, never finite
        params = "final parameters: no validation loss was finite"
    elif results["best_step"] is None or not results.get("restored_best", True):
        params = "final parameters"
    else:
        params = f"parameters of the best validation loss, step {results['best_step']}"
    lines = [f"Done: {results['steps']} steps, {results['epochs']} epochs ({how}; {params})."]
    if test.get("absent"):
        lines.append(f"Test: no metrics, {test['absent']}")
    else:
        lines.append(
            f"Test: loss {_shown(test, 'loss')}, token accuracy {_shown(test, 'token_accuracy')}, "
            f"sequence accuracy {_shown(test, 'sequence_accuracy')}"
        )
    base = ("loss", "token_accuracy", "sequence_accuracy")
    extra = {k: v for k, v in scalars(test).items() if k not in base}
    if extra:
        lines.append("Test, " + ", ".join(f"{k} {v:.4f}" for k, v in extra.items()))
    for key, values in test.items():
        if isinstance(values, list):
            shown = ("null" if a is None else f"{a:.2f}" for a in values)
            lines.append(f"Test {key.replace('_', ' ')}: " + " ".join(shown))
    print("\n".join(lines))


def _shown(metrics: dict[str, Any], key: str) -> str:
    """`metrics[key]` to 4 decimals; a null (a NaN written as null, `json_safe`) as `null`."""
    value = metrics.get(key)
    return "null" if value is None else f"{value:.4f}"
