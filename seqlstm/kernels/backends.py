"""The rule that picks a backend of the recurrence (and the step form of the scan).

`lstm_scan(backend=...)` takes one of `BACKENDS`: `"scan"` (`seqlstm.scan`, every platform),
`"cudnn"` (`seqlstm.cudnn`, a CUDA GPU), `"native"` (`seqlstm.kernels.native`, the CPU kernel) or
`"auto"`, which `choose_backend` resolves per call from the platform, the dtype and the call's
shape (`auto_shape`; the CPU threshold is measured in `seqlstm.kernels.rule`).
`choose_projection` resolves the scan's `projection="auto"` by platform. `seqlstm.scan`
re-exports these names.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

BACKENDS = ("auto", "scan", "cudnn", "native")


@functools.cache
def has_cudnn() -> bool:
    """True when the default backend is a CUDA GPU (where `jax.experimental.rnn` runs cuDNN).

    Cached: the backend of a process does not change, and `lstm_scan` asks on every call."""
    if jax.default_backend() != "gpu":
        return False
    try:
        return "cuda" in jax.devices()[0].client.platform_version.lower()
    except Exception:  # an unknown client: take the scan, which runs everywhere
        return False


def choose_backend(backend: str, dtype, shape: tuple[int, int, int, int] | None = None) -> str:
    """Resolves `backend="auto"` and checks an explicit choice.

    `"auto"`: cuDNN on a CUDA GPU in float32; on CPU the native kernel where
    `seqlstm.kernels.rule.native_wins` says its training step is faster at `shape` (float32, or
    bfloat16 with or without the CPU's bfloat16 units; kernel built), returned as
    `"native_train"` where the scan's forward pass is the faster one
    (`rule.native_forward_wins`): then a call that is not differentiated runs the scan;
    otherwise the scan. `"native"` is lowered through `jax.lax.platform_dependent`: the CPU
    lowering runs the kernel, any other platform (e.g. `jax.export(..., platforms=["cuda"])`)
    the scan.

    Args:
      backend: one of `BACKENDS`.
      dtype: the computation dtype.
      shape: `(batch, time, features, hidden)` of the call, or None (auto then keeps the scan).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    from seqlstm.kernels import native

    float32 = jnp.dtype(dtype) == jnp.float32
    if backend == "auto":
        if has_cudnn():
            return "cudnn" if float32 else "scan"
        if jax.default_backend() == "cpu" and native.runs_dtype(dtype) and shape is not None:
            from seqlstm.kernels import rule

            if native.native_available():
                bf16 = not float32
                units = bf16 and native.bf16_units()
                if rule.native_wins(*shape, bf16, units):
                    forward = rule.native_forward_wins(*shape, bf16, units)
                    return "native" if forward else "native_train"
        return "scan"
    if backend == "cudnn" and not has_cudnn():
        raise ValueError(
            f"backend='cudnn' needs a CUDA GPU, but JAX's default backend is "
            f"{jax.default_backend()!r}; use backend='auto' or 'scan'"
        )
    if backend == "native":
        if not native.native_available():
            raise ValueError(
                f"backend='native' is unavailable: {native.native_reason()}; "
                "use backend='auto' or 'scan'"
            )
        if not native.runs_dtype(dtype):
            raise ValueError(
                f"backend='native' runs {' and '.join(native.DTYPES)} only, got dtype "
                f"{jnp.dtype(dtype).name}; use backend='auto' or 'scan'"
            )
    return backend


def auto_shape(params: dict, x: jax.Array) -> tuple[int, int, int, int] | None:
    """`(batch, time, features, hidden)` for the auto rule, or None where the native kernel must
    not be picked automatically: a batch split over devices by the partitioner (explicit or
    automatic sharding), which a custom call would gather whole onto every device. Inside
    `shard_map` each device sees its own rows, and the kernel runs on them."""
    aval = jax.typeof(x)
    spec = getattr(getattr(aval, "sharding", None), "spec", ())
    if any(axis is not None for axis in spec):  # explicit sharding, even over one device
        return None
    if jax.device_count() > 1:
        manual = getattr(aval, "manual_axis_type", None)
        varying = manual.varying if manual is not None else getattr(aval, "vma", frozenset())
        if not varying:
            return None
    return x.shape[0], x.shape[1], x.shape[2], params["recurrent_kernel"].shape[-1] // 4


def choose_projection(backend: str | None = None) -> str:
    """The step form `"auto"` resolves to on a backend.

    On CPU the per-step form wins at every shape benchmarks/lstm_layer.py measures (the hoisted
    slice is compiled to scalar gate math); on GPU and TPU the hoisted matmul is the usual choice.
    """
    backend = backend or jax.default_backend()
    return "per_step" if backend == "cpu" else "hoisted"
