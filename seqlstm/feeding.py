"""The input-feeding decoder's teacher-forced pass with a fused backward (a `jax.custom_vjp`).

With input feeding (Luong et al., 2015) step t of the decoder reads the attentional vector of
step t - 1, so teacher forcing runs step by step. JAX's autodiff of that `lax.scan` computes
every weight gradient inside the reverse loop: per step, one rank-B update of each LSTM kernel,
the query kernel and the combination kernel, each read and written whole. Here the reverse loop
does only what must be sequential (the products with the transposed weights, the gate and
attention derivatives) and collects each step's pre-activation gradients; then every weight
gradient is one matmul over all T*B rows, as `seqlstm.fused_backward` does for one layer.

One step, for layers l = 1..L (`W_l = [kernel_l over its input; recurrent_kernel_l]`):

  z_1 = x_t + [h~_{t-1}, h_1] W_1 + b_1    x_t = embedding_t @ kernel_1[:embed] (before the loop)
  z_l = [h_{l-1}', h_l] W_l + b_l          (h_l', c_l') = cell(z_l, c_l)
  q = h_L' W_q (additive; else h_L')        (context, weights) = attention(q, keys, values)
  h~_t = tanh([context, h_L'] W_c)          the step's output and the next step's feed

Supported: plain cells (no variant options, no dropout masks), float32, and the attention kinds
whose score does not read the previous weights (additive, general, dot); `Decoder` runs the
generic scan otherwise. Results equal the generic scan's to float rounding
(tests/test_feeding.py).

On CPU, with `backend="native"` (the decoder's layers' backend resolving to the native kernel), both
loops run in the native kernel, one call each (`seqlstm.kernels.native.feeding_forward` and
`feeding_backward`, which also forms the weight gradients); the embeddings' product and the
output projection stay here. A program lowered for another platform runs the scans
(`jax.lax.platform_dependent`). Where the native loops win is measured in
`seqlstm.kernels.rule.native_feeding_wins` (G2P's decoder: 1.38x forward, 1.49x training).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax.custom_derivatives import CustomVJPPrimal, SymbolicZero

from seqlstm.attention import additive_scores, masked_softmax, scores
from seqlstm.cell import gate_activations
from seqlstm.fused_backward import _read_step, _sum_outer, _summed_like, cell_gradients


def _attend(q, projected, values, v, lengths, kind):
    """`(context [B, E], weights [B, S])` of one step's query `q: [B, A]` (additive: already
    multiplied by the query kernel, whose gradient is then one product after the loop)."""
    query = q[:, None, :]
    if kind == "additive":
        logits = additive_scores(query, projected, v)
    else:  # general and dot read no parameter here (the keys are projected already)
        logits = scores({}, query, projected, kind)
    weights = masked_softmax(logits, lengths)
    context = jnp.einsum("bts,bsv->btv", weights, values.astype(weights.dtype))
    return context[:, 0], weights[:, 0]


def _forward(x_tm, weights, biases, hs, cs, feed, query_kernel, v, combine, projected, values,
             lengths, kind, unroll, native):  # fmt: skip
    """The forward loop's `(outputs, attention, hs, cs, gates, queries, rows, combined)` (see
    `seqlstm.kernels.native.feeding_forward`): on CPU in the native kernel's one call where
    `native` (a bool), else (and on every other platform) a scan."""
    arrays = (x_tm, weights, biases, hs, cs, feed, query_kernel, v, combine, projected, values,
              lengths)  # fmt: skip
    scan = partial(_forward_scan, kind=kind, unroll=unroll)
    if not native or not x_tm.shape[0]:
        return scan(*arrays)
    from seqlstm.kernels.native import feeding_forward

    cpu = partial(feeding_forward, additive=kind == "additive")
    return jax.lax.platform_dependent(*arrays, cpu=cpu, default=scan)


def _forward_scan(x_tm, weights, biases, hs, cs, feed, query_kernel, v, combine, projected,
                  values, lengths, kind, unroll):  # fmt: skip
    additive = kind == "additive"
    steps = x_tm.shape[0]
    if not steps:  # the loop body is traced all the same: one step of zeros, results cut to 0
        x_tm = jnp.zeros((1, *x_tm.shape[1:]), x_tm.dtype)

    def step(carry, t):
        hs, cs, feed = carry
        (x_t,) = _read_step((x_tm,), t)
        inp, new_h, new_c, acts = feed, [], [], []
        for k, (w, b, h, c) in enumerate(zip(weights, biases, hs, cs)):
            z = jnp.concatenate([inp, h], axis=-1) @ w + b[None, :]
            if k == 0:
                z = z + x_t
            i, f, g, o = gate_activations(z)
            c = f * c + i * g
            h = o * jnp.tanh(c)
            new_h.append(h)
            new_c.append(c)
            acts.append(jnp.concatenate([i, f, g, o], axis=-1))
            inp = h
        q = inp @ query_kernel if additive else inp
        context, attn = _attend(q, projected, values, v, lengths, kind)
        out = jnp.tanh(jnp.concatenate([context, inp], axis=-1) @ combine)
        carry = (tuple(new_h), tuple(new_c), out)
        return carry, (out, attn, tuple(new_h), tuple(new_c), tuple(acts), q, context)

    init = (tuple(hs), tuple(cs), feed)
    _, ys = jax.lax.scan(step, init, jnp.arange(x_tm.shape[0]), unroll=unroll)
    outs, attn, new_hs, new_cs, acts, queries, contexts = ys
    # The rows each step's products read, for the weight gradients: [in | h] per layer and
    # [context | h_top].
    inputs = (_previous(outs, feed),) + new_hs[:-1]
    rows = tuple(
        jnp.concatenate([x, _previous(h, h0)], axis=-1) for x, h, h0 in zip(inputs, new_hs, hs)
    )
    combined = jnp.concatenate([contexts, new_hs[-1]], axis=-1)
    ys = (outs, attn, new_hs, new_cs, acts, queries, rows, combined)
    return ys if steps else jax.tree.map(lambda a: a[:0], ys)


BACKENDS = ("scan", "native", "native_train")


@partial(jax.custom_vjp, nondiff_argnums=(12, 13, 14))
def feeding_decoder(x_tm, weights, biases, hs, cs, feed, query_kernel, v, combine, projected,
                    values, lengths, kind, unroll, backend="scan"):  # fmt: skip
    """Teacher-forced steps of an input-feeding decoder (see the module docstring).

    Args:
      x_tm: `[T, B, 4H]`, the first layer's product with the target embeddings (time-major).
      weights: per layer `[D_l + H, 4H]`: the kernel's rows for the step's input (layer 1: the
        feed, H rows) stacked over the recurrent kernel.
      biases: per layer `[4H]`.
      hs, cs: per layer the initial state, `[B, H]` each.
      feed: the first step's feed `h~_0`, `[B, H]`.
      query_kernel: `[H, A]` (additive; ignored otherwise, pass a `[0, 0]` array).
      v: `[A]` (additive; ignored otherwise, pass a `[0]` array).
      combine: `[E + H, H]`, the kernel of `h~ = tanh([context, h_L] W_c)`.
      projected: `[B, S, A]` projected keys (`seqlstm.attention.project_keys`).
      values: `[B, S, E]`, the encoder outputs.
      lengths: `int32[B]`, valid source positions per row.
      kind: an attention kind whose score does not read the previous weights (additive, general,
        dot; not `seqlstm.attention.RECURRENT_KINDS`).
      unroll: steps per scan iteration.
      backend: one of `BACKENDS`, as `seqlstm.kernels.backends.choose_backend` resolves a
        layer's: "native" runs both loops in the native CPU kernel's calls
        (`seqlstm.kernels.native`, which must be available) when the program runs on CPU (a
        program lowered for another platform runs the scans all the same,
        `jax.lax.platform_dependent`); "native_train" only under differentiation (a forward
        pass alone runs the scan).

    Returns:
      `(outputs [T, B, H], weights [T, B, S])`: each step's `h~` and attention weights.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    ys = _forward(x_tm, weights, biases, hs, cs, feed, query_kernel, v, combine, projected,
                  values, lengths, kind, unroll, backend == "native")  # fmt: skip
    return ys[0], ys[1]


