"""The native CPU kernel of the LSTM recurrence (`lstm_cpu.cc`), called through `jax.ffi`.

The shared library `_lstm_cpu*.so` beside this file is built by `pip install -e .` on Linux
x86_64 (see setup.py); it links oneDNN's `dnnl_sgemm` (pip package `onednn`) for the backward
pass's whole-sequence products. It holds five typed XLA FFI handlers, registered here for the
CPU platform only:

* `seqlstm_lstm_forward`: the weights packed once per call, then every step one pass of
  register-blocked tiles (AVX-512, or AVX2 on CPUs without it) that accumulate `x_t @ W` and
  `h_{t-1} @ R` and apply the gate math in registers, spread over the cores with a barrier per
  step; it also returns the activated gates and cell states, which the backward pass reads.
* `seqlstm_lstm_inference`: the same forward pass without those residuals (nothing is
  differentiated: evaluation, decoding).
* `seqlstm_lstm_backward`: the reverse pass, tiles forming `dz_{t+1} @ R^T` and the gate
  derivatives of step t together, then the weight, bias and input gradients as one matmul each
  over all T*B rows.
* `seqlstm_feeding_forward` and `seqlstm_feeding_backward`: the input-feeding decoder's two
  teacher-forced loops (`seqlstm.feeding`), one call each: per step oneDNN products of the
  batch's rows, and the gate, attention and softmax math in loops between them (AVX-512 or
  AVX2, picked at load time), where XLA:CPU ran dozens of small fusions a step
  (`feeding_forward`, `feeding_backward`).

The LSTM handlers read and write the layers' batch-major `[B, T, .]` layout (or time-major inside
rematerialised chunks). `native_lstm` puts them together as a `jax.custom_vjp` with the
signature of `seqlstm.fused_backward.fused_lstm`'s segment. It runs float32, and bfloat16 as the
scan does (bfloat16 products accumulated in float32, see `native_lstm`; on the CPU's bfloat16
units where it has them, `bf16_units`); the layer
(`seqlstm.scan`) wraps it in `jax.lax.platform_dependent`, so that a program lowered for an
accelerator never contains this CPU custom call. A call uses every core the process may run on
(`SEQLSTM_NATIVE_THREADS` caps it), one in a process with several CPU devices. Where a forward
pass's outputs pass 32 MB, they are mapped as transparent huge pages before the kernel writes them
(XLA:CPU's intermediates come in one block that malloc maps afresh at every call once it passes
32 MB, and faulting it in 4 KB at a time cost up to 18% of a training step:
benchmarks/native_pages.py); `SEQLSTM_NATIVE_HUGE_PAGES=0` turns that off.
"""

from __future__ import annotations

import ctypes
import functools
import platform
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from seqlstm.fused_backward import _summed_like

_HERE = Path(__file__).parent
_FORWARD = "seqlstm_lstm_forward"
_INFERENCE = "seqlstm_lstm_inference"
_BACKWARD = "seqlstm_lstm_backward"
_FEEDING_FORWARD = "seqlstm_feeding_forward"
_FEEDING_BACKWARD = "seqlstm_feeding_backward"
_TARGETS = (
    (_FORWARD, "SeqlstmLstmForward"),
    (_INFERENCE, "SeqlstmLstmInference"),
    (_BACKWARD, "SeqlstmLstmBackward"),
    (_FEEDING_FORWARD, "SeqlstmFeedingForward"),
    (_FEEDING_BACKWARD, "SeqlstmFeedingBackward"),
)


# The computation dtypes the kernel runs (bfloat16 with the scan's mixed precision).
DTYPES = ("float32", "bfloat16")


def runs_dtype(dtype) -> bool:
    """Whether the kernel runs a computation in `dtype` (a name or anything `jnp.dtype` takes)."""
    return jnp.dtype(dtype).name in DTYPES


def _library_path() -> Path | None:
    """The built library beside this file (setuptools names it `_lstm_cpu.<abi tag>.so`)."""
    found = sorted(_HERE.glob("_lstm_cpu*.so"))
    return found[0] if found else None


