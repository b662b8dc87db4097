"""Tests for seqlstm/train/faults.py: NaN losses, SIGTERM, a run killed mid-save, a full disk,
torn and damaged files, with real signals on real subprocesses."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from launcher import stopped_step, wait_for_metrics

from configs.reverse import get_config
from seqlstm.train import (
    Checkpointer,
    build,
    create_train_state,
    faults,
    run,
    split_model,
    train_and_evaluate,
)
from seqlstm.train.state import TrainState

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, JAX_PLATFORMS="cpu")


def smoke(**train):
    config = get_config("smoke")
    config.train.progress_bar = False
    config.train.update(train)
    return config


def final_params(workdir):
    _, model, tx = build(smoke())
    _, params = split_model(model)
    ckpt = Checkpointer(str(workdir))
    try:
        state, _, meta = ckpt.restore(create_train_state(params, tx, 0), params)
    finally:
        ckpt.close()
    return [np.asarray(x) for x in jax.tree.leaves((state.params, state.opt_state))], meta


def assert_same_params(a, b):
    for x, y in zip(final_params(a)[0], final_params(b)[0], strict=True):
        np.testing.assert_array_equal(x, y)


def read_rows(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


EPOCHS = 10  # of the reference run: 40 steps of 4 a epoch


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted smoke run of `EPOCHS` epochs."""
    workdir = tmp_path_factory.mktemp("reference")
    train_and_evaluate(smoke(num_epochs=EPOCHS), str(workdir))
    return workdir


@pytest.fixture(scope="module")
def stopped_at_8(tmp_path_factory):
    """A smoke run stopped after step 8, with checkpoints at 4 and 8 (tests damage copies)."""
    workdir = tmp_path_factory.mktemp("stopped_at_8")
    train_and_evaluate(smoke(checkpoint_every_steps=4, stop_after_steps=8), str(workdir))
    return workdir


def copy_of(workdir, tmp_path):
    shutil.copytree(workdir, tmp_path / "run")
    return tmp_path / "run"


# --- non-finite losses -------------------------------------------------------------------------


def toy_step(state, batch):
    loss = jnp.sum(state.params["w"] * batch)
    grads = {"w": batch}
    new = state._replace(step=state.step + 1, params={"w": state.params["w"] - grads["w"]})
    new = new._replace(opt_state={"m": state.opt_state["m"] + 1.0})
    metrics = {"loss_sum": loss, "tokens": jnp.float32(3.0), "grad_norm": jnp.linalg.norm(batch)}
    return new, metrics


def test_guard_passes_finite_steps_and_freezes_nonfinite_ones():
    state = TrainState(jnp.int32(4), {"w": jnp.ones(3)}, {"m": jnp.zeros(3)}, jnp.zeros(2))
    step = jax.jit(faults.guard_nonfinite(toy_step))
    ok = jnp.array([1.0, 2.0, 3.0])
    new, m = step(state, ok)
    ref_new, ref_m = toy_step(state, ok)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), new, ref_new))
    assert float(m["nonfinite"]) == 0.0 and float(m["loss_sum"]) == float(ref_m["loss_sum"])
    for bad in (jnp.array([1.0, jnp.nan, 3.0]), jnp.array([jnp.inf, 0.0, 0.0])):
        new, m = step(state, bad)
        assert int(new.step) == 5  # the batch is consumed
        np.testing.assert_array_equal(new.params["w"], state.params["w"])
        np.testing.assert_array_equal(new.opt_state["m"], state.opt_state["m"])
        assert float(m["nonfinite"]) == 1.0
        assert float(m["loss_sum"]) == 0.0 and float(m["tokens"]) == 0.0


def test_nonfinite_steps_are_numbered_like_metrics_rows():
    metrics = [{"nonfinite": 0.0}, {"nonfinite": 1.0}, {"nonfinite": 0.0}, {"nonfinite": 1.0}]
    assert faults.nonfinite_steps(metrics, last_step=10) == [8, 10]
    assert faults.nonfinite_steps([], last_step=3) == []


