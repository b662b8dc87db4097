"""Tests for seqlstm/train/metrics.py and tfevents.py: TensorBoard files as tensorboardX writes
them, writers that fail fast, a tolerant resume."""

import errno
import json
import math
import os
import socket
import struct
import time

import pytest

from seqlstm.train import metrics, tfevents
from seqlstm.train.metrics import MetricWriter, read_rows
from seqlstm.train.storage import WorkdirWriteError


def test_crc32c_known_answers():
    assert tfevents.crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert tfevents.crc32c(b"") == 0 and tfevents.crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720


def test_event_files_are_byte_for_byte_what_tensorboardX_writes(tmp_path, monkeypatch):
    from tensorboardX.event_file_writer import EventsWriter
    from tensorboardX.proto import event_pb2
    from tensorboardX.summary import scalar

    monkeypatch.setattr(time, "time", lambda: 1796195804.25)  # one clock for both writers
    ours = tfevents.EventFile(str(tmp_path), purge_step=9)
    theirs = EventsWriter(str(tmp_path / "events"), ".tensorboardX")
    start = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
    theirs.write_event(event_pb2.Event(wall_time=time.time(), step=9, session_log=start))
    values = [("train/loss", 0.5, 10), ("eval/g2p/greedy_wer", 0.0, 10), ("x", -3e38, 2**40)]
    for tag, value, step in values:
        ours.add_scalar(tag, value, step)
        theirs.write_event(
            event_pb2.Event(wall_time=time.time(), step=step, summary=scalar(tag, value))
        )
    ours.close()
    theirs.close()
    name = f"events.out.tfevents.1796195804.{socket.gethostname()}"
    assert os.path.basename(ours.path).startswith(name)
    with open(ours.path, "rb") as f, open(theirs._file_name, "rb") as g:
        data = f.read()
        assert data == g.read()
    # Framing and parsing by hand: 4 records, each a length, its CRC, the event, the event's CRC.
    events = []
    while data:
        (length,) = struct.unpack("<Q", data[:8])
        assert struct.unpack("<I", data[8:12])[0] == tfevents.masked_crc32c(data[:8])
        body, data = data[12 : 12 + length], data[16 + length :]
        events.append(event_pb2.Event.FromString(body))
    assert events[0].file_version == "brain.Event:2" and events[1].step == 9
    assert [(e.summary.value[0].tag, e.step) for e in events[2:]] == [(t, s) for t, _, s in values]


def test_a_value_beyond_float32_is_stored_as_infinite():
    from tensorboardX.proto import event_pb2

    parsed = event_pb2.Event.FromString(tfevents.event(1.0, 3, scalar=("big", -1e300)))
    assert parsed.summary.value[0].simple_value == -math.inf and parsed.step == 3


def test_a_full_disk_fails_the_write_at_once_naming_the_file(tmp_path, monkeypatch):
    writer = MetricWriter(str(tmp_path))
    writer.write({"step": 1, "train_loss": 1.0})

    class FullDisk:
        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    events_file, writer.tb._file = writer.tb._file, FullDisk()
    # Before: TensorBoard's writer thread died here, and later writes waited on it forever.
    with pytest.raises(WorkdirWriteError, match=f"disk full writing {tmp_path}/events.out"):
        writer.write({"step": 2, "train_loss": 0.5})
    writer.tb._file = events_file

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