def _feeding_fwd(*args):
    *arrays, kind, unroll, backend = args
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    # With `symbolic_zeros=True` each array comes as a `CustomVJPPrimal`.
    arrays = jax.tree.map(
        lambda a: a.value if isinstance(a, CustomVJPPrimal) else a,
        arrays,
        is_leaf=lambda a: isinstance(a, CustomVJPPrimal),
    )
    ys = _forward(*arrays, kind, unroll, backend != "scan")
    # The backward pass reads every residual but the layers' outputs h (its rows hold them).
    return (ys[0], ys[1]), (tuple(arrays), ys[:2] + ys[3:])


def _previous(seq, first):
    """`seq [T, ...]` shifted one step later, `first` at step 0: what each step started from."""
    return jnp.concatenate([first[None], seq[:-1]], axis=0)


def _reverse_scan(weights, acts, new_cs, hs, cs, feed, query_kernel, v, combine, projected,
                  values, lengths, outs, attn, queries, combined, rows, d_outs, d_attn, kind,
                  unroll):  # fmt: skip
    """The reverse loop of `_feeding_bwd` as a scan, then the weight gradients: `(dz_1,
    d_weights, d_biases, d_combine, d_query, dh0, dc0, d_feed, d_projected, d_values, d_v)`
    (see `seqlstm.kernels.native.feeding_backward`)."""
    additive = kind == "additive"
    layers = len(weights)
    hidden, width = hs[0].shape[-1], values.shape[-1]
    # Built once before the loop (see `seqlstm.fused_backward`'s comment on constant cotangents).
    d_outs = jax.lax.optimization_barrier(d_outs)
    c_prev = tuple(_previous(c, c0) for c, c0 in zip(new_cs, cs))

    def times_t(a, w):  # a @ w.T, without materialising w.T
        return jax.lax.dot_general(a, w, (((1,), (1,)), ((), ())))

    widths = tuple(w.shape[0] - hidden for w in weights)  # each layer's input rows

    def step(carry, t):
        dh, dc, d_feed, d_projected, d_values, d_v = carry
        read = (d_outs, outs, queries) + acts + new_cs + c_prev
        if d_attn is not None:
            read = read + (d_attn,)
        step_arrays = _read_step(read, t)
        d_out, out, q = step_arrays[:3]
        act = step_arrays[3 : 3 + layers]
        c_new = step_arrays[3 + layers : 3 + 2 * layers]
        cp = step_arrays[3 + 2 * layers : 3 + 3 * layers]
        d_w = step_arrays[-1] if d_attn is not None else None
        da = (d_out + d_feed) * (1 - out * out)
        d_cat = times_t(da, combine)
        d_context, d_top = d_cat[:, :width], d_cat[:, width:]
        _, attend_vjp = jax.vjp(
            lambda q, p, vals, vv: _attend(q, p, vals, vv, lengths, kind), q, projected, values, v
        )
        d_w = jnp.zeros_like(attn[0]) if d_w is None else d_w
        dq, dp, dvals, dvv = attend_vjp((d_context, d_w))
        d_top = d_top + (times_t(dq, query_kernel) if additive else dq)
        dh = list(dh)
        dc = list(dc)
        dh[-1] = dh[-1] + d_top
        dzs = [None] * layers
        for k in reversed(range(layers)):
            dz, dc[k] = cell_gradients(act[k], c_new[k], cp[k], dh[k], dc[k])
            d_xh = times_t(dz, weights[k])
            dh[k] = d_xh[:, widths[k] :]
            if k:
                dh[k - 1] = dh[k - 1] + d_xh[:, : widths[k]]
            else:
                d_feed = d_xh[:, : widths[k]]
            dzs[k] = dz
        carry = (tuple(dh), tuple(dc), d_feed, d_projected + dp, d_values + dvals, d_v + dvv)
        return carry, (tuple(dzs), da, dq)

    zero_h = tuple(jnp.zeros_like(h) for h in hs)
    init = (zero_h, tuple(jnp.zeros_like(c) for c in cs), jnp.zeros_like(feed),
            jnp.zeros_like(projected), jnp.zeros_like(values), jnp.zeros_like(v))  # fmt: skip
    carry, (dzs, das, dqs) = jax.lax.scan(
        step, init, jnp.arange(outs.shape[0]), reverse=True, unroll=unroll
    )
    dh0, dc0, d_feed0, d_projected, d_values, d_v = carry
    acc = outs.dtype
    d_weights = tuple(_sum_outer(r, dz, acc, acc) for r, dz in zip(rows, dzs))
    d_biases = tuple(jnp.sum(dz, axis=(0, 1)) for dz in dzs)
    d_combine = _sum_outer(combined, das, acc, acc)
    top = combined[..., width:]
    d_query = _sum_outer(top, dqs, acc, acc) if additive else jnp.zeros_like(query_kernel)
    return (dzs[0], d_weights, d_biases, d_combine, d_query, dh0, dc0, d_feed0, d_projected,
            d_values, d_v)  # fmt: skip