# x86-64-v3, what setup.py compiles for (-march=x86-64-v3): without these the library's AVX2/FMA
# code would die with SIGILL at its first call, which no Python code can catch.
REQUIRED_CPU_FLAGS = ("avx", "avx2", "fma", "bmi1", "bmi2", "f16c", "movbe")


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux lists them in /proc/cpuinfo (empty where unreadable)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def _unavailable(reason: str) -> tuple[bool, str, int, bool]:
    """`_load`'s answer where the kernel cannot run: no lanes, no bfloat16 units."""
    return False, reason, 0, False


@functools.cache
def _load() -> tuple[bool, str, int, bool]:
    """Loads the library and registers its FFI targets once; returns `(available, reason,
    lanes, units)`: the vector width of its tiles on this CPU (16 with AVX-512, else 8), to which
    the residuals' hidden size is padded, and whether its bfloat16 products run on the CPU's
    bfloat16 units."""
    machine = f"{platform.system()} {platform.machine()}"
    if (platform.system(), platform.machine()) != ("Linux", "x86_64"):
        return _unavailable(f"the native kernel is built for Linux x86_64 only, this is {machine}")
    missing = [flag for flag in REQUIRED_CPU_FLAGS if flag not in cpu_flags()]
    if missing:
        lacks = ", ".join(missing)
        needs = "the native kernel needs an x86-64-v3 CPU (AVX2, FMA, BMI2)"
        return _unavailable(f"{needs}; this one lacks {lacks}")
    path = _library_path()
    if path is None:
        absent = f"the native kernel is not built (no _lstm_cpu*.so in {_HERE})"
        return _unavailable(f"{absent}; `pip install -e .` builds it when g++ is available")
    try:
        library = ctypes.CDLL(str(path))
        lanes = int(library.SeqlstmLanes())
        units = bool(library.SeqlstmBf16Units())
        for name, symbol in _TARGETS:
            capsule = jax.ffi.pycapsule(getattr(library, symbol))
            jax.ffi.register_ffi_target(name, capsule, platform="cpu")
    except Exception as error:  # any failure to load or register: the scan runs instead
        return _unavailable(f"the native kernel {path.name} could not be loaded: {error}")
    isa = "AVX-512" if lanes == 16 else "AVX2"
    bf16 = "bfloat16 on the CPU's bfloat16 units (avx512_bf16)" if units else "bfloat16"
    loaded = f"the native kernel {path.name} is loaded ({isa} tiles; float32 and {bf16})"
    return True, loaded, lanes, units


def native_available() -> bool:
    """Whether the native CPU LSTM kernel is built and loaded (`native_reason()` says why not)."""
    return _load()[0]


def native_reason() -> str:
    """One line: the library in use, or why the native kernel is unavailable."""
    return _load()[1]


def bf16_units() -> bool:
    """Whether the kernel's bfloat16 products (`dtype=bfloat16`) run on the CPU's bfloat16
    dot-product units (avx512_bf16's `vdpbf16ps`), rather than as float32 arithmetic on rounded
    operands (the same products, summed in another order). Environment variable
    `SEQLSTM_NATIVE_ISA=avx512` turns the units off, `=avx2` the AVX-512 tiles too."""
    return _load()[3]


def _require() -> None:
    """Loads and registers the kernel before a call to it is traced (or says why it cannot)."""
    available, reason, _, _ = _load()
    if not available:
        raise ValueError(f"the native LSTM kernel is unavailable: {reason}")


def _varying(*arrays) -> tuple[str, ...]:
    """The manual mesh axes (inside `shard_map`) any of `arrays` varies along."""
    axes = set()
    for a in arrays:
        aval = jax.typeof(a)
        manual = getattr(aval, "manual_axis_type", None)  # JAX 0.9+; older: aval.vma
        axes |= set(manual.varying if manual is not None else getattr(aval, "vma", ()))
    return tuple(sorted(axes))


