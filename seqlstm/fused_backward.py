"""`lstm_scan`'s recurrence with a cuDNN-style backward pass (a `jax.custom_vjp`).

JAX's autodiff of `lax.scan` computes the weight gradients inside the reverse loop: one small
`[H, B] @ [B, 4H]` matmul per step for the recurrent kernel (and one for the input kernel). Here the
reverse loop does only what must be sequential, `dz_t @ recurrent_kernel^T` and the gate
derivatives, and collects every step's gate gradient `dz: [T, B, 4H]`; then

  d kernel            = sum_t x_t^T dz_t        one [D, T*B] @ [T*B, 4H] matmul
  d recurrent_kernel  = sum_t h_{t-1}^T dz_t    one [H, T*B] @ [T*B, 4H] matmul
  d bias              = sum_t,b dz              one reduction
  d x                 = dz @ kernel^T           one [T*B, 4H] @ [4H, D] matmul

which is what cuDNN and oneDNN do. On one device the weight gradients are written as plain 2-D
matmuls over the flattened `T*B` rows: XLA:CPU runs the equivalent two-contracting-dimension
einsum slower at most shapes, up to 1.6x (`benchmarks/xla_cpu_probes.py`, table 3).

The forward pass keeps, per step, the four gate activations and the new cell state (5H floats
per row) besides the outputs; the state each step started from is the previous step's output and
cell state, so it is rebuilt from those in the backward pass instead of being stored (7H -> 5H
floats per row, plus the outputs, which a model usually keeps anyway).
Results equal the autodiff path to float rounding (tests/test_fused_backward.py).

A model that reads only the final state (`return_sequences=False`: its last output is the final
`h`) leaves the outputs' cotangent a symbolic zero (`symbolic_zeros=True`), and the backward
loop then reads no output cotangent at all; a model that reads only the outputs leaves the final
state's, which becomes one `[B, H]` zero.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax.custom_derivatives import CustomVJPPrimal, SymbolicZero
from jax.sharding import NamedSharding, PartitionSpec

from seqlstm.cell import gate_activations


def _forward(kernel, recurrent, bias, x_tm, h0, c0, valid, reverse, unroll, dtype):
    """The recurrence over time-major `x_tm: [T, B, D]`, returning what the backward pass needs:
    `(ys, h_T, c_T, (gates [T, B, 4H], cs [T, B, H]))`."""
    acc = h0.dtype
    kernel, recurrent = kernel.astype(dtype), recurrent.astype(dtype)
    bias = bias.astype(acc)
    x_tm = x_tm.astype(dtype)

    def step(carry, inputs):
        h, c = carry
        x_t, v_t = inputs
        z = jnp.matmul(x_t, kernel, preferred_element_type=acc)
        z = z + jnp.matmul(h.astype(dtype), recurrent, preferred_element_type=acc)
        i, f, g, o = gate_activations(z + bias[None, :])
        c_new = f * c + i * g
        h_new = o * jnp.tanh(c_new)
        if v_t is None:
            y = h_new
        else:
            keep = v_t[:, None]
            h_new = jnp.where(keep, h_new, h)
            c_new = jnp.where(keep, c_new, c)
            y = jnp.where(keep, h_new, jnp.zeros_like(h_new))
        gates = jnp.concatenate([i, f, g, o], axis=-1)
        return (h_new, c_new), (y.astype(dtype), gates, c_new)

    (h_t, c_t), (ys, gates, cs) = jax.lax.scan(
        step, (h0, c0), (x_tm, valid), reverse=reverse, unroll=unroll
    )
    return ys, h_t, c_t, (gates, cs)


def _previous(seq, first, valid, reverse):
    """What each step of the scan started from: `seq` shifted one step along the scan direction,
    with `first` (the initial state) where no valid step came before.

    For the cell states (carried through padded steps) pass `valid=None`: the shift is exact for
    any mask. For the outputs (zero at padded steps) pass `valid`, which must be a prefix of each
    row (right padding): then the step processed before a valid step is valid too, except for
    the first one processed, which starts from `first`.
    """
    if reverse:
        shifted = jnp.concatenate([seq[1:], first[None]], axis=0)
    else:
        shifted = jnp.concatenate([first[None], seq[:-1]], axis=0)
    if valid is None:
        return shifted
    none = jnp.zeros_like(valid[:1])
    if reverse:
        before = jnp.concatenate([valid[1:], none], axis=0)
    else:
        before = jnp.concatenate([none, valid[:-1]], axis=0)
    return jnp.where(before[:, :, None], shifted, first[None].astype(seq.dtype))


@partial(jax.custom_vjp, nondiff_argnums=(7, 8, 9))
def fused_lstm(kernel, recurrent, bias, x_tm, h0, c0, valid, reverse, unroll, dtype):
    """LSTM over time-major inputs with the cuDNN-style backward pass.

    Args:
      kernel: `[D, 4H]`; recurrent: `[H, 4H]`; bias: `[4H]`.
      x_tm: inputs, time-major `[T, B, D]`.
      h0, c0: initial state, `[B, H]` each.
      valid: None, or boolean `[T, B]`: steps where the state advances (elsewhere it is carried
        and the output is zero). Each row's valid steps must be a prefix (right padding), as
        `lstm_scan` builds them from lengths; the backward pass relies on it.
      reverse: scan from t = T - 1 down to 0.
      unroll: steps per scan iteration.
      dtype: matmul input dtype (a hashable `numpy.dtype`); matmuls accumulate in `h0.dtype`,
        which is also the dtype of the gate math and the state.

    Returns:
      `(ys [T, B, H] in dtype, h_T [B, H], c_T [B, H])`.
    """
    out = _forward(kernel, recurrent, bias, x_tm, h0, c0, valid, reverse, unroll, dtype)
    return out[:3]


def _fused_fwd(kernel, recurrent, bias, x_tm, h0, c0, valid, reverse, unroll, dtype):
    # With `symbolic_zeros=True` each array argument comes as a `CustomVJPPrimal`.
    kernel, recurrent, bias, x_tm, h0, c0, valid = (
        a.value if isinstance(a, CustomVJPPrimal) else a
        for a in (kernel, recurrent, bias, x_tm, h0, c0, valid)
    )
    ys, h_t, c_t, res = _forward(
        kernel, recurrent, bias, x_tm, h0, c0, valid, reverse, unroll, dtype
    )
    return (ys, h_t, c_t), (kernel, recurrent, bias, x_tm, h0, c0, valid, ys, res)


def isolate_reads() -> bool:
    """Whether the backward loop reads its per-step inputs through a `lax.cond` (see `_read_step`).

    On CPU only: there the training step is up to ~20% faster at small B*H and a few percent
    faster at large (`benchmarks/xla_cpu_probes.py`, table 4); on GPU a conditional per step can
    cost a device-to-host sync.
    """
    return jax.default_backend() == "cpu"


def _read_step(arrays, t):
    """`a[t]` of each time-major array in `arrays`.

    XLA fuses a dynamic slice into the elementwise loop that consumes it, and XLA:CPU compiles
    such a loop to code 4-7x slower than the same math over a plain buffer. Slicing inside
    a `lax.cond` (whose predicate is always true) keeps the slices out of that loop. The arrays
    must be buffers built before the loop: XLA sinks a constant or broadcast operand into the
    loop body, where the cond's operand is then built whole at every step.
    """

    def take():
        return tuple(jax.lax.dynamic_index_in_dim(a, t, keepdims=False) for a in arrays)

    if not isolate_reads():
        return take()
    # The untaken branch has exactly take()'s types (shape, dtype, sharding, varying axes).
    return jax.lax.cond(t >= 0, take, lambda: tuple(jnp.zeros_like(v) for v in take()))


def _sum_outer(a, dz, dtype, acc):
    """`sum_t a_t^T dz_t` for time-major `a: [T, B, n]`, `dz: [T, B, 4H]`: one matmul over all
    T*B rows.

    With one device it is written as a 2-D `[n, T*B] @ [T*B, 4H]` matmul, which XLA:CPU runs up
    to 1.6x faster than the einsum over two contracting dimensions. With several devices the
    batch may be sharded, and merging T with a sharded B would make XLA gather the whole array
    on every device; under explicit sharding (even over one device) the merge is not allowed at
    all. There the einsum is used, its result replicated under explicit sharding (the sum over
    the batch is an all-reduce).
    """
    a, dz = a.astype(dtype), dz.astype(dtype)
    sharding = jax.typeof(dz).sharding
    explicit = any(axis is not None for axis in sharding.spec)
    if jax.device_count() == 1 and not explicit:
        rows = dz.shape[0] * dz.shape[1]
        a_rows, dz_rows = a.reshape(rows, a.shape[-1]), dz.reshape(rows, dz.shape[-1])
        return jnp.matmul(a_rows.T, dz_rows, preferred_element_type=acc)
    out = NamedSharding(sharding.mesh, PartitionSpec()) if explicit else None
    return jnp.einsum("tbn,tbg->ng", a, dz, preferred_element_type=acc, out_sharding=out)


def _summed_like(grad, primal):
    """`grad` summed over the manual mesh axes (inside `shard_map`) along which it varies but
    `primal` does not: the gradient of a parameter replicated over a sharded batch, as JAX's
    own autodiff makes it. Outside `shard_map` there are no such axes and `grad` is returned."""

    def vma(x):  # the manual mesh axes x varies along (empty outside shard_map)
        aval = jax.typeof(x)
        manual = getattr(aval, "manual_axis_type", None)  # JAX 0.9+; older: aval.vma
        return manual.varying if manual is not None else getattr(aval, "vma", frozenset())

    axes = tuple(sorted(vma(grad) - vma(primal)))
    return jax.lax.psum(grad, axes) if axes else grad


def cell_gradients(gates, c, c_prev, dh, dc):
    """One step of the LSTM cell's backward pass.

    Args:
      gates: the step's activated gates `[B, 4H]` (i, f, g, o), as the forward pass kept them.
      c, c_prev: the step's new and previous cell states, `[B, H]`.
      dh, dc: the gradients reaching the step's new h (from its output and the next step) and
        its new c (from the next step).

    Returns:
      `(dz [B, 4H], dc_prev [B, H])`: the gradient of the gates' pre-activations, and the part
      of the previous cell state's gradient that flows through the cell (`dz @ R^T` is the
      previous h's).
    """
    i, f, g, o = jnp.split(gates, 4, axis=-1)
    tc = jnp.tanh(c)
    dc_total = dc + dh * o * (1 - tc * tc)
    dz = jnp.concatenate(
        [
            dc_total * g * i * (1 - i),
            dc_total * c_prev * f * (1 - f),
            dc_total * i * (1 - g * g),
            dh * tc * o * (1 - o),
        ],
        axis=-1,
    )
    return dz, dc_total * f


def _fused_bwd(reverse, unroll, dtype, saved, cotangents):
    kernel, recurrent, bias, x_tm, h0, c0, valid, ys, (gates, cs) = saved
    dys, dh_t, dc_t = cotangents
    # Symbolic zeros (see the module docstring): None for unused outputs; the final state's
    # zero has h_T's and c_T's type, which is the initial state's (the scan's carry).
    dys = None if isinstance(dys, SymbolicZero) else dys
    if isinstance(dh_t, SymbolicZero):
        dh_t = jnp.zeros_like(h0)
    if isinstance(dc_t, SymbolicZero):
        dc_t = jnp.zeros_like(c0)
    if x_tm.shape[0] == 0:  # no steps: the final state is the initial one
        zeros = jax.tree.map(jnp.zeros_like, (kernel, recurrent, bias, x_tm))
        dh0, dc0 = _summed_like(dh_t.astype(h0.dtype), h0), _summed_like(dc_t.astype(c0.dtype), c0)
        return (*zeros, dh0, dc0, None)
    # The state each step started from, rebuilt from the outputs (see the module docstring).
    h_prev = _previous(ys, h0.astype(ys.dtype), valid, reverse)
    c_prev = _previous(cs, c0, None, reverse)
    acc = dh_t.dtype
    if dys is not None:
        # A constant cotangent (that of `sum(ys)` is a broadcast of ones) would be sunk into
        # the loop body by XLA, and the `lax.cond` of `_read_step` takes it as an operand, so it
        # would be rebuilt, all [T, B, H] of it, at every step: O(T^2) work. The barrier keeps
        # it one array, built once before the loop.
        dys = jax.lax.optimization_barrier(dys.astype(acc))
    recurrent_t = recurrent.astype(dtype).T

    def back(dz):
        return jnp.matmul(dz.astype(dtype), recurrent_t, preferred_element_type=acc)

    def step(carry, inputs):
        dh, dc = carry
        t, v_t = inputs
        if dys is None:
            gate, c, cp = _read_step((gates, cs, c_prev), t)
            dh_total = dh
        else:
            dy, gate, c, cp = _read_step((dys, gates, cs, c_prev), t)
            dh_total = dh + dy
        dz, dc_prev = cell_gradients(gate, c, cp, dh_total, dc)
        if v_t is not None:
            keep = v_t[:, None]
            dz = jnp.where(keep, dz, jnp.zeros_like(dz))
            dh_prev = jnp.where(keep, back(dz), dh)
            dc_prev = jnp.where(keep, dc_prev, dc)
        else:
            dh_prev = back(dz)
        return (dh_prev, dc_prev), dz

    # Where the forward output was replaced by zero (padding), its cotangent cannot flow; the
    # masking inside `step` already ignores it because dz and the carries skip `dy` there.
    inputs = (jnp.arange(x_tm.shape[0]), valid)
    (dh0, dc0), dz = jax.lax.scan(step, (dh_t, dc_t), inputs, reverse=not reverse, unroll=unroll)
    d_kernel = _sum_outer(x_tm, dz, dtype, acc)
    d_recurrent = _sum_outer(h_prev, dz, dtype, acc)
    d_bias = jnp.sum(dz, axis=(0, 1))
    d_x = jnp.einsum(
        "tbg,dg->tbd", dz.astype(dtype), kernel.astype(dtype), preferred_element_type=acc
    )
    return (
        _summed_like(d_kernel.astype(kernel.dtype), kernel),
        _summed_like(d_recurrent.astype(recurrent.dtype), recurrent),
        _summed_like(d_bias.astype(bias.dtype), bias),
        d_x.astype(x_tm.dtype),
        _summed_like(dh0, h0),
        _summed_like(dc0, c0),
        None,
    )


fused_lstm.defvjp(_fused_fwd, _fused_bwd, symbolic_zeros=True)
