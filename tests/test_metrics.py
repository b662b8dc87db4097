"""Tests for seqlstm/train/metrics.py: writers that fail fast, a tolerant resume."""

import errno
import json

import pytest
from tensorboardX import record_writer

from seqlstm.train import metrics
from seqlstm.train.errors import WorkdirWriteError
from seqlstm.train.metrics import MetricWriter, read_rows


def test_a_full_disk_fails_the_write_at_once_naming_the_file(tmp_path, monkeypatch):
    writer = MetricWriter(str(tmp_path))
    writer.write({"step": 1, "train_loss": 1.0})

    def full_disk(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(record_writer.RecordWriter, "write", full_disk)
    # Before: TensorBoard's writer thread died here, and later writes waited on it forever.
    with pytest.raises(WorkdirWriteError, match=f"disk full writing {tmp_path}/events.out"):
        writer.write({"step": 2, "train_loss": 0.5})
    monkeypatch.undo()

    def full_disk_open(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(metrics, "open", full_disk_open, raising=False)
    with pytest.raises(WorkdirWriteError, match=f"disk full writing {tmp_path}/metrics.jsonl"):
        writer.write({"step": 3, "train_loss": 0.5})
    monkeypatch.undo()
    writer.close()


def test_rows_cut_short_are_dropped_with_a_warning(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 4, "x": 1}\n\n{"step": 8, "x": 2}\n{"step": 9, "x"')
    warnings = []
    assert read_rows(str(path), log=warnings.append) == [
        '{"step": 4, "x": 1}\n',
        '{"step": 8, "x": 2}\n',
    ]
    assert len(warnings) == 1 and "dropped line 4" in warnings[0]
    MetricWriter(str(tmp_path), resume_step=8).close()
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [4, 8]
