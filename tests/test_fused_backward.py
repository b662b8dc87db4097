"""seqlstm/fused_backward.py: the custom VJP equals JAX's autodiff of the scan."""

import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from launcher import xla_flags

import seqlstm
from seqlstm import fused_backward
from seqlstm.cell import LSTMState, init_params
from seqlstm.scan import lstm_scan

B, T, D, H = 4, 7, 3, 5
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _loss(backward, lengths, reverse):
    def f(params, x, h0, c0):
        y, s = lstm_scan(
            params,
            x,
            LSTMState(h0, c0),
            seq_lengths=lengths,
            reverse=reverse,
            projection="per_step",
            backward=backward,
        )
        return (
            jnp.sum(jnp.sin(y) * jnp.arange(H)[None, None, :]) + jnp.sum(s.h * s.c) + jnp.sum(s.c)
        )

    return f


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("lengths", [None, (7, 3, 0, 1)])
def test_fused_gradients_equal_autodiff(reverse, lengths):
    k = jax.random.split(jax.random.key(0), 4)
    params = init_params(k[0], D, H)
    params["bias"] = jax.random.normal(k[3], (4 * H,)) * 0.2
    x = jax.random.normal(k[1], (B, T, D))
    h0, c0 = jax.random.normal(k[2], (2, B, H))
    lengths = None if lengths is None else jnp.array(lengths)
    args = (params, x, h0, c0)
    fused = jax.grad(_loss("fused", lengths, reverse), argnums=(0, 1, 2, 3))(*args)
    auto = jax.grad(_loss("autodiff", lengths, reverse), argnums=(0, 1, 2, 3))(*args)
    for a, b in zip(jax.tree.leaves(fused), jax.tree.leaves(auto)):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-6)
    # And the forward values are the same computation.
    np.testing.assert_allclose(
        _loss("fused", lengths, reverse)(*args),
        _loss("autodiff", lengths, reverse)(*args),
        rtol=1e-6,
    )


@pytest.mark.parametrize("isolate", [True, False])
def test_both_ways_of_reading_the_backward_inputs(monkeypatch, isolate):
    """The backward loop reads its residuals through a `lax.cond` on CPU and directly elsewhere
    (`isolate_reads`); both give autodiff's gradients, masked and reversed."""
    monkeypatch.setattr(fused_backward, "isolate_reads", lambda: isolate)
    k = jax.random.split(jax.random.key(3), 4)
    params = init_params(k[0], D, H)
    x_tm = jax.random.normal(k[1], (T, B, D))
    h0, c0 = jax.random.normal(k[2], (2, B, H))
    valid = jnp.arange(T)[:, None] < jnp.array([7, 3, 0, 1])[None, :]
    f32 = jnp.dtype("float32")

    def loss(kernel, recurrent, bias, x_tm, h0, c0):
        ys, h, c = fused_backward.fused_lstm(
            kernel, recurrent, bias, x_tm, h0, c0, valid, True, 1, f32
        )
        return jnp.sum(jnp.sin(ys)) + jnp.sum(h * c)

    def reference(kernel, recurrent, bias, x_tm, h0, c0):
        p = {"kernel": kernel, "recurrent_kernel": recurrent, "bias": bias}
        y, s = lstm_scan(
            p,
            jnp.swapaxes(x_tm, 0, 1),
            LSTMState(h0, c0),
            seq_lengths=jnp.array([7, 3, 0, 1]),
            reverse=True,
            backward="autodiff",
        )
        return jnp.sum(jnp.sin(y)) + jnp.sum(s.h * s.c)

    args = (params["kernel"], params["recurrent_kernel"], params["bias"], x_tm, h0, c0)
    jaxpr = str(jax.make_jaxpr(jax.grad(loss, argnums=tuple(range(6))))(*args))
    assert ("cond[" in jaxpr) == isolate  # the patch reached the backward pass
    got = jax.grad(loss, argnums=tuple(range(6)))(*args)
    want = jax.grad(reference, argnums=tuple(range(6)))(*args)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("reverse", [False, True])
