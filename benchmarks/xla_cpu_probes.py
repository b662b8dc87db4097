"""The measurements behind benchmarks/README.md, "Reading the profile", in one run.

    python benchmarks/xla_cpu_probes.py            # prints four small tables
    python benchmarks/xla_cpu_probes.py --write    # also rewrites its README section
    python benchmarks/xla_cpu_probes.py --quick    # tiny shapes, few repetitions (a smoke check)

1. The recurrent product in a 100-step `lax.scan`: one chain, two independent chains in one loop,
   one batched `[2, B, H] @ [2, H, 4H]` product (XLA:CPU runs small dots on one core, in turn).
2. The gate math of one step, reading its pre-activations by dynamic slice of a `[T, B, 4H]`
   array, through the always-true `lax.cond` of `seqlstm.fused_backward._read_step`, or from a
   buffer no slice is fused into.
3. A weight gradient `sum_t a_t^T dz_t`: the einsum over two contracting dimensions beside the
   2-D `[n, T*B] @ [T*B, 4H]` matmul.
4. The fused training step (`seqlstm.fused_backward.fused_lstm`) as it is, and with each of the
   two choices above undone: direct reads in the backward loop, einsum weight gradients.
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a file (python benchmarks/x.py): import as `python -m` would
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from benchmarks import cli  # noqa: E402
from benchmarks.common import best_medians, machine, median_ms, write_section  # noqa: E402
from benchmarks.lstm_layer import LAYER_SHAPES  # noqa: E402
from seqlstm import fused_backward  # noqa: E402
from seqlstm.cell import gate_update, init_params  # noqa: E402

STEPS = 100


def _per_step_us(step, carry, xs, reps):
    f = jax.jit(lambda c, xs: jax.lax.scan(step, c, xs, length=STEPS)[0])
    return 1e3 * median_ms(lambda: jax.block_until_ready(f(carry, xs)), reps) / STEPS


def recurrent_products(b, h, reps):
    key = jax.random.split(jax.random.key(0), 3)
    w = jax.random.normal(key[0], (2, h, 4 * h)) / h**0.5
    a = jax.random.normal(key[1], (2, b, h))

    def combine(z):  # uses every column, keeps values of order 1
        return jnp.tanh(z[..., :h] * z[..., h : 2 * h] + z[..., 2 * h : 3 * h] * z[..., 3 * h :])

    return {
        "one chain": _per_step_us(lambda c, _: (combine(c @ w[0]), None), a[0], None, reps),
        "two chains in one loop": _per_step_us(
            lambda c, _: ((combine(c[0] @ w[0]), combine(c[1] @ w[1])), None),
            (a[0], a[1]),
            None,
            reps,
        ),
        "one batched [2, B, H] product": _per_step_us(
            lambda c, _: (combine(jnp.einsum("dbk,dkn->dbn", c, w)), None), a, None, reps
        ),
    }


def gate_reads(b, h, reps):
    z = jax.random.normal(jax.random.key(0), (STEPS, b, 4 * h))
    c0 = jnp.zeros((b, h))

    def step(read):
        def body(c, t):
            new = gate_update(read(t) + c[:, :1], c)  # c[:, :1]: the step depends on the last
            return new.c, None

        return body

    sliced = step(lambda t: jax.lax.dynamic_index_in_dim(z, t, keepdims=False))
    isolated = step(lambda t: fused_backward._read_step((z,), t)[0])
    fresh = step(lambda t: z[0])
    ts = jnp.arange(STEPS)
    return {
        "dynamic slice": _per_step_us(sliced, c0, ts, reps),
        "slice inside lax.cond": _per_step_us(isolated, c0, ts, reps),
        "no slice": _per_step_us(fresh, c0, ts, reps),
    }


def _einsum_outer(a, dz, dtype, acc):
    return jnp.einsum("tbn,tbg->ng", a.astype(dtype), dz.astype(dtype), preferred_element_type=acc)


def weight_gradient(b, t, d, reps):
    a = jax.random.normal(jax.random.key(0), (t, b, d))
    dz = jax.random.normal(jax.random.key(1), (t, b, 4 * d))
    f32 = jnp.dtype("float32")
    out = {}
    for name, fn in (("einsum", _einsum_outer), ("2-D matmul", fused_backward._sum_outer)):
        f = jax.jit(lambda a, dz, fn=fn: fn(a, dz, f32, f32))
        out[name] = median_ms(lambda f=f: f(a, dz).block_until_ready(), reps)
    return out


def training_variants(b, t, d, reps, rounds):
    params = init_params(jax.random.key(0), d, d)
    x = jax.random.normal(jax.random.key(1), (t, b, d))
    h0 = jnp.zeros((b, d))
    f32 = jnp.dtype("float32")

    def loss(p, x):
        k, r, bias = p["kernel"], p["recurrent_kernel"], p["bias"]
        ys, _, _ = fused_backward.fused_lstm(k, r, bias, x, h0, h0, None, False, 1, f32)
        return jnp.sum(ys**2)

    fns = {}
    for name, reads, outer in (
        ("as it is", fused_backward.isolate_reads, fused_backward._sum_outer),
        ("direct reads", lambda: False, fused_backward._sum_outer),
        ("einsum weight gradients", fused_backward.isolate_reads, _einsum_outer),
    ):
        saved = fused_backward.isolate_reads, fused_backward._sum_outer
        fused_backward.isolate_reads, fused_backward._sum_outer = reads, outer
        try:  # the backward pass is traced (and so takes the variant) on the first call
            grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
            jax.block_until_ready(grad(params, x))
        finally:
            fused_backward.isolate_reads, fused_backward._sum_outer = saved
        fns[name] = (lambda: None, lambda grad=grad: jax.block_until_ready(grad(params, x)))
    return {name: train for name, (_, train) in best_medians(fns, reps, rounds).items()}


def table(title, unit, rows) -> str:
    names = list(next(iter(rows.values())))
    lines = [f"{title} ({unit}):", "", "| case | " + " | ".join(names) + " |"]
    lines.append("|---|" + "---|" * len(names))
    for case, values in rows.items():
        lines.append(f"| {case} | " + " | ".join(f"{values[n]:.2f}" for n in names) + " |")
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    return text


def main() -> None:
    parser = cli.parser(__doc__, quick="tiny shapes, few repetitions", reps=20, rounds=3)
    args = parser.parse_args()
    reps, rounds = (3, 1) if args.quick else (args.reps, args.rounds)
    shapes = [(4, 10, 8)] if args.quick else LAYER_SHAPES
    small = [(4, 8)] if args.quick else [(32, 128), (64, 256), (16, 64)]
    info = machine()
    print(info + "\n")
    tables = [
        table(
            "1. Recurrent product per step",
            "µs",
            {f"[{b}, {h}] @ [{h}, {4 * h}]": recurrent_products(b, h, reps) for b, h in small},
        ),
        table(
            "2. Gate math per step",
            "µs",
            {f"B={b}, H={h}": gate_reads(b, h, reps) for b, h in small},
        ),
        table(
            "3. Weight gradient over all steps",
            "ms",
            {f"({b}, {t}, {d})": weight_gradient(b, t, d, reps) for b, t, d in shapes},
        ),
        table(
            "4. Fused training step, float32",
            f"ms, best of {rounds} interleaved rounds",
            {f"({b}, {t}, {d})": training_variants(b, t, d, reps, rounds) for b, t, d in shapes},
        ),
    ]
    if args.write and not args.quick:
        write_section(
            "xla_cpu_probes",
            "## XLA:CPU probes\n\n"
            f"`python benchmarks/xla_cpu_probes.py --write` (what each table measures: the "
            f"script's docstring). Median of {reps}. Machine: {info}.\n\n" + "\n".join(tables),
        )


if __name__ == "__main__":
    main()
