"""Tests for seqlstm/train/causes.py: a full memory and a full disk told apart, whatever reports
them (XLA says RESOURCE_EXHAUSTED for both), through the chain of causes."""

import errno

import jax
import pytest

from seqlstm.train.causes import cause_chain, first_line, is_disk_full, out_of_memory

DEVICE_OOM = jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 8 bytes.")
TENSORSTORE_FULL = ValueError("RESOURCE_EXHAUSTED: Error writing file: No space left on device")


def raised_from(error, cause):
    try:
        try:
            raise cause
        except BaseException as e:
            raise error from e
    except BaseException as e:
        return e


@pytest.mark.parametrize(
    "error, disk_full, oom",
    [
        (OSError(errno.ENOSPC, "No space left on device"), True, False),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), True, False),
        (TENSORSTORE_FULL, True, False),
        (DEVICE_OOM, False, True),
        (MemoryError(), False, True),
        (OSError(errno.EACCES, "Permission denied"), False, False),
        (raised_from(RuntimeError("saving failed"), TENSORSTORE_FULL), True, False),
        (raised_from(RuntimeError("step failed"), DEVICE_OOM), False, True),
    ],
    ids=["enospc", "edquot", "tensorstore", "xla_oom", "memory_error", "eacces", "chained_disk",
         "chained_oom"],
)  # fmt: skip
def test_a_full_disk_and_a_full_memory_are_told_apart(error, disk_full, oom):
    assert is_disk_full(error) is disk_full
    found = out_of_memory(error)
    assert (found is not None) is oom
    if oom:  # the link of the chain that said so, for its message
        assert isinstance(found, MemoryError) or "Out of memory" in str(found)


def test_the_chain_ends_on_a_cycle_and_the_first_line_is_cut():
    a, b = ValueError("a"), ValueError("b")
    a.__cause__, b.__context__ = b, a  # a cycle: each raised while handling the other
    assert list(cause_chain(a)) == [a, b]
    assert first_line(ValueError("  one\ntwo")) == "one"
    assert first_line(ValueError("x" * 300), limit=10) == "x" * 10
    assert first_line(ValueError()) == ""
