"""TensorBoard event files, written in the caller's thread with the standard library alone.

An event file is a sequence of records, each one serialized `tensorflow.Event` protocol buffer
framed as TFRecord does it: the data's length (uint64, little-endian), the masked CRC-32C of those
8 bytes (uint32), the data, the masked CRC-32C of the data. `EventFile` writes the three events
a training run needs: the file version (`brain.Event:2`, first), scalars
(`Summary.Value.simple_value`) and a session-log START with a step, which tells TensorBoard to
drop the events of earlier files at that step and after. The files are byte for byte what
tensorboardX writes (tests/test_metrics.py).

Why not tensorboardX: its `SummaryWriter` writes from a thread of its own, and when that thread
died on an I/O error (a full disk) the training thread waited forever on its full queue; and
importing it imports PyTorch when PyTorch is installed (~2 s for every training process). Here
every record is one unbuffered write: an I/O error raises at once, as a `WorkdirWriteError` naming
the file.

The protocol buffer fields (tensorflow/core/util/event.proto, core/framework/summary.proto):
`Event`: wall_time = 1 (double), step = 2 (int64), file_version = 3 (string), summary = 5,
session_log = 7; `Summary`: value = 1 (repeated); `Summary.Value`: tag = 1, simple_value = 2
(float); `SessionLog`: status = 1 (enum, START = 1).
"""

from __future__ import annotations

import itertools
import math
import os
import socket
import struct
import time

from seqlstm.train.storage import writing

FILE_VERSION = "brain.Event:2"
_SESSION_START = 1


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)  # the Castagnoli polynomial
        table.append(crc)
    return tuple(table)


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of `data`."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC: the CRC rotated right by 15 bits plus a constant."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def record(data: bytes) -> bytes:
    """`data` framed as one TFRecord."""
    header = struct.pack("<Q", len(data))
    crcs = struct.pack("<I", masked_crc32c(header)), struct.pack("<I", masked_crc32c(data))
    return header + crcs[0] + data + crcs[1]


# --- the protocol buffer wire format, for the few fields written here --------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, wire_type: int, payload: bytes) -> bytes:
    return _varint(number << 3 | wire_type) + payload


def _message(number: int, payload: bytes) -> bytes:  # also strings: length-delimited
    return _field(number, 2, _varint(len(payload)) + payload)


def event(
    wall_time: float,
    step: int = 0,
    *,
    file_version: str | None = None,
    scalar: tuple[str, float] | None = None,
    session_start: bool = False,
) -> bytes:
    """One serialized `Event` holding one of: the file version, a scalar `(tag, value)`, or a
    session-log START. Fields at their default (step 0) are left out, as protocol buffers do."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    out = _field(1, 1, struct.pack("<d", wall_time))
    if step:
        out += _field(2, 0, _varint(step))
    if file_version is not None:
        out += _message(3, file_version.encode())
    if scalar is not None:
        tag, value = scalar
        try:
            packed = struct.pack("<f", value)
        except OverflowError:  # finite, beyond float32: infinite, as protocol buffers store it
            packed = struct.pack("<f", math.copysign(math.inf, value))
        value_msg = _message(1, tag.encode()) + _field(2, 5, packed)
        out += _message(5, _message(1, value_msg))
    if session_start:
        out += _message(7, _field(1, 0, _varint(_SESSION_START)))
    return out


class EventFile:
    """A TensorBoard event file of scalars, `<logdir>/events.out.tfevents.<time>.<host>.<pid>-<n>`.

    Args:
      logdir: the directory of the event file.
      purge_step: TensorBoard discards the events of earlier files at this step and after (the
        steps an interrupted run logged past its last checkpoint).

    Raises:
      seqlstm.train.storage.WorkdirWriteError: a write failed (e.g. the disk is full), naming the
        file; from the constructor and from every method.
    """

    _count = itertools.count()

    def __init__(self, logdir: str, purge_step: int | None = None):
        # The pid and a counter keep two files made in one second apart.
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}"
        self.path = os.path.join(logdir, f"{name}.{os.getpid()}-{next(self._count)}")
        with writing(self.path):
            # Unbuffered: every record goes to the operating system at once (nothing to flush).
            self._file = open(self.path, "ab", buffering=0)
        self._append(record(event(time.time(), file_version=FILE_VERSION)))
        if purge_step is not None:
            self._append(record(event(time.time(), purge_step, session_start=True)))

    def _append(self, data: bytes) -> None:
        with writing(self.path):
            self._file.write(data)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self._append(record(event(time.time(), step, scalar=(tag, float(value)))))

    def close(self) -> None:
        with writing(self.path):
            self._file.close()
