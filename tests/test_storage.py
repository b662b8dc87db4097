"""Tests for seqlstm/train/storage.py: a full disk, torn and damaged files, checkpoints that do
not read back, with real files on real (and really full) disks."""

import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from smoke_runs import EPOCHS, assert_same_params, copy_of, final_params, read_rows, smoke

from seqlstm.train import Checkpointer, build, create_train_state, split_model, train_and_evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, JAX_PLATFORMS="cpu")


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


def test_a_damaged_checkpoint_without_checksums_is_one_error_naming_it(stopped_at_8, tmp_path):
    # With checksums.json gone, nothing catches the damage before orbax: before, its Exception
    # (after hundreds of lines of asyncio logs) reached decode, sample and load_model as is.
    from seqlstm.train.storage import CorruptCheckpointError

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
