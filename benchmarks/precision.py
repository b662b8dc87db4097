"""bfloat16 on this CPU: seqlstm and PyTorch's autocast LSTM, and whether XLA reaches bf16 units.

    python benchmarks/precision.py [--write] [--quick]

1. One LSTM layer in float32 and in mixed bfloat16, seqlstm beside PyTorch. seqlstm's bfloat16
   (`lstm_scan(dtype=jnp.bfloat16)`) runs the matmuls on bfloat16 inputs with float32
   accumulation; gates, h and c stay float32. PyTorch's is `torch.autocast("cpu", bfloat16)`
   around `nn.LSTM` (oneDNN's bf16 LSTM; the backward runs outside autocast, as its docs advise).
   Same loss and timing as benchmarks/lstm_layer.py.
2. Matmul throughput (GFLOP/s) in float32 and bfloat16 (float32 accumulation), XLA beside PyTorch,
   at the LSTM's product shapes and one large square. A CPU with bf16 dot-product instructions
   (AVX512_BF16's `vdpbf16ps`, or AMX tiles) does twice (AVX512_BF16) or many times (AMX) the
   float32 multiply-adds per cycle; a library that converts bf16 to float32 first gets no more
   than its float32 speed.
3. What the CPU offers (/proc/cpuinfo flags), what XLA compiles a bf16 dot to (the operand types
   of the `dot` in the optimized HLO and the library fusion it runs in), and which kernel oneDNN
   picks for PyTorch's bf16 LSTM (its verbose log, in a child process).

Ratios: float32 / bfloat16 time (above 1: bfloat16 faster), and PyTorch / seqlstm time.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

if not __package__:  # run as a file (python benchmarks/x.py): import as `python -m` would
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from benchmarks import cli  # noqa: E402
from benchmarks.common import best_medians, fwd_and_train_fns, machine, median_ms, write_section  # noqa: E402

SHAPES = [(32, 100, 128), (64, 100, 256), (128, 50, 512), (16, 512, 64)]
# (M, K, N): the recurrent product [B, H] @ [H, 4H], the all-steps input projection
# [T*B, D] @ [D, 4H], and a large square.
MATMULS = [(64, 256, 1024), (128, 512, 2048), (6400, 256, 1024), (2048, 2048, 2048)]
CPU_FLAGS = ("avx512f", "avx512_bf16", "amx_tile", "amx_bf16")


def seqlstm_fns(b, t, d, dtype):
    from seqlstm import lstm_scan
    from seqlstm.cell import init_params

    params = init_params(jax.random.key(0), d, d)
    x = jax.random.normal(jax.random.key(1), (b, t, d))
    return fwd_and_train_fns(lambda p, x: lstm_scan(p, x, dtype=dtype)[0], params, x)


def torch_fns(b, t, d, bf16: bool):
    import torch

    torch.manual_seed(0)
    lstm = torch.nn.LSTM(d, d, batch_first=True)
    x = torch.randn(b, t, d)
    xg = x.clone().requires_grad_(True)

    def run(inp):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return lstm(inp)[0]

    def fwd():
        with torch.no_grad():
            run(x)

    def train():
        lstm.zero_grad(set_to_none=True)
        xg.grad = None
        y = run(xg).float()
        (y * y).sum().backward()

    return fwd, train


def matmul_gflops(m, k, n, reps) -> dict[str, float]:
    """GFLOP/s of `[m, k] @ [k, n]` with float32 accumulation, per library and input dtype."""
    import torch

    out = {}
    a32 = jax.random.normal(jax.random.key(0), (m, k))
    b32 = jax.random.normal(jax.random.key(1), (k, n))
    mm = jax.jit(lambda a, b: jnp.matmul(a, b, preferred_element_type=jnp.float32))
    for name, dt in (("xla f32", jnp.float32), ("xla bf16", jnp.bfloat16)):
        a, b = a32.astype(dt), b32.astype(dt)
        out[name] = median_ms(lambda a=a, b=b: mm(a, b).block_until_ready(), reps)
    ta, tb = torch.randn(m, k), torch.randn(k, n)
    out["torch f32"] = median_ms(lambda: ta @ tb, reps)
    ta16, tb16 = ta.bfloat16(), tb.bfloat16()
    out["torch bf16"] = median_ms(lambda: ta16 @ tb16, reps)  # oneDNN accumulates in float32
    return {name: 2 * m * k * n / ms / 1e6 for name, ms in out.items()}


def cpu_info() -> tuple[str, dict[str, bool]]:
    """The CPU's family and model numbers, and which of `CPU_FLAGS` /proc/cpuinfo lists."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "unknown", {}
    field = lambda key: next(  # noqa: E731
        (ln.split(":", 1)[1].strip() for ln in lines if ln.split(":")[0].strip() == key), "?"
    )
    present = set(field("flags").split())
    ident = f"{field('model name')}, cpu family {field('cpu family')}, model {field('model')}"
    return ident, {f: f in present for f in CPU_FLAGS}


