"""The native kernel's output buffers on huge pages, or faulted in 4 KB at a time: one LSTM layer's
training step both ways in one process, beside PyTorch's.

    python benchmarks/native_pages.py            # the issue's four shapes and G2P's encoder layer
    python benchmarks/native_pages.py --write    # also rewrites its section of benchmarks/README.md
    python benchmarks/native_pages.py --quick    # one small shape, few repetitions

XLA:CPU keeps a program's intermediates in one block, which glibc's malloc maps afresh at every call
once it passes 32 MB; the kernel's forward pass then writes its outputs and residuals into fresh
pages. Before writing, it maps them as transparent huge pages (`Prefault` in
seqlstm/kernels/lstm_cpu.cc); `SEQLSTM_NATIVE_HUGE_PAGES=0` turns that off (read at every call, so
the two take turns here). "faults" are the process's minor page faults per training step
(`getrusage`). The process runs with glibc's default settings, as a program of a user's own does
(the launchers' `seqlstm.train.host_memory` settings keep blocks up to 32 MB only). Best of
`--rounds` interleaved medians of `--reps` calls; (B, T, D, H) per row.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if not __package__:  # run as a file (python benchmarks/x.py): import as `python -m` would
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from benchmarks import cli  # noqa: E402
from benchmarks.common import best_median_each, machine, minor_faults, write_section  # noqa: E402
from benchmarks.lstm_layer import LAYER_SHAPES  # noqa: E402

# The issue's four shapes (D = H), and G2P's second encoder layer (64 words of ~16 letters).
SHAPES = [(b, t, d, d) for b, t, d in LAYER_SHAPES] + [(64, 16, 512, 256)]
SWITCH = "SEQLSTM_NATIVE_HUGE_PAGES"


def with_pages(fn, on: bool):
    """`fn` called with the kernel's huge pages on or off."""

    def call():
        if on:
            os.environ.pop(SWITCH, None)
        else:
            os.environ[SWITCH] = "0"
        return fn()

    return call


def faults_per_call(fn, calls: int) -> float:
    """Minor page faults of the process per call of `fn` (already compiled)."""
    before = minor_faults()
    for _ in range(calls):
        fn()
    return (minor_faults() - before) / calls


def main() -> None:
    args = cli.parser(__doc__, quick="one small shape, few repetitions", reps=10, rounds=3)
    args = args.parse_args()
    from benchmarks.lstm_layer import bench_torch
    from benchmarks.native_rule import layer_fns
    from seqlstm.kernels import native

    if not native.native_available():
        sys.exit(f"nothing to measure: {native.native_reason()}")
    reps, rounds = (3, 1) if args.quick else (args.reps, args.rounds)
    shapes = [(16, 20, 32, 32)] if args.quick else SHAPES
    lines = [
        f"`python benchmarks/native_pages.py --write`: one layer's training step (the gradient of "
        f"the sum of squared outputs with respect to the parameters and the input), float32, "
        f"the native kernel with its outputs on huge pages and without, in turns in one process "
        f"with glibc's default malloc settings; best of {rounds} interleaved medians of {reps}. "
        f"Machine: {machine()}.",
        "",
        "| (B, T, D, H) | huge pages: ms (faults) | 4 KB faults: ms (faults) | speed-up "
        "| PyTorch ms | PyTorch / native |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    print("\n".join(lines), flush=True)
    for b, t, d, h in shapes:
        train = layer_fns(b, t, d, h, "native")[1]
        fns = {"on": with_pages(train, True), "off": with_pages(train, False)}
        fns["torch"] = bench_torch(b, t, d, 1, False, hidden=h)[1]
        ms = best_median_each(fns, reps, rounds)
        faults = {k: faults_per_call(fns[k], reps) for k in ("on", "off")}
        row = (
            f"| ({b}, {t}, {d}, {h}) | {ms['on']:.1f} ({faults['on']:.0f}) "
            f"| {ms['off']:.1f} ({faults['off']:.0f}) | {ms['off'] / ms['on']:.2f}x "
            f"| {ms['torch']:.1f} | {ms['torch'] / ms['on']:.2f} |"
        )
        lines.append(row)
        print(row, flush=True)
    os.environ.pop(SWITCH, None)
    if args.write and not args.quick:
        title = "## The kernel's outputs on huge pages\n\n"
        write_section("native_pages", title + "\n".join(lines))


if __name__ == "__main__":
    main()
