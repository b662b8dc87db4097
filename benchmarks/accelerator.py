"""One prepared accelerator check: cuDNN correctness, LSTM speed, training steps, versions.

    python benchmarks/accelerator.py --out=DIR            # one CUDA GPU (H100/H200): < 8 min
    python benchmarks/accelerator.py --quick --out=DIR    # CPU: the same code paths, tiny sizes

Needs (carry as wheels where missing):
  - every section: this repository (seqlstm, benchmarks/), jax and jaxlib with CUDA
    (`jax[cuda12]` or `jax[cuda13]`: the CUDA plugin and PJRT wheels, cuDNN included), flax,
    optax, numpy; torch built with CUDA for the PyTorch rows (without it those rows fail, and
    are reported);
  - the training-step section only, what `seqlstm.train` imports: ml-collections, orbax-checkpoint,
    tensorboardX, tqdm, absl-py (the layer sections import none of them).
No keras, matplotlib or network access.

Sections, each run on its own (a failure is reported in its place, the others still run), the
report printed and written to DIR/accelerator.json:

1. environment: device name, driver and CUDA/cuDNN versions as JAX and PyTorch see them, library
   versions, and the TF32 settings the timings ran under (JAX and PyTorch defaults, unchanged).
2. correctness (float32, B=6, T=12, D=10, H=16, lengths [12, 0, 5, 1, 12, 3] including 0 and T):
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

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from common import fwd_and_train_fns, median_ms  # noqa: E402

SHAPES = [(64, 100, 256), (128, 50, 512), (16, 1024, 768), (256, 200, 1024)]
QUICK_SHAPES = [(4, 10, 8)]
B, T, D, H = 6, 12, 10, 16
LENGTHS = [T, 0, 5, 1, T, 3]
CASES = [  # name, layers, bidirectional, reversed, lengths
    ("1 layer, lengths", 1, False, False, True),
    ("1 reversed layer, lengths", 1, False, True, True),
    ("bidirectional, lengths", 1, True, False, True),
    ("2 layers bidirectional, lengths", 2, True, False, True),
    ("2 layers, full length", 2, False, False, False),
]
QUICK_CASES = [CASES[1], CASES[3]]
TOL = {"outputs": 1e-5, "states": 1e-5, "gradients": 1e-4}  # rtol = atol


class Skip(Exception):
    """A row that cannot run here (reported as skipped, with the reason)."""


def torch_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def require_cudnn() -> None:
    from seqlstm.scan import choose_backend

    try:
        choose_backend("cudnn", jnp.float32)
    except ValueError as e:
        raise Skip(str(e)) from None


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


def stack_params(key, layers: int, dirs: int) -> list[list[dict]]:
    from seqlstm.cell import init_params

    params, d = [], D
    for _ in range(layers):
        layer = []
        for _ in range(dirs):
            key, k1, k2 = jax.random.split(key, 3)
            p = init_params(k1, d, H)
            p["bias"] = 0.3 * jax.random.normal(k2, (4 * H,))
            layer.append(p)
        params.append(layer)
        d = dirs * H
    return params


def seqlstm_loss(params, x, cot, lengths, reverse: bool, backend: str):
    """A random linear function of a stack's outputs and final states (torch's order of states:
    layer 0 forward, layer 0 backward, layer 1 forward, ...), with the outputs and states."""
    from seqlstm.scan import lstm_scan

    states = []
    for layer in params:
        ys = []
        for k, p in enumerate(layer):
            y, s = lstm_scan(p, x, seq_lengths=lengths, reverse=reverse or k == 1, backend=backend)
            ys.append(y)
            states.append(s)
        x = jnp.concatenate(ys, axis=-1)
    total = jnp.sum(x * cot["y"])
    for s, gh, gc in zip(states, cot["h"], cot["c"]):
        total = total + jnp.sum(s.h * gh) + jnp.sum(s.c * gc)
    return total, (x, jnp.stack([s.h for s in states]), jnp.stack([s.c for s in states]))


def run_seqlstm(params, x, cot, lengths, reverse, backend) -> dict:
    grad = jax.grad(seqlstm_loss, argnums=(0, 1), has_aux=True)
    fn = jax.jit(grad, static_argnames=("reverse", "backend"))
    (g_params, g_x), (y, h, c) = fn(params, x, cot, lengths, reverse=reverse, backend=backend)
    flat = [np.asarray(g[k]) for layer in g_params for g in layer for k in sorted(g)]
    return {
        "outputs": [np.asarray(y)],
        "states": [np.asarray(h), np.asarray(c)],
        "gradients": [*flat, np.asarray(g_x)],
    }


def run_torch(params, x, cot, lengths) -> tuple[dict, np.ndarray]:
    """PyTorch's nn.LSTM with `params`' weights on the rows of non-zero length.

    Returns:
      `(results like run_seqlstm's, the rows used)`.
    """
    import torch

    dev = torch_device()
    layers, dirs = len(params), len(params[0])
    m = torch.nn.LSTM(D, H, num_layers=layers, bidirectional=dirs == 2, batch_first=True)
    m = m.to(dev)
    t = lambda a: torch.tensor(np.asarray(a), device=dev)  # noqa: E731
    with torch.no_grad():
        for i, layer in enumerate(params):
            for k, p in enumerate(layer):
                sfx = f"l{i}" + ("_reverse" if k else "")
                getattr(m, f"weight_ih_{sfx}").copy_(t(p["kernel"].T))
                getattr(m, f"weight_hh_{sfx}").copy_(t(p["recurrent_kernel"].T))
                getattr(m, f"bias_ih_{sfx}").copy_(t(p["bias"]))
                getattr(m, f"bias_hh_{sfx}").zero_()
    lengths = np.asarray(lengths)
    keep = np.nonzero(lengths > 0)[0]
    xt = t(np.asarray(x)[keep]).requires_grad_(True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        xt, torch.tensor(lengths[keep]), batch_first=True, enforce_sorted=False
    )
    y, (h, c) = m(packed)
    y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=T)
    ch, cc = np.asarray(cot["h"])[:, keep], np.asarray(cot["c"])[:, keep]
    loss = (y * t(np.asarray(cot["y"])[keep])).sum() + (h * t(ch)).sum() + (c * t(cc)).sum()
    loss.backward()
    grads = []
    for i, layer in enumerate(params):
        for k in range(len(layer)):
            sfx = f"l{i}" + ("_reverse" if k else "")
            g = {
                "bias": getattr(m, f"bias_ih_{sfx}").grad,
                "kernel": getattr(m, f"weight_ih_{sfx}").grad.T,
                "recurrent_kernel": getattr(m, f"weight_hh_{sfx}").grad.T,
            }
            grads += [g[key].cpu().numpy() for key in sorted(g)]
    out = {
        "outputs": [y.detach().cpu().numpy()],
        "states": [h.detach().cpu().numpy(), c.detach().cpu().numpy()],
        "gradients": [*grads, xt.grad.cpu().numpy()],
    }
    return out, keep


def compare(got: dict, want: dict) -> dict:
    out = {}
    for part, tol in TOL.items():
        err = max(float(np.max(np.abs(a - b), initial=0.0)) for a, b in zip(got[part], want[part]))
        ok = all(np.allclose(a, b, rtol=tol, atol=tol) for a, b in zip(got[part], want[part]))
        out[part] = {"max_abs_diff": err, "ok": bool(ok)}
    return out


def rows_of(res: dict, keep) -> dict:
    """`res` restricted to the batch rows `keep` (outputs and input gradient: axis 0; states:
    axis 1; weight gradients whole: a length-0 row adds nothing to them)."""
    return {
        "outputs": [res["outputs"][0][keep]],
        "states": [s[:, keep] for s in res["states"]],
        "gradients": [*res["gradients"][:-1], res["gradients"][-1][keep]],
    }


def attempt(fn) -> dict:
    """`fn()`, or the reason it was skipped or the error it raised."""
    try:
        return fn()
    except Skip as e:
        return {"status": "skipped", "reason": str(e)}
    except Exception as e:  # noqa: BLE001 - reported; the other comparisons go on
        return {"status": "error", "error": f"{type(e).__name__}: {e}"}


def check_case(name: str, layers: int, bidirectional: bool, reverse: bool, with_lengths: bool):
    """One row of the correctness section: cudnn, scan and PyTorch compared pairwise."""
    dirs = 2 if bidirectional else 1
    params = stack_params(jax.random.key(0), layers, dirs)
    x = jax.random.normal(jax.random.key(1), (B, T, D))
    lengths = jnp.array(LENGTHS if with_lengths else [T] * B, jnp.int32)
    ks = jax.random.split(jax.random.key(2), 3)
    cot = {
        "y": jax.random.normal(ks[0], (B, T, dirs * H)),
        "h": jax.random.normal(ks[1], (layers * dirs, B, H)),
        "c": jax.random.normal(ks[2], (layers * dirs, B, H)),
    }
    results = {}

    def ours(backend):
        if backend == "cudnn":
            require_cudnn()
        with jax.default_matmul_precision("highest"):  # TF32 off, cuDNN's too
            results[backend] = run_seqlstm(params, x, cot, lengths, reverse, backend)
        return results[backend]

    def theirs():
        if reverse and not bidirectional:
            raise Skip("torch.nn.LSTM has no unidirectional reversed layer")
        import torch

        cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
        saved = cudnn.allow_tf32, matmul.allow_tf32
        cudnn.allow_tf32 = matmul.allow_tf32 = False
        try:
            results["torch"], results["keep"] = run_torch(params, x, cot, lengths)
        finally:
            cudnn.allow_tf32, matmul.allow_tf32 = saved
        return results["torch"]

    def cudnn_vs_torch():
        if "cudnn" not in results or "torch" not in results:
            raise Skip("needs both the cudnn and the PyTorch results")
        return compare(results["torch"], rows_of(results["cudnn"], results["keep"]))

    ours("scan")
    return {
        "case": name,
        "cudnn vs scan": attempt(lambda: compare(ours("cudnn"), results["scan"])),
        f"PyTorch ({torch_device()}) vs scan": attempt(
            lambda: compare(theirs(), rows_of(results["scan"], results["keep"]))
        ),
        "cudnn vs PyTorch": attempt(cudnn_vs_torch),
    }


def correctness(cases) -> list[dict]:
    rows = []
    for case in cases:
        rows.append(check_case(*case))
        print(f"  {rows[-1]}", flush=True)
    return rows


# --- 3. train steps ---------------------------------------------------------------------------


def train_steps(quick: bool, reps: int, deadline: float) -> list[dict]:
    import train_step

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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for accelerator.json")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CPU smoke check)")
    parser.add_argument("--reps", type=int, default=10)
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


def stand_in_cudnn() -> None:
    """Makes `backend="cudnn"` run `jax.experimental.rnn.lstm_ref` on CPU (as tests/test_cudnn.py
    does), so that the cuDNN rows of this script can be exercised without a GPU."""
    from jax.experimental import rnn

    import seqlstm.cudnn
    import seqlstm.scan

    def kernel(x, h0, c0, weights, lengths, input_size, hidden_size):
        w = rnn.unpack_lstm_weights(weights, input_size, hidden_size, 1, False)
        return rnn.lstm_ref(x, h0, c0, *w, lengths, input_size, hidden_size, 1, 0.0, False)

    seqlstm.scan.has_cudnn = lambda: True
    seqlstm.cudnn._kernel = kernel


if __name__ == "__main__":
    sys.exit(main())