def test_on_nan_is_checked_before_touching_the_workdir(tmp_path):
    with pytest.raises(ValueError, match=r"on_nan must be one of \('stop', 'skip'\), got 'ignore'"):
        train_and_evaluate(smoke(on_nan="ignore"), str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def poison_step_6(monkeypatch):
    """Makes the batch of step 6 (epoch 1, batch 1; 4 batches an epoch) hold a NaN input."""
    batches = run.train_batches

    def poisoned(split, batch_size, *, seed, epoch, start=0):
        for i, batch in batches(split, batch_size, seed=seed, epoch=epoch, start=start):
            if (epoch, i) == (1, 1):
                batch = dict(batch, inputs=batch["inputs"].copy())
                batch["inputs"][0, 0, 0] = np.nan
            yield i, batch

    monkeypatch.setattr(run, "train_batches", poisoned)


def test_nan_stops_naming_the_step_and_keeps_the_last_good_checkpoint(
    tmp_path, monkeypatch, capsys
):
    poison_step_6(monkeypatch)
    with pytest.raises(faults.NonFiniteLossError, match="at step 6") as info:
        train_and_evaluate(smoke(checkpoint_every_steps=4), str(tmp_path))
    assert (info.value.step, info.value.checkpoint) == (6, 4)
    assert "last good checkpoint is step 4" in str(info.value) and "on_nan=skip" in str(info.value)
    assert os.listdir(tmp_path / "checkpoints") == ["4"]  # step 8 was not saved
    assert not (tmp_path / "results.json").exists()
    params, meta = final_params(tmp_path)
    assert all(np.isfinite(p).all() for p in params) and (meta["epoch"], meta["batch"]) == (1, 0)

    # Resuming with the skip policy (a resumable key) gets past the bad batch.
    capsys.readouterr()
    results = train_and_evaluate(smoke(on_nan="skip"), str(tmp_path))
    out = capsys.readouterr().out
    assert "Resuming" in out and "at step 4" in out and "Skipped step(s) [6]" in out
    rows = read_rows(tmp_path)
    assert [r.get("train_nonfinite_steps") for r in rows] == [None, 1.0, None]
    assert all(np.isfinite(r["train_loss"]) for r in rows)
    assert results["steps"] == 12 and np.isfinite(results["test"]["loss"])
    assert all(np.isfinite(p).all() for p in final_params(tmp_path)[0])


# --- checkpoints -------------------------------------------------------------------------------

STALL_SECOND_SAVE = textwrap.dedent(
    """
    import sys, time
    from orbax.checkpoint._src.handlers import json_checkpoint_handler as handler
    from configs.reverse import get_config
    from seqlstm.train import train_and_evaluate

    save, saves = handler.JsonCheckpointHandler.async_save, []

    async def stalling_save(self, directory, *args, **kwargs):
        out = await save(self, directory, *args, **kwargs)
        saves.append(directory)
        if len(saves) == 2:  # step 8: meta written, the rest not yet
            print("STALLED", directory, flush=True)
            time.sleep(120)
        return out

    handler.JsonCheckpointHandler.async_save = stalling_save
    config = get_config("smoke")
    config.train.progress_bar = False
    config.train.checkpoint_every_steps = 4
    train_and_evaluate(config, sys.argv[1])
    """
)


def test_an_unreadable_checkpoint_is_set_aside_and_an_older_one_resumed(
    reference, stopped_at_8, tmp_path, capsys
):
    workdir = copy_of(stopped_at_8, tmp_path)
    # Checkpoint 8 loses its arrays after it was written (a copy cut short, a damaged disk).
    shutil.rmtree(workdir / "checkpoints" / "8" / "state")
    capsys.readouterr()
    train_and_evaluate(smoke(num_epochs=EPOCHS), str(workdir))
    out = capsys.readouterr().out
    assert "Checkpoint 8" in out and "does not read back" in out and "at step 4" in out
    assert os.listdir(workdir / "checkpoints-unreadable") == ["8"]
    assert_same_params(workdir, reference)


# --- SIGTERM -----------------------------------------------------------------------------------


def test_sigterm_checkpoints_exits_cleanly_and_resumes_exactly(reference, tmp_path):
    workdir = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "experiments.train",
            "--config=configs/reverse.py:smoke",
            "--config.train.num_epochs=500",  # far more than the test waits for
            "--config.train.progress_bar=False",
            f"--workdir={workdir}",
        ],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_metrics(workdir)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    step = stopped_step(out)
    assert str(step) in os.listdir(workdir / "checkpoints")

    # Resume and finish; compare with an uninterrupted run of the same length.
    epochs = EPOCHS
    if step >= 4 * EPOCHS - 4:  # the signal came late (a loaded machine): a longer reference
        epochs, reference = step // 4 + 2, tmp_path / "reference"
        train_and_evaluate(smoke(num_epochs=epochs), str(reference))
    train_and_evaluate(smoke(num_epochs=epochs), str(workdir))
    assert_same_params(workdir, reference)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "steps_per_sec"} for r in rows]
    assert strip(read_rows(workdir)) == strip(read_rows(reference))


# --- issue 15: a full disk, torn files, damaged checkpoints, signals that must end the run -----

