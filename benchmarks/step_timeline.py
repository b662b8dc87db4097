"""Where one training step of a shipped config spends its time, span by span, in order.

    python benchmarks/step_timeline.py                      # configs/g2p.py, default preset
    python benchmarks/step_timeline.py --config=seq2seq     # any of train_step.py's MODELS
    python benchmarks/step_timeline.py --write              # also rewrites its README section
    python benchmarks/step_timeline.py --quick              # configs/g2p.py:smoke
    python benchmarks/step_timeline.py --malloc=glibc       # host memory as glibc leaves it
    python benchmarks/step_timeline.py --malloc=one_arena   # every thread on one malloc arena

Traces `--reps` steps of the launcher's jitted step (`benchmarks/train_step.py`'s `launcher_step`:
the training stack's own step, host memory kept as the launcher keeps it, and
`config.train.malloc_arenas` applied first, as the launcher applies it) on its first batch with
`jax.profiler`, and cuts the last traced step into spans of what ran: the native kernel's calls
(`ffi_call`), the operations of each `lax.scan` loop (an operation run more than once in the step,
after the loop's `while` started; named by that loop), and the rest ("XLA, once": embeddings,
whole-sequence attention, the loss, Adam, the NaN guard). The step is cut into 0.25 ms bins, each
labelled by what kept the cores busiest in it; runs of one label are a span. Also prints the minor
page faults per step (`getrusage`) and the median wall time of `--reps` untraced steps over the
first batches in turn;
`--malloc` compares host-memory settings (`seqlstm/train/host_memory.py` quotes these runs).
"""

from __future__ import annotations

import collections
import sys
import time
from pathlib import Path

if not __package__:  # run as a file (python benchmarks/x.py): import as `python -m` would
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np  # noqa: E402

from benchmarks import cli  # noqa: E402
from benchmarks.common import machine, minor_faults, write_section  # noqa: E402
from benchmarks.profile_step import traced_events  # noqa: E402
from benchmarks.train_step import MODELS, describe, jax_timer, launcher_step, load_config  # noqa: E402

BIN_US = 250.0
MALLOC = ("config", "glibc", "one_arena")
# Trace events that are bookkeeping, not work (thread-pool regions, buffer waits, executors).
_SKIP = ("$", "ThunkExecutor", "PjitFunction", "Slinky", "ThreadpoolListener", "Wait for",
         "CommonPjRt", "ParseArguments", "end: ")  # fmt: skip


def last_step(events: list[dict]) -> tuple[float, float, list[dict]]:
    """`(start_us, end_us, work events)` of the last traced execution of the step."""
    runs = [e for e in events if e["name"].startswith("ThunkExecutor::Execute (wait")]
    last = max(runs, key=lambda e: e["ts"])
    t0, t1 = last["ts"], last["ts"] + last["dur"]
    work = [e for e in events if t0 <= e["ts"] < t1 and not e["name"].startswith(_SKIP)]
    return t0, t1, sorted(work, key=lambda e: e["ts"])


def label_events(work: list[dict]) -> list[tuple[dict, str]]:
    """Each event with its label: "kernel", "loop <while>" or "XLA, once"."""
    count = collections.Counter(e["name"] for e in work)
    loops = [e for e in work if e["name"].startswith("while")]
    labelled = []
    for e in work:
        name = e["name"]
        if name.startswith("while"):
            continue
        if name.startswith("ffi_call"):
            labelled.append((e, "kernel"))
            continue
        started = [w["name"] for w in loops if w["ts"] <= e["ts"]]
        label = f"loop {started[-1]}" if count[name] > 1 and started else "XLA, once"
        labelled.append((e, label))
    return labelled