def _ffi(name, outputs, *args, **attributes):
    """`ffi_call` of one of the library's targets; inside `shard_map` its results vary along the
    axes its arguments do (each device runs the kernel on its own rows), which XLA cannot
    infer."""
    results = jax.ffi.ffi_call(name, outputs, vmap_method="sequential")(*args, **attributes)
    axes = _varying(*args)
    if axes:
        results = tuple(jax.lax.pcast(r, axes, to="varying") for r in results)
    return results


def _call(name, outputs, *args, reverse, batch_major, bf16):
    """`_ffi` of the LSTM kernel."""
    # The kernel spreads a call over every core; with several CPU devices in the process their
    # calls run at once, one core each is all there is.
    threads = np.int64(1 if len(jax.devices("cpu")) > 1 else 0)
    return _ffi(
        name,
        outputs,
        *args,
        reverse=bool(reverse),
        batch_major=bool(batch_major),
        threads=threads,
        round_bf16=bool(bf16),
    )


def _f32(shape) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(shape, jnp.float32)


def _operand(a, bf16):
    """`a` as a product's float32 operand: rounded to bfloat16 first with `bf16` (exact in
    float32, so the kernel's float32 products equal bfloat16 ones accumulated in float32)."""
    return (a.astype(jnp.bfloat16) if bf16 else a).astype(jnp.float32)