def test_fused_gradients_under_vmap(reverse):
    """`vmap` of the gradient, over a leading axis of inputs and over stacked parameters."""
    k = jax.random.split(jax.random.key(4), 3)
    params = jax.vmap(lambda k: init_params(k, D, H))(jax.random.split(k[0], 3))
    xs = jax.random.normal(k[1], (3, B, T, D))
    lengths = jnp.array([7, 3, 0, 1])

    def grads(backward):
        def one(params, x):
            def loss(params, x):
                y, s = lstm_scan(params, x, seq_lengths=lengths, reverse=reverse, backward=backward)
                return jnp.sum(jnp.sin(y)) + jnp.sum(s.h * s.c)

            return jax.grad(loss, argnums=(0, 1))(params, x)

        return jax.jit(jax.vmap(one))(params, xs)

    for a, b in zip(jax.tree.leaves(grads("fused")), jax.tree.leaves(grads("autodiff"))):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("shape", [(0, T, D), (B, 0, D)], ids=["no rows", "no steps"])
def test_fused_gradients_of_empty_batches_and_sequences(shape):
    """Zero rows or zero steps: the same gradients as autodiff (zero for the weights; with no
    steps the initial state's gradient is the final state's)."""
    params = init_params(jax.random.key(5), D, H)
    x = jnp.ones(shape)
    h0, c0 = jnp.full((2, shape[0], H), 0.5)

    def loss(params, x, h0, c0, backward):
        y, s = lstm_scan(params, x, LSTMState(h0, c0), backward=backward)
        return jnp.sum(y) + jnp.sum(s.h * s.c)

    got = jax.grad(loss, argnums=(0, 1, 2, 3))(params, x, h0, c0, "fused")
    want = jax.grad(loss, argnums=(0, 1, 2, 3))(params, x, h0, c0, "autodiff")
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, atol=1e-7)
    if shape[1] == 0:
        np.testing.assert_allclose(got[2], c0)  # d(h*c)/dh at the untouched initial state
    # And without an initial state (built from x's batch).
    y, s = lstm_scan(params, x)
    assert y.shape == (shape[0], shape[1], H) and s.h.shape == (shape[0], H)


def test_fused_second_use_under_jit_and_vmap_free_batch():
    layer = seqlstm.LSTM(D, H, return_sequences=True, rngs=nnx.Rngs(0))
    auto = seqlstm.LSTM(D, H, return_sequences=True, backward="autodiff", rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (B, T, D))

    @nnx.jit
    def grads(model, x):
        return nnx.grad(lambda m: jnp.sum(m(x) ** 2))(model)

    g1, g2 = grads(layer, x), grads(auto, x)
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-6)


def test_unknown_backward_raises():
    with pytest.raises(ValueError, match=r"backward must be one of .*got 'cudnn'"):
        seqlstm.LSTM(D, H, backward="cudnn", rngs=nnx.Rngs(0))


def test_fused_gradients_on_a_one_device_explicit_mesh():
    """Code written for N devices run on one: the batch is annotated as sharded over a
    1-device `Explicit` axis, where rows cannot be merged across the batch."""
    assert jax.device_count() == 1
    mesh = jax.make_mesh((1,), ("data",), axis_types=(jax.sharding.AxisType.Explicit,))
    params = init_params(jax.random.key(0), D, H)
    x = jax.random.normal(jax.random.key(1), (B, T, D))

    def loss(params, x, backward):
        return jnp.sum(jnp.sin(lstm_scan(params, x, backward=backward)[0]))

    want = jax.grad(loss, (0, 1))(params, x, "autodiff")
    rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    with jax.set_mesh(mesh):
        got = jax.jit(jax.grad(loss, (0, 1)), static_argnums=2)(
            params, jax.device_put(x, rows), "fused"
        )
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6, rtol=1e-6)


