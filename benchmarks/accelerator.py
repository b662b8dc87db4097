"""One prepared accelerator check: cuDNN correctness, LSTM speed, training steps, versions.

    python benchmarks/accelerator.py --out=DIR            # one CUDA GPU (H100/H200): < 8 min
    python benchmarks/accelerator.py --quick --out=DIR    # CPU: the same code paths, tiny sizes

Needs (carry as wheels where missing):
  - every section: this repository (seqlstm, benchmarks/), jax and jaxlib with CUDA
    (`jax[cuda12]` or `jax[cuda13]`: the CUDA plugin and PJRT wheels, cuDNN included), flax,
    optax, numpy; torch built with CUDA for the PyTorch rows (without it those rows fail, and
    are reported);
  - the training-step section only, what `seqlstm.train` imports: ml-collections, orbax-checkpoint,
    tqdm, absl-py (the layer sections import none of them).
No keras, matplotlib or network access.

Sections, each run on its own (a failure is reported in its place, the others still run), the
report printed and written to DIR/accelerator.json:

1. environment: device name, driver and CUDA/cuDNN versions as JAX and PyTorch see them, library
   versions, and the TF32 settings the timings ran under (JAX and PyTorch defaults, unchanged).
2. correctness (benchmarks/cudnn_check.py; float32, B=6, T=12, D=10, H=16, lengths
   [12, 0, 5, 1, 12, 3], including 0 and T):
   `backend="cudnn"` against the scan (`backend="scan"`) and against PyTorch's `nn.LSTM` (cuDNN)
   given the same weights; outputs, final states, and gradients with respect to every weight and the
   input of a random linear function of outputs and states; for one layer, one reversed layer,
   one bidirectional layer, 2 bidirectional layers, 2 layers of full length. Run with TF32 off
   (`jax.default_matmul_precision("highest")`, `torch.backends.*.allow_tf32 = False`), compared
   as `numpy.allclose` with rtol = atol = 1e-5 (outputs, states) and 1e-4 (gradients). PyTorch
   cannot take a length-0 row (`pack_padded_sequence`): it gets the other rows; it has no
   unidirectional reversed LSTM: that case is compared with the scan only.
3. train steps: steps/s of configs/seq2seq.py's and configs/chars.py's training step
   (benchmarks/train_step.py's `launcher_step`: the training stack's own jitted step), XLA's
   compiled memory for the step, and the device's peak memory in use so far.
4. layer timing: forward and forward+backward ms (median; gradient of the summed squared outputs
   with respect to the weights and the input) of the scan (fused backward), `backend="cudnn"`,
   Flax `nn.RNN(OptimizedLSTMCell)` and PyTorch's `nn.LSTM` at (64, 100, 256), (128, 50, 512),
   (16, 1024, 768), (256, 200, 1024), float32 and bfloat16 (seqlstm: mixed precision; Flax:
   `dtype=bfloat16`; PyTorch: `torch.autocast`). Rows past the time budget are skipped.

Exit status 1 if a section failed or a comparison was outside its tolerance (the report is
written either way). `--quick` on CPU: tiny timing shapes, the :smoke configs, and the CUDA-only
rows (`backend="cudnn"`) reported as skipped with the reason.
"""

from __future__ import annotations

import os

# Leave PyTorch room on the same GPU (JAX would otherwise take 75% of it up front).
os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.5")

import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

if not __package__:  # run as a file (python benchmarks/x.py): import as `python -m` would
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from benchmarks import cli  # noqa: E402
from benchmarks.common import fwd_and_train_fns, median_ms  # noqa: E402
from benchmarks.cudnn_check import (  # noqa: E402
    CASES,
    QUICK_CASES,
    Skip,
    correctness,
    require_cudnn,
    stand_in_cudnn,
    torch_device,
)

SHAPES = [(64, 100, 256), (128, 50, 512), (16, 1024, 768), (256, 200, 1024)]
QUICK_SHAPES = [(4, 10, 8)]


# --- 1. environment ---------------------------------------------------------------------------


