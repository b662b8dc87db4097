"""The whole training step (model, loss, Adam) of the shipped configs, beside PyTorch, in one run.

    python benchmarks/train_step.py            # configs/reverse.py, seq2seq.py, chars.py, g2p.py
    python benchmarks/train_step.py --write    # also rewrites its section of benchmarks/README.md
    python benchmarks/train_step.py --quick    # their :smoke presets, few repetitions

For each config, as `experiments.train` would run it:

- seqlstm: the training stack's own jitted step (`make_train_step` under `guard_nonfinite`, as the
  loop builds it: forward, masked cross-entropy, gradients, Adam with the config's clipping and
  schedule, plus the metrics the loop logs), on one XLA CPU device, and with the batch split over
  2 XLA CPU devices (`config.parallel.mesh_shape = (2,)`, in a child process started with
  `--xla_force_host_platform_device_count=2`, as benchmarks/cpu_devices.py does).
- PyTorch: the same model built from the same `config.model` with `torch.nn.LSTM`
  (benchmarks/torch_models.py), the same masked cross-entropy, `torch.optim.Adam` with the same
  clipping and schedule, with 1 intra-op thread and with one per core, the faster kept (the
  table says which).

Both read the same few batches, drawn from the config's training split before timing and fed in
turn (numpy arrays, as the loop passes them; the JAX step copies each to the device). A step is
timed until its result is ready; the median over the repetitions, best of interleaved rounds.
Ratios are time_torch / time_seqlstm: above 1 means seqlstm is faster. Compilation is excluded.
The seqlstm step also computes what the loop logs (accuracy sums, gradient and parameter norms)
and the non-finite guard; the PyTorch step computes the loss only.

A second table traces seqlstm's one-device step (`jax.profiler`, as benchmarks/profile_step.py
does for one layer): the time of each operation summed into matmuls and elementwise work inside
the recurrences (run more than once per step) and outside them.
"""

from __future__ import annotations

import os
import sys

CHILD_FLAG = "--xla-devices"  # the child process: this many XLA CPU devices, prints JSON
if CHILD_FLAG in sys.argv:
    _n = sys.argv[sys.argv.index(CHILD_FLAG) + 1]
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={_n}"
    )

import argparse  # noqa: E402
import importlib  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

if not __package__:  # run as a file (python benchmarks/x.py): import as `python -m` would
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import jax  # noqa: E402

from benchmarks import cli  # noqa: E402
from benchmarks.common import best_median_each, machine, write_section  # noqa: E402

MODELS = ("reverse", "seq2seq", "chars", "g2p")  # configs/<name>.py, default preset
NUM_BATCHES = 4  # drawn before timing and fed in turn
# PyTorch runs with 1 and with all cores' threads, and keeps its faster: on a small model one
# thread can win (no fork-join per operation), and the comparison should not hand seqlstm that.
TORCH_THREADS = tuple(dict.fromkeys((1, os.cpu_count() or 1)))


def load_config(name: str, preset: str | None):
    """`configs/<name>.py:get_config(preset)` of this checkout (its root is the first entry of
    `sys.path` under `python -m benchmarks.<script>` and the file form alike; no flags involved)."""
    return importlib.import_module(f"configs.{name}").get_config(preset)


def launcher_step(config, devices: int, keep_memory: bool = True):
    """The training stack's step for `config`, built as `train_and_evaluate` builds it (with
    `keep_memory=False`, glibc's malloc as it was: `benchmarks/step_timeline.py --malloc=glibc`).

    The only function of this script that touches the training API.

    Returns:
      `(step, state, batches)`: the jitted `step(state, batch) -> (state, metrics)`, the initial
      state, and `NUM_BATCHES` training batches as the loop feeds them (placed on the mesh when
      `devices > 1`).
    """
    from seqlstm.train import build_run, create_train_state, host_memory

    # As train_and_evaluate does (PyTorch's steps gain too). Not `config.train.malloc_arenas`:
    # it must be set before JAX starts, once per process, and this one times every config (the
    # launcher's one arena for chars: benchmarks/step_timeline.py --config=chars).
    if keep_memory:
        host_memory.keep_freed_memory()
    config = config.copy_and_resolve_references()
    config.parallel.mesh_shape = (devices,) if devices > 1 else ()
    run = build_run(config)
    state = run.place.put(create_train_state(run.params, run.tx, config.seed))
    step = run.train_step(state)
    batches = run.epoch(0)
    return step, state, [b for _, b in itertools.islice(batches, NUM_BATCHES)]


def jax_timer(step, state, batches):
    """A blocking callable running one step on the next batch, carrying the state along."""
    holder, feed = [state], itertools.cycle(batches)

    def run():
        holder[0], metrics = step(holder[0], next(feed))
        jax.block_until_ready((holder[0], metrics))

    return run


def torch_timer(config, batches, threads: int):
    """A callable running PyTorch's step on the next batch with `threads` intra-op threads."""
    import torch

    from benchmarks import torch_models

    torch.manual_seed(0)
    model = torch_models.build_model(config.model.to_dict())
    smoothing = config.train.get("label_smoothing", 0.0)  # configs/g2p.py: 0.1
    step = torch_models.make_train_step(model, config.optim.to_dict(), smoothing)
    feed = itertools.cycle([torch_models.to_torch_batch(b) for b in batches])

    def run():
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        step(next(feed))

    return run


