"""Tests for seqlstm/train/distributed.py: the cluster from flags and environment, a coordinator
that cannot be reached, and a real two-process run on localhost (coordinator on 127.0.0.1)."""

import os
import socket

import pytest

from seqlstm.train import distributed
from seqlstm.train.distributed import Cluster

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, JAX_PLATFORMS="cpu")
for _var in (*distributed.ENV.values(), "XLA_FLAGS"):
    ENV.pop(_var, None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the cluster from flags and environment ----------------------------------------------------


def test_nothing_set_is_one_process():
    assert distributed.resolve(environ={}) is None
    distributed.initialize(None)  # a no-op
    distributed.initialize(Cluster("127.0.0.1:1234", 1, 0))  # one process: nothing to join


def test_flags_win_over_the_environment():
    env = {
        "JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234",
        "JAX_NUM_PROCESSES": "4",
        "JAX_PROCESS_ID": "3",
    }
    assert distributed.resolve(environ=env) == Cluster("10.0.0.1:1234", 4, 3)
    cluster = distributed.resolve("host0:99", None, 1, environ=env)
    assert cluster == Cluster("host0:99", 4, 1)
    assert (cluster.host, cluster.port) == ("host0", 99)
    assert Cluster("[::1]:8476", 2, 0).host == "::1"


@pytest.mark.parametrize(
    "args, match",
    [
        (("127.0.0.1:1234", None, None), "missing --num_processes .*, --process_id"),
        ((None, 2, 0), r"missing --coordinator_address \(or JAX_COORDINATOR_ADDRESS\)"),
        (("127.0.0.1", 2, 0), "must be host:port, got '127.0.0.1'"),
        (("127.0.0.1:99999", 2, 0), "must be host:port"),
        (("127.0.0.1:1234", 2, 2), r"process_id must be in \[0, 2\)"),
        (("127.0.0.1:1234", 0, 0), "num_processes must be >= 1"),
        (("127.0.0.1:1234", "two", 0), "num_processes must be an int, got 'two'"),
    ],
)
def test_bad_cluster_settings_are_refused(args, match):
    with pytest.raises(ValueError, match=match):
        distributed.resolve(*args, environ={})


def test_loopback_and_the_timeout_message_says_what_is_missing():
    assert distributed.is_loopback("127.0.0.1") and distributed.is_loopback("localhost")
    assert distributed.is_loopback("::1") and not distributed.is_loopback("10.0.0.1")
    assert not distributed.is_loopback("example.org")
    port = free_port()
    msg = distributed.timeout_message(Cluster(f"127.0.0.1:{port}", 2, 1), 5)
    assert f"process 1 of 2: could not reach the coordinator at 127.0.0.1:{port} within 5 s" in msg
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        address = f"127.0.0.1:{listening.getsockname()[1]}"
        msg = distributed.timeout_message(Cluster(address, 3, 1), 5)
    assert "is up, but not all 3 processes joined within 5 s" in msg


# --- two processes on localhost ----------------------------------------------------------------