def xla_bf16_dot() -> str:
    """What XLA:CPU compiles a bf16 x bf16 -> f32 dot to: the operand types of the `dot` in the
    optimized HLO, the fusion kind around it, and whether a `convert` appears."""
    a = jnp.ones((256, 512), jnp.bfloat16)
    b = jnp.ones((512, 1024), jnp.bfloat16)
    f = jax.jit(lambda a, b: jnp.matmul(a, b, preferred_element_type=jnp.float32))
    hlo = f.lower(a, b).compile().as_text()
    types = dict(re.findall(r"(%[\w.\-]+) = (\w+)\[", hlo))
    dots = re.findall(r"= (\w+)\[[^\]]*\]\S* dot\(([^)]*)\)", hlo)
    if not dots:
        return "no `dot` in the optimized HLO"
    result, operands = dots[0]
    ins = ", ".join(types.get(o.strip().split(" ")[-1], "?") for o in operands.split(","))
    kinds = sorted(set(re.findall(r'"kind":"(__\w+)"', hlo)))
    where = f" inside a `{kinds[0]}` fusion (a library call)" if kinds else ""
    convert = "with" if " convert(" in hlo else "without"
    return f"`dot({ins}) -> {result}`{where}, {convert} a `convert` in the program"


def onednn_lstm_kernel() -> str:
    """The implementation oneDNN reports for PyTorch's bf16 autocast LSTM (ONEDNN_VERBOSE)."""
    code = (
        "import torch\n"
        "lstm = torch.nn.LSTM(64, 64, batch_first=True)\n"
        "with torch.autocast('cpu', dtype=torch.bfloat16):\n"
        "    lstm(torch.randn(4, 10, 64))\n"
    )
    env = dict(os.environ, ONEDNN_VERBOSE="1")
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    isa = re.search(r"onednn_verbose,.*,info,cpu,isa:([^\n]*)", proc.stdout)
    rnn = re.search(r"primitive,exec,cpu,rnn,([^,]*),([^,]*),src_layer:(\w+)", proc.stdout)
    if not rnn:
        return "no oneDNN RNN primitive in the verbose log"
    line = f"`{rnn.group(1)}` ({rnn.group(2)}, {rnn.group(3)} inputs)"
    return line + (f"; oneDNN's ISA: {isa.group(1).strip()}" if isa else "")


def main() -> None:
    parser = cli.parser(__doc__, reps=20, rounds=3)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(os.cpu_count())
    reps, rounds = (3, 1) if args.quick else (args.reps, args.rounds)
    shapes = [(4, 10, 8)] if args.quick else SHAPES
    matmuls = [(16, 32, 64)] if args.quick else MATMULS
    info = machine()
    print(info)
    ident, flags = cpu_info()
    found = [f"{'has' if flags.get(f) else 'no'} `{f}`" for f in CPU_FLAGS if f in flags] or [
        "flags unknown"
    ]
    facts = [
        f"CPU: {ident}: " + ", ".join(found) + ".",
        "XLA:CPU compiles a bfloat16 matmul to " + xla_bf16_dot() + ".",
        "oneDNN runs PyTorch's bf16 autocast LSTM with " + onednn_lstm_kernel() + ".",
    ]
    print("\n".join(facts))
    layer = [
        "| (B, T, D=H) | seqlstm float32 fwd / train ms | seqlstm bfloat16 | PyTorch float32 "
        "| PyTorch bf16 autocast | seqlstm float32 / bfloat16 | PyTorch float32 / bf16 "
        "| PyTorch / seqlstm, bfloat16 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    print(layer[0], flush=True)
    for b, t, d in shapes:
        fns = {
            "s32": seqlstm_fns(b, t, d, jnp.float32),
            "s16": seqlstm_fns(b, t, d, jnp.bfloat16),
            "t32": torch_fns(b, t, d, False),
            "t16": torch_fns(b, t, d, True),
        }
        r = best_medians(fns, reps, rounds)
        cells = [f"({b}, {t}, {d})"] + [f"{r[k][0]:.1f} / {r[k][1]:.1f}" for k in fns]
        for p, q in (("s32", "s16"), ("t32", "t16"), ("t16", "s16")):
            cells.append(f"{r[p][0] / r[q][0]:.2f} / {r[p][1] / r[q][1]:.2f}")
        layer.append("| " + " | ".join(cells) + " |")
        print(layer[-1], flush=True)
    mm = [
        "| [M, K] @ [K, N] | XLA float32 | XLA bfloat16 | XLA bf16 / f32 | PyTorch float32 "
        "| PyTorch bfloat16 | PyTorch bf16 / f32 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for m, k, n in matmuls:
        g = matmul_gflops(m, k, n, reps)
        mm.append(
            f"| [{m}, {k}] @ [{k}, {n}] | {g['xla f32']:.0f} | {g['xla bf16']:.0f} "
            f"| {g['xla bf16'] / g['xla f32']:.2f} | {g['torch f32']:.0f} | {g['torch bf16']:.0f} "
            f"| {g['torch bf16'] / g['torch f32']:.2f} |"
        )
        print(mm[-1], flush=True)
    if args.write and not args.quick:
        write_section(
            "precision",
            "## bfloat16 on this CPU\n\n"
            f"`python benchmarks/precision.py --write`. Machine: {info}.\n\n"
            + "\n".join(f"- {f}" for f in facts)
            + f"\n\nOne LSTM layer, best of {rounds} interleaved rounds of the median ms over "
            f"{reps} repetitions (ratios fwd / train):\n\n"
            + "\n".join(layer)
            + f"\n\nMatmul throughput, GFLOP/s (median of {reps}), float32 accumulation:\n\n"
            + "\n".join(mm),
        )


if __name__ == "__main__":
    main()