def spans(t0: float, t1: float, labelled: list[tuple[dict, str]]) -> list[tuple[str, float, float]]:
    """`(label, start_ms, length_ms)` runs of 0.25 ms bins labelled by their busiest label."""
    n = int(np.ceil((t1 - t0) / BIN_US))
    busy = collections.defaultdict(lambda: np.zeros(n))
    for e, label in labelled:
        a, b = e["ts"] - t0, min(e["ts"] + e["dur"], t1) - t0
        for i in range(int(a // BIN_US), min(int(np.ceil(b / BIN_US)), n)):
            lo, hi = i * BIN_US, (i + 1) * BIN_US
            busy[label][i] += max(0.0, min(b, hi) - max(a, lo))
    names = list(busy)
    stack = np.stack([busy[k] for k in names]) if names else np.zeros((1, n))
    per_bin = [names[j] if stack[j, i] > 0 else "idle" for i, j in enumerate(stack.argmax(0))]
    out: list[tuple[str, float, float]] = []
    for i, label in enumerate(per_bin):
        width = (min((i + 1) * BIN_US, t1 - t0) - i * BIN_US) / 1e3  # the last bin: to the end
        if out and out[-1][0] == label:
            out[-1] = (label, out[-1][1], out[-1][2] + width)
        else:
            out.append((label, i * BIN_US / 1e3, width))
    return out


def step_report(name: str, preset: str | None, reps: int, keep_memory: bool) -> str:
    config = load_config(name, preset)
    step, state, batches = launcher_step(config, 1, keep_memory)
    # Timed over the launcher's first batches in turn (G2P's buckets differ in shape, and so do
    # their buffers); traced on the first one.
    every, first = jax_timer(step, state, batches), jax_timer(step, state, batches[:1])
    for _ in range(2 * len(batches)):
        every()
    first()
    before = minor_faults()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        every()
        times.append(time.perf_counter() - start)
    faults = (minor_faults() - before) / reps
    t0, t1, work = last_step(traced_events(first, reps))
    total = (t1 - t0) / 1e3
    shapes = {k: tuple(v.shape) for k, v in batches[0].items() if getattr(v, "ndim", 0) == 2}
    lines = [
        f"**{name}** ({describe(config)}): median {1e3 * np.median(times):.1f} ms per step and "
        f"{faults:.0f} minor page faults per step over its first {len(batches)} batches in turn; "
        f"the traced step below (batch shapes {shapes}) took {total:.1f} ms.",
        "",
        "| span | starts at ms | ms | share |",
        "|---|---:|---:|---:|",
    ]
    for label, start, length in spans(t0, t1, label_events(work)):
        lines.append(f"| {label} | {start:.2f} | {length:.2f} | {100 * length / total:.0f}% |")
    return "\n".join(lines)


def main() -> None:
    parser = cli.parser(
        __doc__, quick="configs/g2p.py:smoke, few repetitions", reps=20, rounds=None
    )
    parser.add_argument("--config", default="g2p", choices=MODELS)
    parser.add_argument(
        "--malloc", default="config", choices=MALLOC,
        help="host memory as the launcher keeps it for the config, as glibc leaves it, or with "
        "one arena for every thread (seqlstm/train/host_memory.py)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.write and args.malloc != "config":
        parser.error("--write records the launcher's own setting: --malloc=config")
    preset = "smoke" if args.quick else None
    reps = 3 if args.quick else args.reps
    # Before JAX starts its threads, as the launcher does (configs/chars.py: one malloc arena).
    from seqlstm.train import host_memory

    arenas = load_config(args.config, preset).train.get("malloc_arenas", 0)
    host_memory.configure_arenas({"config": arenas, "glibc": 0, "one_arena": 1}[args.malloc])
    info = machine()
    print(info, f"; --malloc={args.malloc}")
    report = step_report(args.config, preset, reps, keep_memory=args.malloc != "glibc")
    print(report)
    if args.write:
        body = (
            f"## One training step of `configs/{args.config}.py`, span by span\n\n"
            f"`python benchmarks/step_timeline.py --config={args.config} --write`. "
            f"Machine: {info}.\n\n{report}"
        )
        write_section(f"step_timeline_{args.config}", body)


if __name__ == "__main__":
    main()