FILL_DISK_AT_TENSORBOARD = textwrap.dedent(
    """
    import errno, runpy, sys
    from seqlstm.train.tfevents import EventFile

    init, calls = EventFile.__init__, []

    class FillingDisk:  # the disk fills after the first few TensorBoard records
        def __init__(self, file):
            self.file = file

        def write(self, data):
            calls.append(1)
            if len(calls) > 12:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.file.write(data)

        def close(self):
            self.file.close()

    def on_a_filling_disk(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self._file = FillingDisk(self._file)

    EventFile.__init__ = on_a_filling_disk
    sys.argv = ["train", "--config=configs/reverse.py:smoke", "--config.train.num_epochs=50",
                "--config.train.checkpoint_every_steps=4", "--config.train.progress_bar=False",
                "--workdir=" + sys.argv[1]]
    runpy.run_module("experiments.train", run_name="__main__")
    """
)


def test_a_full_disk_while_writing_tensorboard_events_ends_the_run_in_one_line(tmp_path):
    # Before, tensorboardX's writer thread died on the error and training hung on its full queue.
    proc = subprocess.run(
        [sys.executable, "-c", FILL_DISK_AT_TENSORBOARD, str(tmp_path)],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith(f"error: disk full writing {tmp_path}/events.out.tfevents")
    step = Checkpointer(str(tmp_path)).latest_step()  # the last complete checkpoint reads back
    _, meta = final_params(tmp_path)
    assert step is not None and not meta["done"]


def test_a_torn_last_metrics_row_is_dropped_on_resume(reference, stopped_at_8, tmp_path, capsys):
    workdir = copy_of(stopped_at_8, tmp_path)
    with open(workdir / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 2.25, "step": 9, "train_lo')  # kill -9 or a full disk mid-write
    capsys.readouterr()
    train_and_evaluate(smoke(num_epochs=EPOCHS), str(workdir))
    assert "dropped line 3 of" in capsys.readouterr().out
    strip = lambda rows: [{k: v for k, v in r.items() if k != "steps_per_sec"} for r in rows]
    assert strip(read_rows(workdir)) == strip(read_rows(reference))


def flip_a_bit(directory):
    """Flips one bit in the middle of the largest file under `directory` (a data file)."""
    files = [os.path.join(r, n) for r, _, names in os.walk(directory) for n in names]
    path = max(files, key=os.path.getsize)
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x10]))
    return path


def test_a_flipped_bit_in_a_checkpoint_is_detected_and_an_older_one_resumed(
    reference, stopped_at_8, tmp_path, capsys
):
    workdir = copy_of(stopped_at_8, tmp_path)
    damaged = flip_a_bit(workdir / "checkpoints" / "8" / "state")
    capsys.readouterr()
    train_and_evaluate(smoke(num_epochs=EPOCHS), str(workdir))
    out = capsys.readouterr().out
    assert "Checkpoint 8" in out and "damaged" in out and "at step 4" in out, out
    assert os.path.relpath(damaged, workdir / "checkpoints" / "8") in out
    assert os.listdir(workdir / "checkpoints-unreadable") == ["8"]
    assert_same_params(workdir, reference)


def test_with_no_usable_checkpoint_the_launcher_says_which_and_what_to_do(stopped_at_8, tmp_path):
    workdir = copy_of(stopped_at_8, tmp_path)
    for step in ("4", "8"):  # every file replaced by random bytes
        for root, _, names in os.walk(workdir / "checkpoints" / step):
            for name in names:
                path = os.path.join(root, name)
                with open(path, "wb") as f:
                    f.write(np.random.default_rng(0).bytes(max(os.path.getsize(path), 64)))
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.train", "--config=configs/reverse.py:smoke",
         "--config.train.progress_bar=False", f"--workdir={workdir}"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr[-3000:]
    error = proc.stderr.strip()
    assert error.startswith(f"error: no checkpoint in {workdir}/checkpoints reads back")
    assert "step 8: " in error and "step 4: " in error and "move that directory aside" in error
    assert sorted(os.listdir(workdir / "checkpoints")) == ["4", "8"]  # nothing moved


STALL_SAVE_THEN_IGNORE_SIGTERM = STALL_SECOND_SAVE.replace(
    "from seqlstm.train import train_and_evaluate",
    "from seqlstm.train import faults, train_and_evaluate\nfaults.STOP_DEADLINE_S = 2.0",
)


