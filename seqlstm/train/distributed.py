"""Multi-host runs: `jax.distributed.initialize` from launcher flags or the environment, with a
deadline.

Every process runs the same command with its own process id; process 0 also hosts the
coordinator at `coordinator_address` (`host:port`, reachable from every host). The values come
from the launcher's flags, else from the environment:

    JAX_COORDINATOR_ADDRESS   host:port of process 0
    JAX_NUM_PROCESSES         number of processes
    JAX_PROCESS_ID            this process, 0 .. JAX_NUM_PROCESSES - 1

Left unset, the run is one process. JAX's own failure when the coordinator cannot be reached,
or when not every process joins, is an abort from C++ after a long wait; here a watchdog ends the
process first, after `timeout` seconds, with a message that says which of the two happened.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket
import sys
import threading
from collections.abc import Callable, Mapping

import jax

ENV = {
    "coordinator_address": "JAX_COORDINATOR_ADDRESS",
    "num_processes": "JAX_NUM_PROCESSES",
    "process_id": "JAX_PROCESS_ID",
}
EXIT_TIMEOUT = 3  # exit status of a process whose processes did not all meet in time


@dataclasses.dataclass(frozen=True)
class Cluster:
    """Where process `process_id` of `num_processes` finds the coordinator."""

    coordinator_address: str
    num_processes: int
    process_id: int

    @property
    def host(self) -> str:
        return self.coordinator_address.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.coordinator_address.rsplit(":", 1)[1])


def _int(name: str, value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an int, got {value!r}") from None


def resolve(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    environ: Mapping[str, str] = os.environ,
) -> Cluster | None:
    """The cluster from arguments (flags), falling back on `ENV` variables.

    Returns:
      None when none of the three is set (one process), else the validated `Cluster`.

    Raises:
      ValueError: if only some are set, or a value is malformed or out of range.
    """
    given = {"coordinator_address": coordinator_address, "num_processes": num_processes}
    given["process_id"] = process_id
    for key, var in ENV.items():
        if given[key] in (None, "") and environ.get(var, "") != "":
            given[key] = environ[var]
    if all(v in (None, "") for v in given.values()):
        return None
    missing = [f"--{k} (or {ENV[k]})" for k, v in given.items() if v in (None, "")]
    if missing:
        raise ValueError(
            "a multi-process run needs the coordinator address, the number of processes and "
            f"this process's id; missing {', '.join(missing)}"
        )
    address = str(given["coordinator_address"])
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"coordinator address must be host:port, got {address!r}")
    n = _int("num_processes", given["num_processes"])
    pid = _int("process_id", given["process_id"])
    if n < 1:
        raise ValueError(f"num_processes must be >= 1, got {n}")
    if not 0 <= pid < n:
        raise ValueError(f"process_id must be in [0, {n}) for num_processes={n}, got {pid}")
    return Cluster(address, n, pid)


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine's loopback interface."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at `host:port`."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def timeout_message(cluster: Cluster, timeout: float) -> str:
    """What to tell the user when the processes did not all meet within `timeout` seconds."""
    at = cluster.coordinator_address
    who = f"process {cluster.process_id} of {cluster.num_processes}"
    if cluster.process_id != 0 and not reachable(cluster.host, cluster.port):
        return (
            f"{who}: could not reach the coordinator at {at} within {timeout:g} s. Start process "
            f"0 with the same --coordinator_address (it listens there), and check that {at} is "
            "reachable from this host (address, port, firewall)."
        )
    return (
        f"{who}: the coordinator at {at} is up, but not all {cluster.num_processes} processes "
        f"joined within {timeout:g} s. Start every process (ids 0 .. {cluster.num_processes - 1}) "
        "with the same --coordinator_address and --num_processes."
    )


def _exit_with(message: str) -> None:
    print(f"seqlstm: {message}", file=sys.stderr, flush=True)
    os._exit(EXIT_TIMEOUT)


def initialize(
    cluster: Cluster | None,
    timeout: float = 300.0,
    on_timeout: Callable[[str], None] = _exit_with,
) -> None:
    """`jax.distributed.initialize` for `cluster` (nothing for None or one process).

    A coordinator on a loopback address listens on loopback only. Must run before anything
    else touches JAX's devices.

    Args:
      cluster: from `resolve`.
      timeout: seconds for all processes to meet; then `on_timeout(message)` runs, which by
        default prints the message and ends the process with status `EXIT_TIMEOUT` (a blocked
        C++ call cannot be interrupted from Python).
      on_timeout: see `timeout`.
    """
    if cluster is None or cluster.num_processes == 1:
        return
    if not timeout > 0:
        raise ValueError(f"distributed timeout must be positive, got {timeout!r}")
    bind = None
    if is_loopback(cluster.host):
        bind = f"{cluster.host}:{cluster.port}"
    done = threading.Event()

    def watchdog() -> None:
        if not done.wait(timeout):
            on_timeout(timeout_message(cluster, timeout))

    threading.Thread(target=watchdog, name="seqlstm-distributed-watchdog", daemon=True).start()
    try:
        jax.distributed.initialize(
            coordinator_address=cluster.coordinator_address,
            num_processes=cluster.num_processes,
            process_id=cluster.process_id,
            # JAX's own deadline comes after ours, so the clear message wins.
            initialization_timeout=int(timeout) + 30,
            coordinator_bind_address=bind,
        )
    finally:
        done.set()