def environment() -> dict:
    dev = jax.devices()[0]
    env = {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
        "devices": [f"{d.platform}:{d.device_kind}" for d in jax.devices()],
        "jax_platform_version": getattr(dev.client, "platform_version", None),
        "jax_default_matmul_precision": jax.config.jax_default_matmul_precision,
    }
    for name in ("jaxlib", "flax", "optax", "numpy"):
        try:
            env[name] = __import__(name).__version__
        except ImportError as e:
            env[name] = f"missing: {e}"
    try:
        import torch

        env["torch"] = torch.__version__
        env["torch_cuda"] = torch.version.cuda
        env["torch_cudnn"] = torch.backends.cudnn.version() if torch.cuda.is_available() else None
        env["torch_device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        env["torch_cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32
        env["torch_matmul_allow_tf32"] = torch.backends.cuda.matmul.allow_tf32
    except ImportError as e:
        env["torch"] = f"missing: {e}"
    try:
        query = "--query-gpu=name,driver_version,memory.total"
        out = subprocess.run(
            ["nvidia-smi", query, "--format=csv,noheader"], capture_output=True, text=True
        )
        env["nvidia_smi"] = out.stdout.strip() or out.stderr.strip()
    except OSError as e:
        env["nvidia_smi"] = f"not available: {e.strerror}"
    return env


# --- 2. correctness ---------------------------------------------------------------------------


# --- 3. train steps ---------------------------------------------------------------------------


def train_steps(quick: bool, reps: int, deadline: float) -> list[dict]:
    from benchmarks import train_step

    rows = []
    # --quick: seq2seq alone (the code path is the same for both; each costs a compile)
    for name in ("seq2seq",) if quick else ("seq2seq", "chars"):
        if time.monotonic() > deadline:
            rows.append({"model": name, "status": "skipped", "reason": "over the time budget"})
            continue
        try:
            config = train_step.load_config(name, "smoke" if quick else None)
            step, state, batches = train_step.launcher_step(config, 1)
            compiled = step.lower(state, batches[0]).compile()  # compiled once, timed as is
            mem = compiled.memory_analysis()
            ms = median_ms(train_step.jax_timer(compiled, state, batches), reps)
            stats = jax.devices()[0].memory_stats() or {}
            rows.append(
                {
                    "model": name,
                    "config": train_step.describe(config),
                    "ms_per_step": ms,
                    "steps_per_s": 1e3 / ms,
                    "compiled_temp_bytes": getattr(mem, "temp_size_in_bytes", None),
                    "compiled_argument_bytes": getattr(mem, "argument_size_in_bytes", None),
                    "device_peak_bytes_so_far": stats.get("peak_bytes_in_use"),
                }
            )
        except Exception as e:  # noqa: BLE001
            rows.append({"model": name, "status": "error", "error": f"{type(e).__name__}: {e}"})
    return rows


# --- 4. layer timing --------------------------------------------------------------------------


def seqlstm_fns(b, t, d, dtype, backend):
    from seqlstm.cell import init_params
    from seqlstm.scan import lstm_scan

    if backend == "cudnn":
        require_cudnn()
        if dtype != jnp.float32:
            raise Skip("seqlstm's cuDNN path computes in float32 only (seqlstm/cudnn.py)")
    params = init_params(jax.random.key(0), d, d)
    x = jax.random.normal(jax.random.key(1), (b, t, d))
    return fwd_and_train_fns(
        lambda p, x: lstm_scan(p, x, dtype=dtype, backend=backend)[0], params, x
    )


def flax_fns(b, t, d, dtype):
    from flax import linen as nn

    model = nn.RNN(nn.OptimizedLSTMCell(d, dtype=dtype, param_dtype=jnp.float32))
    x = jax.random.normal(jax.random.key(1), (b, t, d))
    return fwd_and_train_fns(model.apply, model.init(jax.random.key(0), x), x)


def torch_fns(b, t, d, dtype):
    import torch

    dev = torch_device()
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    lstm = torch.nn.LSTM(d, d, batch_first=True).to(dev)
    x = torch.randn(b, t, d, device=dev)
    xg = x.clone().requires_grad_(True)
    bf16 = dtype == jnp.bfloat16

    def run(inp):
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=bf16):
            return lstm(inp)[0]

    def fwd():
        with torch.no_grad():
            run(x)
        sync()

    def train():
        lstm.zero_grad(set_to_none=True)
        xg.grad = None
        y = run(xg).float()
        (y * y).sum().backward()
        sync()

    return fwd, train


IMPLS = {
    "scan": lambda b, t, d, dt: seqlstm_fns(b, t, d, dt, "scan"),
    "cudnn": lambda b, t, d, dt: seqlstm_fns(b, t, d, dt, "cudnn"),
    "flax": flax_fns,
    "torch": torch_fns,
}


def layer_timing(shapes, reps: int, deadline: float) -> list[dict]:
    rows = []
    for dtype in (jnp.float32, jnp.bfloat16):
        for b, t, d in shapes:
            for impl, make in IMPLS.items():
                row = {"shape": [b, t, d], "dtype": jnp.dtype(dtype).name, "impl": impl}
                try:
                    if time.monotonic() > deadline:
                        raise Skip("over the time budget")
                    fwd, train = make(b, t, d, dtype)
                    row["fwd_ms"] = median_ms(fwd, reps, warmup=2)
                    row["train_ms"] = median_ms(train, reps, warmup=2)
                except Skip as e:
                    row.update(status="skipped", reason=str(e))
                except Exception as e:  # noqa: BLE001
                    row.update(status="error", error=f"{type(e).__name__}: {e}")
                rows.append(row)
                print(f"  {row}", flush=True)
    return rows


