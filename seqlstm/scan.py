"""The functional core: a whole-sequence LSTM recurrence over arrays, one `lax.scan`.

Two equivalent forms of the step, chosen per backend and shape (`projection=`):

* ``"hoisted"``: the input projection `x @ kernel + bias` for all steps is ONE large matmul
  before the scan; each step adds `h @ recurrent_kernel` to its slice.
* ``"per_step"``: each step computes `x_t @ kernel + h @ recurrent_kernel + bias` itself.

Both fuse the four gates into one `[., 4H]` matmul. XLA:CPU can compile the gate math over a
slice of the hoisted array to scalar code, so on CPU the per-step form is faster despite doing the
same FLOPs in smaller pieces; `"auto"` picks by backend (see `choose_projection`).

Variable length is right padding: row b is valid for `t < seq_lengths[b]`. At padded steps the
state is carried unchanged and the output is zero, so the final state is the state at each row's
last valid step; with `reverse=True` the scan runs from t = T - 1 down to 0 and so starts, for each
row, from its initial state at its last valid step. Inputs at padded steps are replaced by zeros
before any arithmetic, so whatever they hold (NaN included) reaches neither outputs nor gradients.

The variants (`seqlstm.variants`: dropout, recurrent dropout, projection, layer norm, peepholes,
zoneout) run the general step, differentiated by autodiff: the fused backward serves the plain
cell, also with input `dropout` (a mask on x before the recurrence), and `backward="fused"` falls
back to autodiff for the others. cuDNN serves the same two.
"""

from __future__ import annotations

from functools import partial
from typing import Literal

import jax
import jax.numpy as jnp

from seqlstm.cell import LSTMState, batch_zeros, gate_update
from seqlstm.checks import check_float_dtype, check_rate
from seqlstm.fused_backward import fused_lstm
from seqlstm.kernels.backends import (  # noqa: F401 (BACKENDS, has_cudnn: re-exported)
    BACKENDS,
    auto_shape,
    choose_backend,
    choose_projection,
    has_cudnn,
)
from seqlstm.variants import Rates, check_params, draw_masks, is_plain, sizes, variant_segment

Projection = Literal["auto", "hoisted", "per_step"]
PROJECTIONS = ("auto", "hoisted", "per_step")
BACKWARDS = ("fused", "autodiff")


def state_dtype(dtype) -> jnp.dtype:
    """The dtype of the cell state and gate math for a computation dtype: at least float32.

    With `dtype=bfloat16` the matmuls read bfloat16 and accumulate in float32, and the gates,
    `h` and `c` stay float32 (mixed precision); outputs are returned in `dtype`.
    """
    return jnp.promote_types(dtype, jnp.float32)


def matmul(a: jax.Array, b: jax.Array, acc) -> jax.Array:
    """`a @ b` accumulated (and returned) in `acc`."""
    return jnp.matmul(a, b, preferred_element_type=acc)


