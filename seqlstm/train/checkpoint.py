"""Checkpoints (orbax) and the workdir's identity (`config.json`).

A checkpoint at step s holds two items:

  state  (orbax StandardSave): the `TrainState` (params, optimizer state, step, rng, and the
         state the model carries between batches, where it carries any) and the early-stopping
         parameters `best_params`.
  meta   (JSON): the data position (`epoch`, `batch` index within that epoch's permutation), the
         early-stopping counters, the metric sums since the last log, and `done`.

Saving is synchronous, and a step that is already saved is never written again. orbax writes a
checkpoint under a temporary name and renames it once complete, so a save killed midway is never
listed; its leftovers are removed when the next run opens the directory. Once complete, the
SHA-256 of each of its files goes into `<step>/checksums.json`; `restore` checks them first, so a
damaged file (one flipped bit) is an error, never parameters loaded silently wrong. A failed save
raises `WorkdirWriteError` ("disk full writing <path>"); the checkpoints before it are intact.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp

from seqlstm.train.causes import first_line, is_disk_full
from seqlstm.train.storage import (
    CorruptCheckpointError,
    WorkdirWriteError,
    after_failure,
    quiet_logs,
)
from seqlstm.train.workdir import read_json, write_json

CHECKSUMS = "checksums.json"

# How long a run lasts: these may change on resuming, but never past where the run already is.
LENGTH_KEYS = ("train.num_epochs", "train.num_steps")

# Keys that may change between a run and its resumption: they steer how long or how verbosely
# the run goes on, never what it computes up to the step it resumes from.
RESUMABLE_KEYS = (
    "train.num_epochs",
    "train.num_steps",
    "train.stop_after_steps",
    "train.log_every_steps",
    "train.checkpoint_every_steps",
    "train.checkpoint_every_epochs",
    "train.max_to_keep",
    "train.progress_bar",
    "train.malloc_arenas",  # how the host allocates, not what the run computes
    # How the steps are spread over devices changes their results by float rounding only, so a
    # run preempted on 8 devices may resume on 4; the non-finite policy matters only once a loss
    # is NaN, and switching to "skip" is how such a run is resumed.
    "train.on_nan",
    "parallel.mesh_shape",
    "parallel.axis_names",
    "parallel.data_axis",
    "parallel.param_axis",
    "parallel.min_param_size",
)


# Keys added to every config after runs were saved without them, and the value that computes what
# those runs computed: a workdir's config.json lacking the key resumes at that value.
ADDED_KEYS = {"train.label_smoothing": 0.0}


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def config_diff(old: dict, new: dict) -> dict[str, tuple[Any, Any]]:
    """`{dotted key: (old, new)}` for every key whose value differs or exists in one only."""
    a, b = _flatten(old), _flatten(new)
    missing = object()
    diff = {}
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k, missing), b.get(k, missing)
        if va != vb:
            diff[k] = (None if va is missing else va, None if vb is missing else vb)
    return diff


def latest_meta(workdir: str) -> tuple[int, dict] | None:
    """`(step, meta)` of the newest checkpoint in `workdir` whose meta reads, read without
    orbax (cheap); None when there is none."""
    ckpt_dir = os.path.join(workdir, "checkpoints")
    steps = sorted(
        (int(n) for n in (os.listdir(ckpt_dir) if os.path.isdir(ckpt_dir) else ()) if n.isdigit()),
        reverse=True,
    )
    for step in steps:
        try:
            with open(os.path.join(ckpt_dir, str(step), "meta", "metadata")) as f:
                return step, json.load(f)
        except (OSError, ValueError):
            continue
    return None


def _check_length(changed: dict[str, tuple[Any, Any]], new: dict, workdir: str) -> bool:
    """Refuses a change of the run's length that cannot apply where the run is; returns whether
    the workdir's run is finished (its config.json then stays as it is: it did not run again)."""
    latest = latest_meta(workdir)
    if latest is None:
        return False
    step, meta = latest
    length = {k: changed[k] for k in LENGTH_KEYS if k in changed}
    what = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in length.items())
    if meta.get("done"):
        if length:
            raise ValueError(
                f"workdir {workdir!r} holds a finished run ({step} steps); {what} cannot apply to "
                "it: running a finished workdir again only re-evaluates it. To train longer, "
                "train in a new --workdir; to re-evaluate, drop the override."
            )
        return True
    train = new.get("train", {})
    epoch = meta.get("epoch", 0)
    if length and train.get("num_steps") and train["num_steps"] <= step:
        raise ValueError(
            f"workdir {workdir!r} holds a run already at step {step}; {what} would not stop it "
            f"there. Pass --config.train.num_steps above {step}, or use a new --workdir."
        )
    if length and not train.get("num_steps") and train.get("num_epochs", 0) <= epoch:
        raise ValueError(
            f"workdir {workdir!r} holds a run already {epoch} epochs in (step {step}); {what} "
            f"would not stop it there. Pass --config.train.num_epochs above {epoch}, or use a "
            "new --workdir."
        )
    return False