SHARDED_BATCH = """
import contextlib
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
from seqlstm.cell import batch_zeros, init_params
from seqlstm.scan import lstm_scan

jax.config.update("jax_numpy_rank_promotion", "raise")
params = init_params(jax.random.key(0), 3, 5)
x = jax.random.normal(jax.random.key(1), (8, 7, 3))
lengths = jnp.array([7, 3, 0, 1, 7, 5, 2, 6])

def loss(params, x, lengths, backward, reverse):
    y, s = lstm_scan(params, x, seq_lengths=lengths, backward=backward, reverse=reverse)
    return jnp.sum(jnp.sin(y)) + jnp.sum(s.h * s.c)

want = {r: jax.grad(loss, (0, 1))(params, x, lengths, "autodiff", r) for r in (False, True)}

def check(got, reverse, what):
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want[reverse])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6, rtol=1e-6, err_msg=what)

# (devices, axis type, inside jax.set_mesh, reverse): both directions, not every combination.
cases = [(4, AxisType.Explicit, False, False), (4, AxisType.Explicit, True, True),
         (1, AxisType.Explicit, True, False), (4, AxisType.Auto, False, True)]
for devices, axis_type, in_context, reverse in cases:
    what = (devices, axis_type, in_context, reverse)
    mesh = jax.make_mesh((devices,), ("data",), axis_types=(axis_type,))
    rows = NamedSharding(mesh, P("data"))
    replicated = jax.device_put(params, NamedSharding(mesh, P()))
    args = (jax.device_put(x, rows), jax.device_put(lengths, rows))
    with jax.set_mesh(mesh) if in_context else contextlib.nullcontext():
        if axis_type == AxisType.Explicit and in_context:
            zeros = jax.jit(lambda x: batch_zeros(x, 5))(args[0])
            assert zeros.sharding.spec == P("data", None), (what, zeros.sharding)
        grad = jax.jit(jax.grad(loss, (0, 1)), static_argnums=(3, 4))
        got = grad(replicated, *args, "fused", reverse)
        check(got, reverse, str(what))
        # JAX's own derivative of the scan too, given parameters placed on the mesh.
        check(grad(replicated, *args, "autodiff", reverse), reverse, str(what) + " autodiff")
        if axis_type == AxisType.Explicit:
            assert got[0]["kernel"].sharding.spec == P(None, None), what
            assert got[1].sharding.spec == P("data", None, None), what
        if devices > 1:
            # Each device works on its own rows: nothing gathers the batch, only the
            # weight gradients are summed over the devices.
            hlo = grad.lower(replicated, *args, "fused", reverse).compile().as_text()
            assert "all-gather" not in hlo, what
            assert "all-reduce" in hlo, what

# Inside shard_map (check_vma on): the gradient of the replicated parameters is summed over
# the shards, as JAX's autodiff does it.
mesh = jax.make_mesh((4,), ("data",))
with jax.set_mesh(mesh):
    rows = NamedSharding(mesh, P("data"))
    # One direction (the cases above cover both): the reversed scan, per shard.
    @jax.jit
    @jax.shard_map(in_specs=(P(), P("data"), P("data")), out_specs=(P(), P("data")))
    def per_shard(params, x, lengths):
        return jax.grad(loss, (0, 1))(params, x, lengths, "fused", True)

    got = per_shard(params, jax.device_put(x, rows), jax.device_put(lengths, rows))
    check(got, True, "shard_map")
print("OK")
"""


def test_fused_gradients_with_a_sharded_batch():
    """A batch sharded over devices: `AxisType.Explicit` meshes (the default of
    `jax.make_mesh`) with and without `jax.set_mesh`, over 4 devices and over 1, an `Auto` mesh
    (the train stack's), and `shard_map`. Gradients equal one device's autodiff; explicit
    sharding keeps the batch sharding of the input gradient and the zero initial state and
    replicates the weight gradients; no device gathers the batch."""
    env = dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=xla_flags("--xla_force_host_platform_device_count=4"),
        PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    proc = subprocess.run(
        [sys.executable, "-c", SHARDED_BATCH], env=env, capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("OK")


@pytest.mark.parametrize(
    "used, reverse", [("final state", False), ("outputs", True)], ids=["final state", "outputs"]
)
def test_fused_gradients_of_final_state_or_outputs_alone(used, reverse):
    """A loss on the final state alone (a model's last output) or on the outputs alone: the
    other's cotangent is a symbolic zero; gradients still equal autodiff's, masked."""
    k = jax.random.split(jax.random.key(6), 4)
    params = init_params(k[0], D, H)
    x = jax.random.normal(k[1], (B, T, D))
    h0, c0 = jax.random.normal(k[2], (2, B, H))
    lengths = jnp.array([7, 3, 0, 1])

    def loss(params, x, h0, c0, backward):
        y, s = lstm_scan(
            params, x, LSTMState(h0, c0), seq_lengths=lengths, reverse=reverse, backward=backward
        )
        return jnp.sum(s.h * s.c) + jnp.sum(s.h) if used == "final state" else jnp.sum(y**3)

    args = (params, x, h0, c0)
    got = jax.grad(loss, argnums=(0, 1, 2, 3))(*args, "fused")
    want = jax.grad(loss, argnums=(0, 1, 2, 3))(*args, "autodiff")
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-6)