def lstm_scan(
    params: dict,
    x: jax.Array,
    initial_state: LSTMState | None = None,
    *,
    seq_lengths: jax.Array | None = None,
    reverse: bool = False,
    unroll: int = 1,
    projection: Projection = "auto",
    backward: str = "fused",
    backend: str = "auto",
    remat_chunk: int | None = None,
    dtype=None,
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    zoneout_cell: float = 0.0,
    zoneout_hidden: float = 0.0,
    key: jax.Array | None = None,
) -> tuple[jax.Array, LSTMState]:
    """Runs an LSTM over a whole batch of sequences.

    Args:
      params: `{"kernel": [D, 4H], "recurrent_kernel": [H, 4H], "bias": [4H]}`, plus the
        entries of the variants (`seqlstm.variants`: `proj_kernel [H, P]` makes h `[batch, P]`
        and the recurrent kernel `[P, 4H]`; `peephole`; the layer-norm gains).
      x: inputs `[batch, time, D]`, real (complex is an error).
      initial_state: `LSTMState` with `h: [batch, P]` (P = H without projection),
        `c: [batch, H]`; zeros when None.
      seq_lengths: optional `int32[batch]`, valid steps per row (right padding). Values are
        trusted here; `seqlstm.LSTM` validates them.
      reverse: process each row from its last valid step back to step 0.
      unroll: steps per scan iteration (`lax.scan(unroll=)`).
      projection: `"hoisted"`, `"per_step"` or `"auto"` (see the module docstring).
      backward: `"fused"`, the per-step form with a cuDNN-style custom VJP (weight gradients as
        one matmul over all steps, see `seqlstm.fused_backward`), or `"autodiff"`, JAX's own
        derivative of the scan. The hoisted form always uses autodiff, and so do the variants
        except input `dropout` (chosen automatically).
      backend: `"scan"`, `"cudnn"` (`seqlstm.cudnn`, CUDA GPUs only, float32), `"native"`
        (`seqlstm.kernels.native`, the CPU kernel through `jax.ffi`, float32; other platforms
        lowering the same program run the scan), or `"auto"`: cuDNN on a CUDA GPU when the
        computation is float32, on CPU the native kernel where `seqlstm.kernels.rule` measured
        it faster (every shape so far; one device, or inside `shard_map`), otherwise the scan.
        cuDNN and the native kernel take the plain cell (with input `dropout`) only.
      remat_chunk: if set, rematerialise the forward in chunks of this many steps: training
        memory grows with T / remat_chunk instead of T, for about one extra forward pass.
      dtype: matmul input dtype; None promotes the input and parameter dtypes. Gate math and
        the state run in `state_dtype(dtype)` (float32 for bfloat16: mixed precision). Must be
        a floating dtype.
      dropout, recurrent_dropout: Keras's variational dropout rates in [0, 1), training only.
      zoneout_cell, zoneout_hidden: zoneout rates in [0, 1) of c and h.
      key: PRNG key of training mode (dropout masks and zoneout drawn from it, once per call);
        None is evaluation mode: no dropout, zoneout's expectation.

    Returns:
      `(outputs, final_state)`: `outputs: [batch, time, P]` in `dtype` (zeros at padded steps,
      aligned with the input even when `reverse`); `final_state`, the `LSTMState` after each
      row's last processed step, in `state_dtype(dtype)`.
    """
    check_params(params)
    if jnp.issubdtype(x.dtype, jnp.complexfloating):
        raise ValueError(f"x must be real, got dtype {x.dtype}")
    if dtype is None:
        dtype = jnp.result_type(x.dtype, params["kernel"].dtype)
    dtype = jnp.dtype(dtype)
    check_float_dtype("dtype", dtype)
    rates = Rates(
        check_rate("dropout", dropout),
        check_rate("recurrent_dropout", recurrent_dropout),
        check_rate("zoneout_cell", zoneout_cell),
        check_rate("zoneout_hidden", zoneout_hidden),
    )
    plain = is_plain(params) and rates[1:] == (0.0, 0.0, 0.0)
    if not plain:
        if backend in ("cudnn", "native"):
            raise ValueError(
                f"backend={backend!r} runs the plain cell (with input dropout) only; this cell has "
                f"params {sorted(params)} and rates {rates}: use backend='auto' or 'scan'"
            )
        backend = "scan"
    if not any(rates):
        key = None  # nothing random: one compiled program for training and evaluation
    if projection == "auto":
        projection = choose_projection()
    if projection not in ("hoisted", "per_step"):
        raise ValueError(f"projection must be one of {PROJECTIONS}, got {projection!r}")
    if backward not in BACKWARDS:
        raise ValueError(f"backward must be one of {BACKWARDS}, got {backward!r}")
    if remat_chunk is not None and (not isinstance(remat_chunk, int) or remat_chunk <= 0):
        raise ValueError(f"remat_chunk must be None or a positive int, got {remat_chunk!r}")
    # One compiled program per (shapes, options), so eager calls do not retrace the scan.
    return _lstm_scan(
        params,
        x,
        initial_state,
        seq_lengths,
        reverse=bool(reverse),
        unroll=int(unroll),
        projection=projection,
        backward=backward,
        backend=choose_backend(backend, dtype, auto_shape(params, x)),
        remat_chunk=remat_chunk,
        dtype=dtype,
        rates=rates,
        key=key,
    )