# --- the report -------------------------------------------------------------------------------


def cell(row: dict | None) -> str:
    if row is None:
        return "-"
    if "fwd_ms" in row:
        return f"{row['fwd_ms']:.2f} / {row['train_ms']:.2f}"
    return row.get("status", "?")


def timing_tables(rows: list[dict]) -> str:
    out = []
    for dtype in ("float32", "bfloat16"):
        head = ["(B, T, D=H)", *(f"{i} fwd / train ms" for i in IMPLS)]
        out += [f"\n{dtype}:", "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
        for shape in dict.fromkeys(tuple(r["shape"]) for r in rows):
            by = {r["impl"]: r for r in rows if tuple(r["shape"]) == shape and r["dtype"] == dtype}
            out.append(f"| {shape} | " + " | ".join(cell(by.get(i)) for i in IMPLS) + " |")
    return "\n".join(out)


def failures(report: dict) -> list[str]:
    """What failed: sections that raised, rows that errored, comparisons outside tolerance."""
    bad = [f"section {k}: {v['error']}" for k, v in report["sections"].items() if "error" in v]
    for row in report["sections"].get("correctness", {}).get("result", []):
        for label, res in row.items():
            if not isinstance(res, dict):
                continue
            if res.get("status") == "error":
                bad.append(f"{row['case']}, {label}: {res['error']}")
            for part, v in res.items():
                if isinstance(v, dict) and v.get("ok") is False:
                    bad.append(
                        f"{row['case']}, {label}, {part}: max |diff| {v['max_abs_diff']:.2e}"
                    )
    for name in ("train_steps", "layer_timing"):
        for row in report["sections"].get(name, {}).get("result", []):
            if row.get("status") == "error":
                bad.append(f"{name} {row}")
    return bad


def main() -> int:
    parser = cli.parser(
        __doc__, quick="tiny sizes (CPU smoke check)", write=False, reps=10, rounds=None
    )
    parser.add_argument("--out", required=True, help="folder for accelerator.json")
    parser.add_argument("--budget-s", type=float, default=400.0, help="skip timing rows after")
    parser.add_argument(
        "--cudnn-stand-in",
        action="store_true",
        help="CPU testing of this script: jax.experimental.rnn.lstm_ref stands in for cuDNN",
    )
    args = parser.parse_args()
    start = time.monotonic()
    deadline = start + args.budget_s
    reps = 2 if args.quick else args.reps
    if args.cudnn_stand_in:
        stand_in_cudnn()
    sections = {
        "environment": environment,
        # --quick: two of the cases (the code path is the same for every case)
        "correctness": lambda: correctness(QUICK_CASES if args.quick else CASES),
        "train_steps": lambda: train_steps(args.quick, reps, deadline),
        "layer_timing": lambda: layer_timing(
            QUICK_SHAPES if args.quick else SHAPES, reps, deadline
        ),
    }
    report = {"quick": args.quick, "sections": {}}
    for name, fn in sections.items():
        print(f"== {name}", flush=True)
        t0 = time.monotonic()
        try:
            report["sections"][name] = {"result": fn()}
        except Exception as e:  # noqa: BLE001 - one section's failure must not stop the others
            traceback.print_exc()
            report["sections"][name] = {"error": f"{type(e).__name__}: {e}"}
        report["sections"][name]["seconds"] = round(time.monotonic() - t0, 1)
    report["elapsed_s"] = round(time.monotonic() - start, 1)
    report["failures"] = failures(report)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "accelerator.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print_report(report)
    print(f"wrote {out / 'accelerator.json'} in {report['elapsed_s']} s")
    return 1 if report["failures"] else 0


def print_report(report: dict) -> None:
    s = report["sections"]
    print("\n== report")
    print(json.dumps(s["environment"].get("result", s["environment"]), indent=1))
    for row in s["correctness"].get("result", []):
        parts = []
        for label, res in row.items():
            if label == "case":
                continue
            if "status" in res:
                parts.append(f"{label}: {res['status']}")
            else:
                worst = max(v["max_abs_diff"] for v in res.values())
                ok = all(v["ok"] for v in res.values())
                parts.append(f"{label}: {'ok' if ok else 'FAILED'} (max |diff| {worst:.1e})")
        print(f"| {row['case']} | " + " | ".join(parts) + " |")
    for row in s["train_steps"].get("result", []):
        print(f"| train step {row['model']} | " + json.dumps(row) + " |")
    print(timing_tables(s["layer_timing"].get("result", [])))
    for line in report["failures"]:
        print("FAILED:", line)


if __name__ == "__main__":
    sys.exit(main())