def _loops_work(hlo: str, time: int) -> tuple[list[str], list[str]]:
    """The instructions of the while-loop bodies in compiled HLO text that produce a whole
    `[time, ...]` array: `(in_place, other)`, where `in_place` are fusions ending in a
    dynamic-update-slice (one step written into the loop's buffer) and `other` everything
    else but parameters, tuple elements and bitcasts (whole-array work at every step)."""
    comps, name = {}, None
    for line in hlo.splitlines():
        opened = re.match(r"(?:ENTRY )?(%[\w.\-]+) \(.*\{$", line)
        if opened:
            name = opened.group(1)
            comps[name] = []
        elif line == "}":
            name = None
        elif name is not None:
            comps[name].append(line)

    def root_op(comp):
        roots = (re.match(r"\s*ROOT %[\w.\-]+ = \S+ ([\w\-]+)\(", line) for line in comps[comp])
        return next(r.group(1) for r in roots if r)

    in_place, other = [], []
    bodies = set(re.findall(r"body=(%[\w.\-]+)", hlo))
    assert len(bodies) >= 2, "expected the forward and backward loops"
    for body in bodies:
        for line in comps[body]:
            made = re.match(r"\s*(?:ROOT )?%[\w.\-]+ = \w+\[(\d+),[^\]]*\]\S* ([\w\-]+)\(", line)
            if not made or int(made.group(1)) != time:
                continue
            op = made.group(2)
            if op in ("parameter", "get-tuple-element", "bitcast"):
                continue
            callee = re.search(r"calls=(%[\w.\-]+)", line)
            if op == "fusion" and root_op(callee.group(1)) == "dynamic-update-slice":
                in_place.append(line.strip())
            else:
                other.append(line.strip())
    return in_place, other


@pytest.mark.parametrize("cotangent", ["last output", "constant"])
def test_backward_loop_builds_no_whole_array_per_step(monkeypatch, cotangent):
    """Issue 20: with `return_sequences=False` the outputs' cotangent was an instantiated zero
    array, and with a loss `sum(ys)` a broadcast of ones; XLA sank either into the backward loop,
    where the `lax.cond` reading each step's inputs rebuilt the whole [T, B, H] array at every
    step (O(T^2): 2-3x autodiff's time at T = 512). In the compiled loops now each step only
    writes its own slice."""
    monkeypatch.setattr(fused_backward, "isolate_reads", lambda: True)  # the CPU form, the cond
    time = 13  # a size no other dimension has
    x = jax.random.normal(jax.random.key(7), (B, time, D))
    if cotangent == "last output":
        # the scan explicitly: "auto" takes the native kernel at this shape where it is built
        layer = seqlstm.LSTM(D, H, return_sequences=False, backend="scan", rngs=nnx.Rngs(0))
        graphdef, params = nnx.split(layer, nnx.Param)

        def loss(params, x):
            return jnp.sum(nnx.merge(graphdef, params)(x) ** 2)

    else:  # straight into the custom VJP: through lstm_scan, XLA happens not to sink this one
        params = init_params(jax.random.key(8), D, H)
        x = jnp.swapaxes(x, 0, 1)
        h0 = jnp.zeros((B, H))
        f32 = jnp.dtype("float32")

        def loss(params, x):
            p = (params["kernel"], params["recurrent_kernel"], params["bias"])
            return jnp.sum(fused_backward.fused_lstm(*p, x, h0, h0, None, False, 1, f32)[0])

    hlo = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(params, x).compile().as_text()
    in_place, other = _loops_work(hlo, time)
    assert other == []
    assert len(in_place) >= 4, in_place  # ys, gates, cs forward; dz backward: the parse works
