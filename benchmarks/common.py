"""Shared pieces of the benchmark scripts: timing, the machine line, README sections."""

from __future__ import annotations

import os
import platform
import re
import resource
import statistics
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

README = Path(__file__).with_name("README.md")


def median_ms(fn, reps: int, warmup: int = 3) -> float:
    """Median wall time of `fn()` in milliseconds, after `warmup` calls (compilation excluded)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def fwd_and_train_fns(apply, params, x):
    """Zero-argument callables running jitted `apply(params, x)` and the gradient of
    `sum(apply(params, x) ** 2)` with respect to `params` and `x` (the benchmarks' "training
    step"), each blocking until its result is ready."""

    def loss(params, x):
        y = apply(params, x)
        return jnp.sum(y.astype(jnp.float32) ** 2)

    fwd = jax.jit(apply)
    train = jax.jit(jax.grad(loss, argnums=(0, 1)))
    return (
        lambda: jax.block_until_ready(fwd(params, x)),
        lambda: jax.block_until_ready(train(params, x)),
    )


def best_medians(fns: dict, reps: int, rounds: int) -> dict[str, tuple[float, float]]:
    """(forward, train) ms for each `name: (fwd, train)` callable pair: the best of `rounds`
    medians of `reps` calls, the entries taking turns round by round.

    Interleaving and keeping the best round guards against the slow phases this 2-core machine
    goes through: the same XLA program runs at one of two speeds for a while (e.g. 20 or 30 ms,
    see benchmarks/README.md), and a single pass can catch one entry in the slow one.
    """
    best = {name: (float("inf"), float("inf")) for name in fns}
    for _ in range(rounds):
        for name, (fwd, train) in fns.items():
            now = (median_ms(fwd, reps), median_ms(train, reps))
            best[name] = (min(best[name][0], now[0]), min(best[name][1], now[1]))
    return best


def best_median_each(fns: dict, reps: int, rounds: int, warmup: int = 3) -> dict[str, float]:
    """ms for each `name: fn` blocking callable: the best of `rounds` medians of `reps` calls,
    the entries taking turns round by round (see `best_medians`, which does this for pairs)."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            best[name] = min(best[name], median_ms(fn, reps, warmup))
    return best


def time_fwd_and_train(apply, params, x, reps: int) -> tuple[float, float]:
    """Median ms of the two callables of `fwd_and_train_fns`."""
    fwd, train = fwd_and_train_fns(apply, params, x)
    return median_ms(fwd, reps), median_ms(train, reps)


def minor_faults() -> int:
    """The process's minor page faults so far (`getrusage`): a fresh page of memory each."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def machine() -> str:
    """One line naming the CPU, cores and library versions the numbers came from."""
    cpu = platform.processor() or platform.machine()
    try:
        fields = {}
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
        cpu = fields.get("model name", cpu)
        if "cpu family" in fields and "model" in fields:
            # A virtual machine may name only the vendor ("AMD EPYC"): the family and model tell
            # one CPU generation from the next, which is what the numbers depend on.
            cpu += f" (family {fields['cpu family']}, model {fields['model']})"
    except OSError:
        pass
    versions = [f"jax {jax.__version__} ({jax.default_backend()})"]
    for name in ("flax", "torch", "keras"):
        try:
            versions.append(f"{name} {__import__(name).__version__}")
        except ImportError:
            pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, " + ", ".join(
        versions
    )


def write_section(name: str, body: str) -> None:
    """Replaces (or appends) the `<!-- name:start -->...<!-- name:end -->` block of README.md."""
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    block = f"<!-- {name}:start -->\n{body.strip()}\n<!-- {name}:end -->"
    pattern = re.compile(rf"<!-- {name}:start -->.*?<!-- {name}:end -->", re.S)
    text = (
        pattern.sub(lambda _: block, text) if pattern.search(text) else text + "\n" + block + "\n"
    )
    README.write_text(text)