def _forward(
    kernel, recurrent, bias, x_tm, h0, c0, valid, reverse, batch_major, bf16, residuals=True
):
    """`(ys, h_T, c_T, gates, cs)`, or `(ys, h_T, c_T)` without the residuals of the backward
    pass (the activated gates and cell states, hidden size padded to the kernel's lanes)."""
    _require()
    time, batch = x_tm.shape[:2][::-1] if batch_major else x_tm.shape[:2]
    lead = x_tm.shape[:2]
    hidden = recurrent.shape[0]
    lanes = _load()[2]
    padded = -(-hidden // lanes) * lanes
    if valid is None:
        valid = jnp.ones((time, batch), bool)
    outputs = (_f32((*lead, hidden)), _f32((batch, hidden)), _f32((batch, hidden)))
    if residuals:
        outputs += (_f32((*lead, 4 * padded)), _f32((*lead, padded)))
    f32 = jnp.float32
    return _call(
        _FORWARD if residuals else _INFERENCE,
        outputs,
        _operand(x_tm, bf16),
        _operand(kernel, bf16),
        _operand(recurrent, bf16),
        bias.astype(f32),
        h0.astype(f32),
        c0.astype(f32),
        valid,
        reverse=reverse,
        batch_major=batch_major,
        bf16=bf16,
    )


@partial(jax.custom_vjp, nondiff_argnums=(7, 8, 9, 10))
def native_lstm(
    kernel,
    recurrent,
    bias,
    x_tm,
    h0,
    c0,
    valid,
    reverse,
    inference=None,
    batch_major=False,
    bf16=False,
):
    """LSTM on the native CPU kernel (float32 arithmetic; `bf16` for bfloat16 products).

    Args:
      kernel: `[D, 4H]`; recurrent: `[H, 4H]`; bias: `[4H]`.
      x_tm: inputs, time-major `[T, B, D]`, or `[B, T, D]` with `batch_major` (then the outputs
        are `[B, T, H]`: the kernel reads and writes either layout, sparing the layers two
        transposes, which cost XLA:CPU about as much as 20 steps of a small LSTM).
      h0, c0: initial state, `[B, H]` each.
      valid: None, or boolean `[T, B]`: steps where the state advances (elsewhere it is carried
        and the output is zero); each row's valid steps must be a prefix (right padding).
      reverse: process from t = T - 1 down to 0.
      inference: None, or `f(kernel, recurrent, bias, x_tm, h0, c0, valid) -> (ys, h_T, c_T)`
        computing the same thing, run instead of the kernel when nothing is differentiated (the
        forward-only call): the scan, where it is the faster forward pass. Under differentiation
        the kernel's forward runs, since the kernel's backward reads its residuals.

      batch_major: the layout of `x_tm` and `ys`.
      bf16: bfloat16 products with float32 accumulation, as the scan runs `dtype=bfloat16`
        (mixed precision: gate math and state in float32): `x`, the kernels, h and dz enter the
        products rounded to bfloat16. The per-step tiles run their products on the CPU's
        bfloat16 units where it has them (`bf16_units()`: `vdpbf16ps`, which sums the exact
        products of pairs into float32), else as float32 arithmetic on the rounded values,
        which is exact too; the whole-sequence weight and input gradients are float32
        `dnnl_sgemm`s on the rounded values either way (oneDNN has no public bfloat16 gemm).

    Returns:
      `(ys [T, B, H] (or [B, T, H]), h_T [B, H], c_T [B, H])`, float32.
    """
    if inference is not None:
        return inference(kernel, recurrent, bias, x_tm, h0, c0, valid)
    return _forward(
        kernel, recurrent, bias, x_tm, h0, c0, valid, reverse, batch_major, bf16, residuals=False
    )


def _native_fwd(
    kernel, recurrent, bias, x_tm, h0, c0, valid, reverse, inference, batch_major, bf16
):
    del inference  # the backward pass needs the kernel's residuals
    ys, h_t, c_t, gates, cs = _forward(
        kernel, recurrent, bias, x_tm, h0, c0, valid, reverse, batch_major, bf16
    )
    saved = (kernel, recurrent, bias, x_tm, h0, c0, valid, ys, gates, cs)
    return (ys, h_t, c_t), saved


def _native_bwd(reverse, inference, batch_major, bf16, saved, cotangents):
    kernel, recurrent, bias, x_tm, h0, c0, valid, ys, gates, cs = saved
    dys, dh_t, dc_t = cotangents
    _require()
    time, batch = x_tm.shape[:2][::-1] if batch_major else x_tm.shape[:2]
    hidden = recurrent.shape[0]
    mask = jnp.ones((time, batch), bool) if valid is None else valid
    outputs = (
        _f32(kernel.shape),
        _f32(recurrent.shape),
        _f32(bias.shape),
        _f32(x_tm.shape),
        _f32((batch, hidden)),
        _f32((batch, hidden)),
    )
    f32 = jnp.float32
    d_kernel, d_recurrent, d_bias, d_x, dh0, dc0 = _call(
        _BACKWARD,
        outputs,
        _operand(x_tm, bf16),
        _operand(kernel, bf16),
        _operand(recurrent, bf16),
        _operand(h0, bf16),  # read only as h_{t-1} of dR = h_prev^T dz, like `ys`
        c0.astype(f32),
        mask,
        _operand(ys, bf16),
        gates,
        cs,
        dys.astype(f32),
        dh_t.astype(f32),
        dc_t.astype(f32),
        reverse=reverse,
        batch_major=batch_major,
        bf16=bf16,
    )
    return (
        _summed_like(d_kernel.astype(kernel.dtype), kernel),
        _summed_like(d_recurrent.astype(recurrent.dtype), recurrent),
        _summed_like(d_bias.astype(bias.dtype), bias),
        d_x.astype(x_tm.dtype),
        _summed_like(dh0.astype(h0.dtype), h0),
        _summed_like(dc0.astype(c0.dtype), c0),
        None,
    )


native_lstm.defvjp(_native_fwd, _native_bwd)


def _attention_operands(query_kernel, v, combine, projected, values, lengths):
    """The operands both decoder calls read first, in their order; `lengths` as int32 (the
    arrays are float32 already: `Decoder` takes these loops in float32 only)."""
    return query_kernel, v, combine, projected, values, lengths.astype(jnp.int32)


def feeding_forward(x_tm, weights, biases, hs, cs, feed, query_kernel, v, combine, projected,
                    values, lengths, additive):  # fmt: skip
    """The input-feeding decoder's teacher-forced forward loop in one call (float32): the
    arguments of `seqlstm.feeding.feeding_decoder` (every layer's `weights` `[2H, 4H]`), and
    its forward pass's `(outputs, attention, hs, cs, gates, queries, rows, combined)`, each
    `[T, B, .]`: hs, cs, gates (activated, in the order i, f, g, o) and rows (`[in | h]`,
    what the step's product read) one per layer; combined `[context | h_top]`."""
    _require()
    steps, batch, gates = x_tm.shape
    hidden, source, width = gates // 4, projected.shape[1], projected.shape[2]
    per_step = lambda n: _f32((steps, batch, n))
    outputs = [per_step(hidden), per_step(source), per_step(width)]
    outputs += [per_step(values.shape[-1] + hidden)]
    outputs += [per_step(n) for _ in weights for n in (hidden, hidden, gates, 2 * hidden)]
    per_layer = [a for layer in zip(weights, biases, hs, cs) for a in layer]
    operands = _attention_operands(query_kernel, v, combine, projected, values, lengths)
    results = _ffi(
        _FEEDING_FORWARD,
        outputs,
        x_tm,
        *operands,
        feed,
        *per_layer,
        additive=bool(additive),
    )
    outs, attention, queries, combined = results[:4]
    layers = results[4:]
    return (
        outs,
        attention,
        tuple(layers[0::4]),
        tuple(layers[1::4]),
        tuple(layers[2::4]),
        queries,
        tuple(layers[3::4]),
        combined,
    )


def feeding_backward(weights, acts, new_cs, hs, cs, feed, query_kernel, v, combine, projected,
                     values, lengths, outs, attention, queries, combined, rows, d_outs,
                     d_attention, additive):  # fmt: skip
    """The reverse loop of `seqlstm.feeding`'s backward pass and the weight gradients in one
    call (float32): from the forward pass's residuals (`feeding_forward`) and the outputs'
    cotangents (`d_attention` None: zero; `hs` and `feed`, the initial states, are read for
    their `shard_map` axes only), `(dz_1, d_weights, d_biases, d_combine, d_query, dh0, dc0,
    d_feed, d_projected, d_values, d_v)`: the first layer's gate pre-activation gradient `[T,
    B, 4H]` (the embeddings' product's), per layer the weights', biases' and initial states'
    gradients, then the combination's, the query kernel's (additive; else zeros), the first
    feed's and the attention operands'."""
    _require()
    steps, batch, hidden = outs.shape
    if d_attention is None:
        d_attention = jnp.zeros_like(attention)
    outputs = [
        _f32((batch, hidden)),
        _f32(projected.shape),
        _f32(values.shape),
        _f32(v.shape),
        _f32(combine.shape),
        _f32(query_kernel.shape),
    ]
    for w in weights:
        outputs += [_f32((steps, batch, 4 * hidden)), _f32(w.shape), _f32((4 * hidden,))]
        outputs += [_f32((batch, hidden))] * 2
    per_layer = [a for layer in zip(weights, acts, new_cs, cs, rows) for a in layer]
    operands = _attention_operands(query_kernel, v, combine, projected, values, lengths)
    results = _ffi(
        _FEEDING_BACKWARD,
        outputs,
        *operands,
        outs,
        attention,
        queries,
        combined,
        d_outs,
        d_attention,
        *per_layer,
        additive=bool(additive),
    )
    d_feed, d_projected, d_values, d_v, d_combine, d_query = results[:6]
    layers = results[6:]
    # Inside shard_map: the gradients of what does not vary along an axis (the attention's `v`
    # over a sharded batch) summed over it, as JAX's transpose of the scan makes them.
    like = _summed_like
    return (
        layers[0],
        tuple(layers[1::5]),
        tuple(layers[2::5]),
        d_combine,
        d_query,
        tuple(like(d, h) for d, h in zip(layers[3::5], hs)),
        tuple(like(d, c) for d, c in zip(layers[4::5], cs)),
        like(d_feed, feed),
        like(d_projected, projected),
        like(d_values, values),
        like(d_v, v),
    )