def has_checkpoint(workdir: str) -> bool:
    """Whether `workdir/checkpoints/` lists a checkpoint (complete or not, readable or not; a
    save cut short, orbax's temporary name, does not count)."""
    ckpt_dir = os.path.join(workdir, "checkpoints")
    return os.path.isdir(ckpt_dir) and any(n.isdigit() for n in os.listdir(ckpt_dir))


def prepare_workdir(config: ml_collections.ConfigDict, workdir: str, write: bool = True) -> bool:
    """Checks that `workdir` is empty or holds a compatible run, then writes `config.json`.

    `config.json` states what the run did: a finished run is only re-evaluated, so its
    `config.json` is left as it is, and a change of its length (`LENGTH_KEYS`) is refused; so is a
    length an unfinished run is already past. A `config.json` whose run saved no checkpoint
    (it failed before its first) is replaced by `config`, with one line saying so.

    Args:
      config: the run's config.
      workdir: the run's directory (created if missing).
      write: False only checks (every process of a multi-process run but the first).

    Returns:
      True when the workdir already holds this run's checkpoints (so training resumes), False
      when it starts afresh.

    Raises:
      ValueError: if the workdir holds checkpoints without a `config.json`, an unreadable
        `config.json`, a run whose config differs in a key outside `RESUMABLE_KEYS`, or a run a
        length change cannot apply to. Nothing is written in that case.
      seqlstm.train.storage.WorkdirWriteError: `config.json` could not be written.
    """
    path = os.path.join(workdir, "config.json")
    ckpt_dir = os.path.join(workdir, "checkpoints")
    new = json.loads(config.to_json_best_effort())
    finished = False
    if os.path.exists(path):
        try:
            old = read_json(path)
        except ValueError as e:
            raise ValueError(
                f"{e}; it records the run's config: restore it, or use a new --workdir"
            ) from None
        diff = config_diff(old, new)
        saved = _flatten(old)
        for key, value in ADDED_KEYS.items():
            if key not in saved and diff.get(key, (None, value))[1] == value:
                diff.pop(key, None)
        incompatible = {k: v for k, v in diff.items() if k not in RESUMABLE_KEYS}
        if incompatible and not has_checkpoint(workdir):
            # The run that wrote it saved nothing to resume (it ran out of memory, say): the
            # corrected config starts the run afresh.
            changed = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in incompatible.items())
            if write:
                print(f"{path} is of a run that saved no checkpoint: replaced ({changed})")
            incompatible, resuming = {}, False
        if incompatible:
            lines = "\n".join(
                f"  {k}: {a!r} -> {b!r}" for k, a, b in ((k, *v) for k, v in incompatible.items())
            )
            raise ValueError(
                f"workdir {workdir!r} holds a run with a different config; refusing to resume it "
                f"or overwrite its checkpoints. Differences (workdir -> now):\n{lines}\n"
                "Use a new --workdir, or the workdir's config."
            )
        finished = _check_length(diff, new, workdir)
        resuming = has_checkpoint(workdir)
    elif os.path.isdir(ckpt_dir) and os.listdir(ckpt_dir):
        raise ValueError(
            f"workdir {workdir!r} has checkpoints but no config.json, so its run cannot be "
            "identified; refusing to touch it. Use a new --workdir."
        )
    else:
        resuming = False
    if not write or finished:
        return resuming
    os.makedirs(workdir, exist_ok=True)
    write_json(path, new, sort_keys=True)
    return resuming


