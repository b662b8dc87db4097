"""Tests for seqlstm/train/distributed.py: the cluster from flags and environment, a coordinator
that cannot be reached, and a real two-process run on localhost (coordinator on 127.0.0.1)."""

import json
import os
import signal
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
from launcher import stopped_step, wait_for_metrics, xla_flags

from configs.reverse import get_config
from seqlstm.train import (
    Checkpointer,
    build,
    create_train_state,
    distributed,
    split_model,
    train_and_evaluate,
)
from seqlstm.train.distributed import Cluster

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, JAX_PLATFORMS="cpu")
for _var in distributed.ENV.values():
    ENV.pop(_var, None)
ENV["XLA_FLAGS"] = xla_flags()  # no device count from outside


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(workdir, *args, process_id=None, port=None, timeout=60):
    """The launcher as one process of a two-process run on 127.0.0.1 (or of one process)."""
    cmd = [
        sys.executable,
        "-m",
        "experiments.train",
        "--config=configs/reverse.py:smoke",
        "--config.train.progress_bar=False",
        f"--workdir={workdir}",
        *args,
    ]
    if process_id is not None:
        cmd += [
            f"--coordinator_address=127.0.0.1:{port}",
            "--num_processes=2",
            f"--process_id={process_id}",
            f"--distributed_timeout={timeout}",
        ]
    return subprocess.Popen(
        cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


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


def test_a_coordinator_nobody_reaches_times_out_with_a_clear_message(tmp_path):
    # Process 1 finds no coordinator; a lone process 0 waits for a peer that never comes.
    port, other = free_port(), free_port()
    client = launch(tmp_path / "a", process_id=1, port=port, timeout=2)
    alone = launch(tmp_path / "b", process_id=0, port=other, timeout=2)
    for proc, expected in (
        (client, "process 1 of 2: could not reach the coordinator at 127.0.0.1"),
        (alone, "process 0 of 2: the coordinator at 127.0.0.1"),
    ):
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == distributed.EXIT_TIMEOUT, err[-2000:]
        assert expected in err and "within 2 s" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# --- two processes on localhost ----------------------------------------------------------------


def params_of(workdir, config):
    _, model, tx = build(config)
    _, params = split_model(model)
    ckpt = Checkpointer(str(workdir))
    try:
        state, _, _ = ckpt.restore(create_train_state(params, tx, 0), params)
    finally:
        ckpt.close()
    return [np.asarray(x) for x in jax.tree.leaves(state.params)]


def finish(procs, timeout=180):
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, err[-3000:]
        outs.append(out)
    return outs


@pytest.mark.skipif(
    not distributed.is_loopback(socket.gethostbyname(socket.gethostname())),
    reason="JAX's CPU collectives (gloo) listen on the host name's address; only loopback here",
)
def test_two_processes_stop_together_on_sigterm_resume_and_match_one_process(tmp_path):
    workdir, mesh = tmp_path / "run", "--config.parallel.mesh_shape=(2,)"  # one device each
    port = free_port()
    procs = [
        launch(workdir, mesh, "--config.train.num_epochs=500", process_id=i, port=port)
        for i in (0, 1)
    ]
    wait_for_metrics(workdir)
    procs[1].send_signal(signal.SIGTERM)  # only one process is told
    outs = finish(procs)
    steps = {stopped_step(out) for out in outs}
    assert len(steps) == 1, outs  # both stopped after the same step, and saved it together
    (step,) = steps
    assert step % 10 == 0 and str(step) in os.listdir(workdir / "checkpoints")

    # Both resume from the sharded checkpoint and finish a few steps later.
    port = free_port()
    total = f"--config.train.num_steps={step + 3}"
    outs = finish([launch(workdir, mesh, total, process_id=i, port=port) for i in (0, 1)])
    assert all(f"Resuming {workdir} at step {step}" in out for out in outs)
    assert all(f"Done: {step + 3} steps" in out for out in outs)

    config = get_config("smoke")
    config.train.progress_bar, config.train.num_steps = False, step + 3
    reference = tmp_path / "reference"
    train_and_evaluate(config, str(reference))
    for a, b in zip(params_of(workdir, config), params_of(reference, config), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    with open(workdir / "metrics.jsonl") as f:
        rows = [json.loads(line)["step"] for line in f]
    with open(reference / "metrics.jsonl") as f:
        assert rows == [json.loads(line)["step"] for line in f]  # one writer: process 0
    with open(workdir / "results.json") as f, open(reference / "results.json") as g:
        a, b = json.load(f)["test"], json.load(g)["test"]
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)