@partial(
    jax.jit,
    static_argnames=(
        "reverse",
        "unroll",
        "projection",
        "backward",
        "backend",
        "remat_chunk",
        "dtype",
        "rates",
    ),
)
def _lstm_scan(
    params,
    x,
    initial_state,
    seq_lengths,
    *,
    reverse,
    unroll,
    projection,
    backward,
    backend,
    remat_chunk,
    dtype,
    rates,
    key,
):
    acc = state_dtype(dtype)
    batch, time = x.shape[0], x.shape[1]
    hidden, state_size = sizes(params)
    if initial_state is None:
        zeros = batch_zeros(x, hidden, acc)  # sharded like x's batch
        h_zeros = zeros if state_size == hidden else batch_zeros(x, state_size, acc)
        initial_state = LSTMState(h_zeros, zeros)
    initial_state = LSTMState(initial_state.h.astype(acc), initial_state.c.astype(acc))
    valid = None
    if seq_lengths is not None:
        valid = jnp.arange(time)[:, None] < seq_lengths[None, :].astype(jnp.int32)  # [T, B]
        # Before any arithmetic: a NaN at a padded step must not reach a gradient (0 * NaN).
        x = jnp.where(valid.T[:, :, None], x, jnp.zeros((), x.dtype))
    masks = None
    if key is not None:
        masks = draw_masks(key, rates, batch, time, x.shape[2], params, x.dtype)
    if not is_plain(params) or rates[1:] != (0.0, 0.0, 0.0):
        segment = partial(
            variant_segment,
            params,
            rates=rates,
            masks=masks,
            projection=projection,
            reverse=reverse,
            unroll=unroll,
            dtype=dtype,
        )
        zoneout = (masks.zoneout_c, masks.zoneout_h) if masks is not None else (None, None)
        xs = (jnp.swapaxes(x, 0, 1), *zoneout)  # the zoneout masks are time-major already
        if remat_chunk is None or remat_chunk >= time:
            ys, h_t, c_t = segment(xs, initial_state.h, initial_state.c, valid)
        else:
            ys, h_t, c_t = _rematerialised(segment, xs, initial_state, valid, remat_chunk, reverse)
        return jnp.swapaxes(ys, 0, 1), LSTMState(h_t, c_t)
    if masks is not None and masks.x is not None:
        x = x * masks.x[:, None, :]  # input dropout: one mask per row, constant over time
    if backend == "cudnn":
        from seqlstm.cudnn import cudnn_lstm

        return cudnn_lstm(params, x, initial_state, seq_lengths=seq_lengths, reverse=reverse)

    def scan_segment_of(p):
        if projection == "per_step" and backward == "fused":
            return partial(
                fused_lstm,
                p["kernel"],
                p["recurrent_kernel"],
                p["bias"],
                reverse=reverse,
                unroll=unroll,
                dtype=dtype,
            )
        return partial(
            _scan_segment, p, projection=projection, reverse=reverse, unroll=unroll, dtype=dtype
        )

    segment = scan_segment_of(params)
    if backend in ("native", "native_train"):
        native = partial(
            _native_segment,
            params,
            scan_segment_of,
            dtype,
            reverse=reverse,
            inference=backend == "native_train",
        )
        if remat_chunk is None or remat_chunk >= time:  # the kernel reads and writes [B, T, .]
            ys, h_t, c_t = native(x, initial_state.h, initial_state.c, valid, batch_major=True)
            return ys, LSTMState(h_t, c_t)
        segment = partial(native, batch_major=False)
    x_tm = jnp.swapaxes(x, 0, 1)  # [T, B, D]
    if remat_chunk is None or remat_chunk >= time:
        ys, h_t, c_t = segment(x_tm, initial_state.h, initial_state.c, valid)
    else:
        ys, h_t, c_t = _rematerialised(segment, x_tm, initial_state, valid, remat_chunk, reverse)
    return jnp.swapaxes(ys, 0, 1), LSTMState(h_t, c_t)