def test_sigterm_ends_a_run_stuck_mid_save_and_the_last_complete_checkpoint_resumes(
    reference, tmp_path, capsys
):
    # The main thread is stuck in a checkpoint save (step 8: its metadata written, its arrays
    # not). Before, SIGTERM's handler only noted the signal and the run went on as if none had
    # come; now the watchdog ends the process within its deadline with os._exit, which, like
    # kill -9, runs no cleanup: the half-written checkpoint stays as the crash left it.
    proc = subprocess.Popen(
        [sys.executable, "-c", STALL_SAVE_THEN_IGNORE_SIGTERM, str(tmp_path)],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        assert line.startswith("STALLED"), line
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        proc.kill()
    assert "no clean stop within 2 s of SIGTERM" in proc.stderr.read()
    names = sorted(os.listdir(tmp_path / "checkpoints"))
    assert names == ["4", "8.orbax-checkpoint-tmp"], names  # 8 half-written, never renamed
    assert Checkpointer(str(tmp_path)).latest_step() == 4

    capsys.readouterr()
    train_and_evaluate(smoke(num_epochs=EPOCHS, checkpoint_every_steps=4), str(tmp_path))
    assert "Resuming" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["32", "36", "40"]
    assert_same_params(tmp_path, reference)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 150 kB tmpfs (smaller than one checkpoint of the smoke run); skipped where no tmpfs can
    be mounted (mounting needs root)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    cmd = ["mount", "-t", "tmpfs", "-o", "size=150k", "tmpfs", str(mount)]
    if subprocess.run(cmd, capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_really_full_disk_ends_the_run_in_one_line(tiny_disk):
    workdir = tiny_disk / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.train", "--config=configs/reverse.py:smoke",
         "--config.train.num_epochs=500", "--config.train.progress_bar=False",
         f"--workdir={workdir}"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: disk full writing {workdir}"), lines


def test_errors_python_can_only_print_stay_behind_the_one_line_error(capsys, monkeypatch):
    # A run that hit a full disk: orbax's asyncio callbacks failed again on the way down, and
    # Python printed their tracebacks ("Exception ignored in ...") above the one-line cause.
    from absl import logging as absl_logging

    from seqlstm.train.errors import WorkdirWriteError, one_line_errors

    class FailsOnDelete:
        def __del__(self):
            raise RuntimeError("Event loop is closed")

    def failing(argv):
        FailsOnDelete()  # dropped at once: its error can only be printed
        raise WorkdirWriteError("/run/metrics.jsonl", OSError(errno.ENOSPC, "No space left"))

    def fine(argv):
        FailsOnDelete()

    verbosity = absl_logging.get_verbosity()
    try:
        monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)
        with pytest.raises(SystemExit) as exit_:
            one_line_errors(failing)(["train"])
        assert exit_.value.code == 1
        err = capsys.readouterr().err
        assert err.startswith("error: disk full writing /run/metrics.jsonl"), err
        assert err.count("\n") == 1, err
        monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)
        one_line_errors(fine)(["train"])  # no error of its own: the held report is printed
        assert "RuntimeError: Event loop is closed" in capsys.readouterr().err
    finally:
        absl_logging.set_verbosity(verbosity)


# --- issue 23: one line on every path a user can reach -----------------------------------------


def test_a_second_sigint_stops_the_run_at_once_in_one_line(tmp_path, capsys, monkeypatch):
    # Ctrl-C twice: before, the second SIGINT's KeyboardInterrupt reached the launcher as a
    # traceback of a hundred lines (through orbax, wherever the main thread was).
    from seqlstm.train.errors import one_line_errors

    make_step = run.Run.train_step

    def twice_at_step_3(self, state):
        step = make_step(self, state)

        def signalled(state, batch):
            new, metrics = step(state, batch)
            if int(new.step) == 3:  # each handler runs as os.kill returns: the first requests a
                os.kill(os.getpid(), signal.SIGINT)  # stop, the second interrupts
                os.kill(os.getpid(), signal.SIGINT)
            return new, metrics

        return signalled

    monkeypatch.setattr(run.Run, "train_step", twice_at_step_3)
    main = lambda argv: train_and_evaluate(smoke(checkpoint_every_steps=2), str(tmp_path))
    try:
        with pytest.raises(SystemExit) as exit_:
            one_line_errors(main)(["train"])
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped the launcher: a traceback")
    assert exit_.value.code == 130
    assert capsys.readouterr().err == (
        "error: SIGINT again: stopped at once after step 2; the last complete checkpoint, "
        "step 2, is kept: run again to resume from it\n"
    )
    assert os.listdir(tmp_path / "checkpoints") == ["2"]


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_the_final_evaluation_is_one_line(reference, tmp_path, capsys, sig, code):
    # Before: SIGINT printed a KeyboardInterrupt traceback; SIGTERM ended the run silently.
    from seqlstm.train import loop
    from seqlstm.train.errors import one_line_errors

    workdir = copy_of(reference, tmp_path)  # finished: running it again only evaluates it
    evaluate = loop.evaluate

    def signalled_on_test(*args, **kwargs):
        if kwargs["split_name"] == "test":
            os.kill(os.getpid(), sig)
        return evaluate(*args, **kwargs)

    def unhandled(signum, frame):  # what SIGTERM's default would do: end pytest itself
        raise AssertionError("the signal reached the handler from before the run")

    monkeypatch = pytest.MonkeyPatch()
    previous = signal.signal(signal.SIGTERM, unhandled)
    try:
        with monkeypatch.context() as m, pytest.raises(SystemExit) as exit_:
            m.setattr(loop, "evaluate", signalled_on_test)
            main = lambda argv: train_and_evaluate(smoke(num_epochs=EPOCHS), str(workdir))
            one_line_errors(main)(["train"])
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped the launcher: a traceback")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert exit_.value.code == code
    err = capsys.readouterr().err
    name = signal.Signals(sig).name
    assert err == (
        f"error: {name} during the final evaluation; training is done and checkpointed (step "
        f"40) in {workdir}: run again to evaluate it\n"
    )
    assert not (workdir / "results.json.tmp").exists()


