"""Tests for seqlstm/train/workdir.py: one run per workdir, atomic JSON, errors naming files."""

import json
import os
import socket
import subprocess
import sys

import pytest

from configs.reverse import get_config
from seqlstm.train import loop, train_and_evaluate
from seqlstm.train.workdir import WorkdirBusyError, read_json, workdir_lock, write_json


def smoke():
    config = get_config("smoke")
    config.train.progress_bar = False
    return config


def test_a_second_run_beside_a_running_one_is_refused(tmp_path, monkeypatch):
    # Before: the second run trained too, and metrics.jsonl got duplicated, out-of-order rows.
    evaluate, refused = loop.evaluate, []

    def evaluate_and_start_a_second_run(*args, **kwargs):
        if not refused:
            refused.append(None)
            with pytest.raises(WorkdirBusyError, match="is in use by another run") as info:
                train_and_evaluate(smoke(), str(tmp_path))
            refused[0] = str(info.value)
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(loop, "evaluate", evaluate_and_start_a_second_run)
    train_and_evaluate(smoke(), str(tmp_path))
    assert f"pid {os.getpid()} on {socket.gethostname()}" in refused[0]
    with open(tmp_path / "metrics.jsonl") as f:
        assert [json.loads(line)["step"] for line in f] == [4, 8, 12]
    assert not (tmp_path / "lock").exists()  # released


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    info = {"pid": int(dead.stdout), "host": socket.gethostname(), "since": "yesterday"}
    (tmp_path / "lock").write_text(json.dumps(info))
    with workdir_lock(str(tmp_path)):
        assert json.loads((tmp_path / "lock").read_text())["pid"] == os.getpid()
    (tmp_path / "lock").write_text('{"pid": 12')  # torn by a crash while taking it
    with workdir_lock(str(tmp_path)):
        pass


HOLD_LOCK = """
import fcntl, json, os, socket, sys
os.makedirs(sys.argv[1])
fd = os.open(os.path.join(sys.argv[1], "lock"), os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)  # what workdir_lock does, without importing the library
info = {"pid": os.getpid(), "host": socket.gethostname(), "since": "now"}
os.write(fd, json.dumps(info).encode())
print("held", flush=True)
sys.stdin.read()
"""


def test_a_lock_held_by_another_process_refuses_and_touches_nothing(tmp_path):
    workdir = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(workdir)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(WorkdirBusyError, match=f"pid {holder.pid} on"):
            train_and_evaluate(smoke(), str(workdir))
        assert os.listdir(workdir) == ["lock"]
    finally:
        holder.communicate("", timeout=30)
    with workdir_lock(str(workdir)):  # free once the holder has ended
        pass


def test_write_json_is_atomic_and_read_json_names_a_damaged_file(tmp_path, monkeypatch):
    path = str(tmp_path / "results.json")
    write_json(path, {"a": 1})

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(json, "dump", full_disk)
    with pytest.raises(OSError, match=f"disk full writing {path}"):
        write_json(path, {"a": 2})
    assert read_json(path) == {"a": 1} and os.listdir(tmp_path) == ["results.json"]
    (tmp_path / "results.json").write_text('{"a": ')
    with pytest.raises(ValueError, match=f"{path} is not valid JSON"):
        read_json(path)


def test_a_workdir_path_that_is_not_utf8_is_refused_before_anything_is_written(tmp_path):
    # Before: the run trained, then its first checkpoint save failed in orbax with a
    # 124-line pybind11 traceback ("Unable to cast Python instance of type <class 'str'>").
    workdir = os.path.join(os.fsdecode(bytes(tmp_path)), os.fsdecode(b"run\xff"))
    with pytest.raises(ValueError, match=r"run\\udcff' is not valid UTF-8.*orbax takes UTF-8"):
        train_and_evaluate(smoke(), workdir)
    assert os.listdir(tmp_path) == []