def _native_segment(
    params, scan_segment_of, dtype, x, h0, c0, valid, *, reverse, inference, batch_major
):
    """The native CPU kernel where the program is lowered for CPU, the scan on any other
    platform: the choice follows the platform of the lowering, not `jax.default_backend()`.

    With `inference=True` the kernel runs on CPU only when the call is differentiated, and a
    forward-only call (evaluation, decoding) runs the scan, where its forward pass is the faster
    (`seqlstm.kernels.rule`). `scan_segment_of(params)` builds the scan's segment, which is
    time-major; with `batch_major`, `x` and the outputs are `[B, T, .]` (the kernel's own
    layout then; the scan transposes).
    """
    from seqlstm.kernels.native import native_lstm

    def scan_of(p):
        segment = scan_segment_of(p)
        if not batch_major:
            return segment

        def transposed(x, h0, c0, valid):
            ys, h_t, c_t = segment(jnp.swapaxes(x, 0, 1), h0, c0, valid)
            return jnp.swapaxes(ys, 0, 1), h_t, c_t

        return transposed

    def scan_forward(kernel, recurrent, bias, x, h0, c0, valid):
        p = {"kernel": kernel, "recurrent_kernel": recurrent, "bias": bias}
        return scan_of(p)(x, h0, c0, valid)

    forward_only = scan_forward if inference else None

    def native(x, h0, c0, valid):
        weights = params["kernel"], params["recurrent_kernel"], params["bias"]
        bf16 = jnp.dtype(dtype) == jnp.bfloat16
        ys, h_t, c_t = native_lstm(
            *weights, x, h0, c0, valid, reverse, forward_only, batch_major, bf16
        )
        return ys.astype(dtype), h_t, c_t

    return jax.lax.platform_dependent(x, h0, c0, valid, cpu=native, default=scan_of(params))


def _rematerialised(segment, x_tm, initial_state, valid, chunk, reverse):
    """Runs `segment` over chunks of `chunk` steps, keeping only the state between chunks.

    Each chunk is a `jax.checkpoint`: the backward pass recomputes its forward, so memory holds
    T / chunk boundary states plus one chunk's residuals instead of every step's.
    """
    time, batch = jax.tree.leaves(x_tm)[0].shape[:2]
    n = -(-time // chunk)
    pad = n * chunk - time
    if valid is None:
        valid = jnp.ones((time, batch), bool)
    # Padding steps at the end are invalid: the state passes through them unchanged.
    # `x_tm` is one time-major array, or (for the variants) a tuple of them and Nones.
    xs = jax.tree.map(
        lambda a: jnp.pad(a, ((0, pad),) + ((0, 0),) * (a.ndim - 1)).reshape(
            (n, chunk) + a.shape[1:]
        ),
        x_tm,
    )
    valid = jnp.pad(valid, ((0, pad), (0, 0)))
    vs = valid.reshape((n, chunk, batch))

    @jax.checkpoint
    def body(carry, inputs):
        ys, h, c = segment(inputs[0], carry[0], carry[1], inputs[1])
        return (h, c), ys

    (h_t, c_t), ys = jax.lax.scan(
        body, (initial_state.h, initial_state.c), (xs, vs), reverse=reverse
    )
    ys = ys.reshape((n * chunk,) + ys.shape[2:])[:time]
    return ys, h_t, c_t


def _scan_segment(params, x_tm, h0, c0, valid, *, projection, reverse, unroll, dtype):
    """The recurrence differentiated by JAX's autodiff; returns `(ys [T, B, H], h_T, c_T)`."""
    acc = h0.dtype
    x_tm = x_tm.astype(dtype)
    kernel = params["kernel"].astype(dtype)
    recurrent = params["recurrent_kernel"].astype(dtype)
    bias = params["bias"].astype(acc)
    if projection == "hoisted":
        xs = jnp.einsum("tbd,dg->tbg", x_tm, kernel, preferred_element_type=acc)
        xs = xs + bias[None, None, :]

        def project(x_t, h):
            return x_t + matmul(h.astype(dtype), recurrent, acc)

    else:
        xs = x_tm

        def project(x_t, h):
            z = matmul(x_t, kernel, acc) + matmul(h.astype(dtype), recurrent, acc)
            return z + bias[None, :]

    if valid is None:

        def step(state, x_t):
            new = gate_update(project(x_t, state.h), state.c)
            return new, new.h.astype(dtype)

        final, ys = jax.lax.scan(step, LSTMState(h0, c0), xs, reverse=reverse, unroll=unroll)
    else:

        def step(state, inputs):
            x_t, valid_t = inputs
            new = gate_update(project(x_t, state.h), state.c)
            keep = valid_t[:, None]
            h = jnp.where(keep, new.h, state.h)
            c = jnp.where(keep, new.c, state.c)
            y = jnp.where(keep, new.h, jnp.zeros_like(new.h)).astype(dtype)
            return LSTMState(h, c), y

        final, ys = jax.lax.scan(
            step, LSTMState(h0, c0), (xs, valid), reverse=reverse, unroll=unroll
        )
    return ys, final.h, final.c
