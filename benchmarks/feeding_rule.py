"""The measurement behind the input-feeding decoder's native loops (`seqlstm.kernels.rule.
native_feeding_wins`): `seqlstm.feeding.feeding_decoder`'s two scans against the native
kernel's two calls, forward and training step, at G2P's decoder and around it (the results:
rule.py's docstring and benchmarks/README.md).

    python benchmarks/feeding_rule.py
    python benchmarks/feeding_rule.py --quick    # the smallest shape, few repetitions

(B, T, S, H, L) per row: batch, target steps, source positions, hidden size (the encoder
outputs, the query and the additive attention are H wide too), layers. "train" is the
gradient of the summed outputs with respect to every input (weights, states, encoder
outputs). Best of 2 interleaved medians of 10 (`--rounds`, `--reps`; benchmarks/common.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a file (python benchmarks/x.py): import as `python -m` would
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import cli  # noqa: E402
from benchmarks.common import best_medians, machine  # noqa: E402

SHAPES = [
    (64, 9, 8, 256, 2),  # G2P's decoder at its mean bucket (8 letters, 9 phones)
    (64, 12, 16, 256, 2),  # G2P's longer words
    (128, 9, 8, 256, 2),  # around rule.FEEDING_FORWARD_MAX (batch x hidden)
    (64, 9, 8, 512, 2),
    (128, 9, 8, 512, 2),
    (256, 9, 8, 512, 2),  # configs/g2p.py:large
    (32, 20, 20, 128, 1),
    (16, 30, 30, 64, 1),
    (8, 10, 10, 16, 1),  # tiny
]


def loop_fns(b, t, s, h, layers, backend):
    """(forward, train) callables of `feeding_decoder` with additive attention."""
    from seqlstm import feeding

    rng = np.random.default_rng(0)
    normal = lambda *shape: jnp.asarray(0.3 * rng.normal(size=shape), jnp.float32)
    arrays = (
        normal(t, b, 4 * h),
        tuple(normal(2 * h, 4 * h) for _ in range(layers)),
        tuple(normal(4 * h) for _ in range(layers)),
        tuple(normal(b, h) for _ in range(layers)),
        tuple(normal(b, h) for _ in range(layers)),
        normal(b, h),
        normal(h, h),
        normal(h),
        normal(2 * h, h),
        normal(b, s, h),
        normal(b, s, h),
        jnp.asarray(rng.integers(1, s + 1, b)),
    )

    def apply(*arrays):
        return feeding.feeding_decoder(*arrays, "additive", 1, backend)[0]

    fwd = jax.jit(apply)
    train = jax.jit(jax.grad(lambda *a: jnp.sum(apply(*a)), argnums=tuple(range(11))))
    return (
        lambda: jax.block_until_ready(fwd(*arrays)),
        lambda: jax.block_until_ready(train(*arrays)),
    )


def main() -> None:
    parser = cli.parser(
        __doc__, quick="the smallest shape, few repetitions", write=False, reps=10, rounds=2
    )
    args = parser.parse_args()
    reps, rounds = (3, 1) if args.quick else (args.reps, args.rounds)
    shapes = SHAPES[-1:] if args.quick else SHAPES
    print(machine())
    print(
        "| (B, T, S, H, L) | scan fwd / train ms | native fwd / train ms "
        "| native speed-up fwd / train |"
    )
    print("|---|---|---|---|")
    for shape in shapes:
        fns = {k: loop_fns(*shape, backend=k) for k in ("scan", "native")}
        ms = best_medians(fns, reps, rounds)
        sc, na = ms["scan"], ms["native"]
        print(
            f"| {shape} | {sc[0]:.2f} / {sc[1]:.2f} | {na[0]:.2f} / {na[1]:.2f} "
            f"| {sc[0] / na[0]:.2f} / {sc[1] / na[1]:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