def test_out_of_memory_is_one_line_saying_what_to_change(tmp_path, capsys, monkeypatch):
    # XLA reports a full device as a JaxRuntimeError; before, a 77-line traceback.
    from seqlstm.train.errors import one_line_errors

    def train_step(self, state):
        def out_of_memory(state, batch):
            raise jax.errors.JaxRuntimeError(
                "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 17179869184 bytes.\n"
                "BufferAssignment OOM Debugging."
            )

        return out_of_memory

    monkeypatch.setattr(run.Run, "train_step", train_step)
    with pytest.raises(SystemExit) as exit_:
        one_line_errors(lambda argv: train_and_evaluate(smoke(), str(tmp_path)))(["train"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (
        "error: out of memory (RESOURCE_EXHAUSTED: Out of memory while trying to allocate "
        "17179869184 bytes.). Lower --config.train.batch_size=32 (or --config.eval.batch_size=32, "
        "or the model's size), or use a device with more memory. No checkpoint was saved, so this "
        "--workdir takes the changed config.\n"
    )


def test_a_damaged_checkpoint_without_checksums_is_one_error_naming_it(stopped_at_8, tmp_path):
    # With checksums.json gone, nothing catches the damage before orbax: before, its Exception
    # (after hundreds of lines of asyncio logs) reached decode, sample and load_model as is.
    from seqlstm.train.checkpoint import CorruptCheckpointError

    workdir = copy_of(stopped_at_8, tmp_path)
    step_dir = workdir / "checkpoints" / "8"
    (step_dir / "checksums.json").unlink()
    for root, _, names in os.walk(step_dir / "state"):
        for name in names:
            path = os.path.join(root, name)
            if os.path.getsize(path) > 64:
                with open(path, "r+b") as f:
                    f.truncate(20)
    _, model, tx = build(smoke())
    _, params = split_model(model)
    ckpt = Checkpointer(str(workdir))
    try:
        with pytest.raises(CorruptCheckpointError, match=f"checkpoint {step_dir} does not read"):
            ckpt.restore(create_train_state(params, tx, 0), params, step=8)
    finally:
        ckpt.close()


@pytest.mark.parametrize(
    "error, code, line",
    [
        (KeyboardInterrupt(), 130, "error: interrupted (SIGINT); a training run's workdir keeps"),
        (
            jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 8 bytes."),
            2,
            "error: out of memory (RESOURCE_EXHAUSTED: Out of memory allocating 8 bytes.); lower "
            "the batch size",
        ),
    ],
    ids=["interrupt", "out_of_memory"],
)
def test_any_launcher_ends_an_interrupt_or_out_of_memory_in_one_line(capsys, error, code, line):
    # decode, sample, pronounce and the studies share the wrapper: before, both were tracebacks.
    from absl import logging as absl_logging

    from seqlstm.train.errors import one_line_errors

    def main(argv):
        raise error

    verbosity = absl_logging.get_verbosity()
    try:
        with pytest.raises(SystemExit) as exit_:
            one_line_errors(main)(["decode"])
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped the launcher: a traceback")
    finally:
        absl_logging.set_verbosity(verbosity)
    err = capsys.readouterr().err
    assert exit_.value.code == code and err.startswith(line) and err.count("\n") == 1, err