def describe(config) -> str:
    m, t = config.model, config.train
    if m.name == "two_branch":
        return (
            f"two-branch chars, contexts {m.long_context}/{m.short_context}, batch {t.batch_size}"
        )
    if m.name == "encoder_decoder" and "max_length" not in config.data:  # configs/g2p.py
        feeding = "input feeding" if m.input_feeding else "no input feeding"
        return (
            f"g2p, {m.num_layers}-layer biLSTM({m.hidden_size}) + {m.num_layers}-layer decoder, "
            f"{m.attention} attention, {feeding}, batch {t.batch_size}"
        )
    if m.name == "encoder_decoder":
        return (
            f"seq2seq, biLSTM({m.hidden_size}) + {m.attention} attention, "
            f"T={config.data.max_length}, batch {t.batch_size}"
        )
    return f"reverse `{m.name}`, H={m.hidden_size}, T={config.data.length}, batch {t.batch_size}"


def measure_devices(names, preset, devices: int, reps: int, rounds: int) -> dict[str, float]:
    """ms per step of seqlstm's step with the batch over `devices` devices, per model."""
    fns = {}
    for name in names:
        config = load_config(name, preset)
        fns[name] = jax_timer(*launcher_step(config, devices))
    return best_median_each(fns, reps, rounds)


def child_measurement(names, preset, devices, reps, rounds) -> dict[str, float]:
    """`measure_devices` in a child process with `devices` XLA CPU devices."""
    cmd = [sys.executable, str(Path(__file__).resolve()), CHILD_FLAG, str(devices)]
    cmd += ["--models", ",".join(names), "--reps", str(reps), "--rounds", str(rounds)]
    cmd += ["--preset", preset] if preset else []
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"the {devices}-device child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = cli.parser(__doc__, quick=":smoke presets, few repetitions", reps=20, rounds=3)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--preset", default=None, help="preset of every config (e.g. smoke)")
    parser.add_argument(CHILD_FLAG, type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    names = args.models.split(",")
    reps, rounds = (3, 1) if args.quick else (args.reps, args.rounds)
    preset = "smoke" if args.quick else args.preset
    if args.xla_devices:
        # Before JAX starts its threads: the models' own malloc arenas (configs/chars.py: one).
        from seqlstm.train import host_memory

        arenas = {load_config(n, preset).train.get("malloc_arenas", 0) for n in names}
        if len(arenas) == 1:
            host_memory.configure_arenas(arenas.pop())
        assert jax.device_count() == args.xla_devices, jax.devices()
        print(json.dumps(measure_devices(names, preset, args.xla_devices, reps, rounds)))
        return

    from benchmarks.profile_step import CATEGORIES, trace_ms_by_category

    info = machine()
    print(info)
    # --quick: the 2-device path for the first model only (each model costs the child a compile)
    two = child_measurement(names[:1] if args.quick else names, preset, 2, reps, rounds)
    head = ["model (config)", "seqlstm ms/step", "seqlstm, 2 devices", "PyTorch ms/step (threads)"]
    head += ["PyTorch / seqlstm", "PyTorch / seqlstm, 2 devices"]
    rows = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    prof = ["| model | traced step ms | " + " | ".join(CATEGORIES) + " |"]
    prof.append("|---|---:|" + "---:|" * len(CATEGORIES))
    print(rows[0], flush=True)
    for name in names:
        config = load_config(name, preset)
        step, state, batches = launcher_step(config, 1)
        ours_run = jax_timer(step, state, batches)
        # A config with its own malloc arenas (set before JAX starts, as the launcher does) is
        # timed in a child process of its own; the others beside PyTorch, interleaved.
        arenas = config.train.get("malloc_arenas", 0)
        fns = {} if arenas else {"seqlstm": ours_run}
        fns.update({n: torch_timer(config, batches, n) for n in TORCH_THREADS})
        best = best_median_each(fns, reps, rounds)
        if arenas:
            best["seqlstm"] = child_measurement([name], preset, 1, reps, rounds)[name]
        threads = min(TORCH_THREADS, key=best.get)
        ours, torch_ms, split = best["seqlstm"], best[threads], two.get(name)
        split_cells = ("-", "-") if split is None else (f"{split:.2f}", f"{torch_ms / split:.2f}")
        rows.append(
            f"| {describe(config)} | {ours:.2f} | {split_cells[0]} | {torch_ms:.2f} ({threads}) "
            f"| {torch_ms / ours:.2f} | {split_cells[1]} |"
        )
        print(rows[-1], flush=True)
        if arenas:  # this process lacks the config's arenas: its trace would not be the step
            cells = ["-"] * len(CATEGORIES)
            prof.append(f"| {name} | - (timed in a child) | " + " | ".join(cells) + " |")
            continue
        parts = trace_ms_by_category(ours_run, max(2, reps // 4), 2)
        traced = sum(parts.values())
        cells = [f"{parts[c]:.2f} ({100 * parts[c] / traced:.0f}%)" for c in CATEGORIES]
        prof.append(f"| {name} | {traced:.2f} | " + " | ".join(cells) + " |")
    print("\n".join(prof))
    if args.write and not args.quick:
        write_section(
            "train_step",
            "## The whole training step beside PyTorch\n\n"
            f"`python benchmarks/train_step.py --write`: each shipped config's training step "
            f"(model, masked cross-entropy, Adam) beside the same model in PyTorch, "
            f"best of {rounds} interleaved rounds of the median ms over {reps} steps. "
            f"Machine: {info}.\n\n" + "\n".join(rows) + "\n\n"
            'seqlstm\'s one-device step, traced (ms per step and share; "per-step" here means '
            "run more than once per training step, i.e. inside a recurrence):\n\n"
            + "\n".join(prof),
        )


if __name__ == "__main__":
    main()