def _feeding_bwd(kind, unroll, backend, saved, cotangents):
    (x_tm, weights, biases, hs, cs, feed, query_kernel, v, combine, projected, values,
     lengths), ys = saved  # fmt: skip
    outs, attn, new_cs, acts, queries, rows, combined = ys
    d_outs, d_attn = cotangents
    if isinstance(d_outs, SymbolicZero):
        d_outs = jnp.zeros_like(outs)
    d_attn = None if isinstance(d_attn, SymbolicZero) else d_attn
    if x_tm.shape[0] == 0:  # no steps: nothing reads the inputs
        zeros = (x_tm, weights, biases, hs, cs, feed, query_kernel, v, combine, projected, values)
        return (*jax.tree.map(jnp.zeros_like, zeros), None)
    loop_args = (weights, acts, new_cs, hs, cs, feed, query_kernel, v, combine, projected, values,
                 lengths, outs, attn, queries, combined, rows, d_outs, d_attn)  # fmt: skip
    scan = partial(_reverse_scan, kind=kind, unroll=unroll)
    if backend != "scan":
        from seqlstm.kernels.native import feeding_backward

        cpu = partial(feeding_backward, additive=kind == "additive")
        grads = jax.lax.platform_dependent(*loop_args, cpu=cpu, default=scan)
    else:
        grads = scan(*loop_args)
    (dz_1, d_weights, d_biases, d_combine, d_query, dh0, dc0, d_feed0, d_projected, d_values,
     d_v) = grads  # fmt: skip
    return (
        dz_1,
        tuple(_summed_like(d, w) for d, w in zip(d_weights, weights)),
        tuple(_summed_like(d, b) for d, b in zip(d_biases, biases)),
        tuple(_summed_like(d, h) for d, h in zip(dh0, hs)),
        tuple(_summed_like(d, c) for d, c in zip(dc0, cs)),
        _summed_like(d_feed0, feed),
        _summed_like(d_query, query_kernel),
        _summed_like(d_v, v),
        _summed_like(d_combine, combine),
        d_projected,
        d_values,
        None,
    )


feeding_decoder.defvjp(_feeding_fwd, _feeding_bwd, symbolic_zeros=True)