class Checkpointer:
    """Saves and restores (`TrainState`, best params, meta) in `workdir/checkpoints/`.

    Args:
      workdir: the run's directory.
      max_to_keep: number of most recent checkpoints kept.
    """

    def __init__(self, workdir: str, max_to_keep: int = 3):
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            enable_async_checkpointing=False,
            create=True,
            cleanup_tmp_directories=True,
        )
        directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
        with quiet_logs():  # a damaged checkpoint's metadata is reported when restoring it
            self.manager = ocp.CheckpointManager(directory, options=options)
        self._closed = False

    def latest_step(self) -> int | None:
        with quiet_logs():
            return self.manager.latest_step()

    def _step_dir(self, step: int) -> str:
        return os.path.join(str(self.manager.directory), str(step))

    def save(self, step: int, state, best_params, meta: dict) -> bool:
        """Saves at `step` unless that step is already saved; returns whether it wrote.

        Raises:
          seqlstm.train.storage.WorkdirWriteError: the save failed (e.g. the disk is full); the
            half-written step is not listed, the earlier checkpoints are intact.
        """
        if step in self.manager.all_steps():
            return False
        tree = {"train": _state_tree(state), "best_params": best_params}
        try:
            with quiet_logs():
                self.manager.save(
                    step,
                    args=ocp.args.Composite(
                        state=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(meta)
                    ),
                )
                self.manager.wait_until_finished()
        except Exception as e:
            if isinstance(e, OSError) or is_disk_full(e):
                raise WorkdirWriteError(self._step_dir(step), e) from e
            raise
        if jax.process_index() == 0:
            write_json(
                os.path.join(self._step_dir(step), CHECKSUMS), file_checksums(self._step_dir(step))
            )
        return True

    def verify(self, step: int) -> None:
        """Checks checkpoint `step`'s files against its `checksums.json`.

        A checkpoint without one (saved before checksums were kept, or cut short between its
        last file and its checksums) passes unverified.

        Raises:
          CorruptCheckpointError: naming the files that are missing or differ.
        """
        directory = self._step_dir(step)
        path = os.path.join(directory, CHECKSUMS)
        if not os.path.exists(path):
            return
        try:
            expected = read_json(path)
        except ValueError as e:
            raise CorruptCheckpointError(f"checkpoint {directory} is damaged: {e}") from None
        actual = file_checksums(directory)
        bad = sorted(name for name, digest in expected.items() if actual.get(name) != digest)
        if bad:
            missing = [n for n in bad if n not in actual]
            shown = ", ".join(n + (" (missing)" if n in missing else "") for n in bad[:5])
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            raise CorruptCheckpointError(
                f"checkpoint {directory} is damaged: {shown}{more} differ from {CHECKSUMS}"
            )

    def restore(
        self, state_like, best_params_like, step: int | None = None
    ) -> tuple[Any, Any, dict]:
        """Restores checkpoint `step` (default: the latest) into the structure, and the
        shardings, of the given templates, after checking its files' checksums.

        Returns:
          `(state, best_params, meta)`; `state` has the type of `state_like`.

        Raises:
          CorruptCheckpointError: a file differs from its checksum, or the checkpoint does not
            read back (its files damaged or lost, with no checksums to tell which).
          FileNotFoundError: there is no checkpoint.
        """
        step = self.manager.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError("no checkpoint to restore")
        self.verify(step)
        tree = {"train": _state_tree(state_like), "best_params": best_params_like}
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)
        try:
            with quiet_logs():
                out = self.manager.restore(
                    step,
                    args=ocp.args.Composite(
                        state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
                    ),
                )
        except Exception as e:  # noqa: BLE001 -- orbax and TensorStore raise plain Exceptions
            # (with no checksums.json to catch the damage first): one error that names it
            raise CorruptCheckpointError(
                f"checkpoint {self._step_dir(step)} does not read back ({type(e).__name__}: "
                f"{first_line(e)})"
            ) from e
        train = {"carry": state_like.carry, **out.state["train"]}
        return type(state_like)(**train), out.state["best_params"], dict(out.meta)

    def close(self) -> None:
        """Waits for pending writes and closes; idempotent. Called while another error is being
        raised, its own errors are dropped (that first error is the one to report)."""
        if self._closed:
            return
        self._closed = True
        with after_failure(), quiet_logs():
            self.manager.wait_until_finished()
            self.manager.close()


def _state_tree(state) -> dict[str, Any]:
    """`state` as the dict a checkpoint holds; a carried state with no arrays is left out, so a
    model that carries nothing saves exactly what it saved before carried state existed."""
    tree = state._asdict()
    if not jax.tree.leaves(tree.get("carry")):
        tree.pop("carry", None)
    return tree


def file_checksums(directory: str) -> dict[str, str]:
    """`{path relative to directory: SHA-256}` of every file under `directory` but
    `checksums.json`."""
    out = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, directory)
            if rel == CHECKSUMS or rel.endswith(".tmp"):
                continue
            with open(path, "rb") as f:
                out[rel] = hashlib.file_digest(f, "sha256").hexdigest()
    return out
