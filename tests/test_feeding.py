"""Tests for seqlstm/feeding.py: the input-feeding decoder's fused backward against the generic
`lax.scan` over `Decoder.step` (JAX's autodiff), and when the decoder takes it."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from seqlstm import feeding
from seqlstm.cell import LSTMState
from seqlstm.decoder import Decoder, DecoderCarry
from seqlstm.kernels import native, rule

B, T, S, H, V = 5, 7, 6, 16, 11
LENGTHS = jnp.asarray([0, S, 3, 1, 5])  # an empty source and a full one


def decoder(kind, layers, memory_size=12, **kwargs):
    memory_size = H if kind == "dot" else memory_size
    return Decoder(
        V, H, memory_size, num_layers=layers, embed_dim=8, attention=kind, rngs=nnx.Rngs(0),
        **kwargs,
    )  # fmt: skip


def inputs(dec, layers, seed=0):
    rng = np.random.default_rng(seed)
    normal = lambda *shape: jnp.asarray(rng.normal(size=shape), jnp.float32)
    states = tuple(LSTMState(normal(B, H), normal(B, H)) for _ in range(layers))
    return dict(
        tokens=jnp.asarray(rng.integers(0, V, (B, T))),
        values=normal(B, S, dec.attention.key_size),
        states=states,
        feed=normal(B, H),
        logit_weights=normal(B, T, V),
        attention_weights=normal(B, T, S),
    )


def loss_and_grads(dec, x, fused, monkeypatch, attention_cotangent=True):
    """The loss `sum(logits * w) (+ sum(weights * u))` and its gradients with respect to every
    parameter, the initial states, the first feed and the encoder outputs."""
    with monkeypatch.context() as m:
        if not fused:
            m.setattr(Decoder, "_fused_feeding", lambda *args: False)
        calls = _spy_on_feeding(m)
        graph, params = nnx.split(dec)

        def loss(params, states, feed, values):
            d = nnx.merge(graph, params)
            logits, w = d(x["tokens"], DecoderCarry(states, feed, None), d.memory(values, LENGTHS))
            total = jnp.sum(logits * x["logit_weights"])
            if attention_cotangent:
                total = total + jnp.sum(w * x["attention_weights"])
            return total, (logits, w)

        grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3), has_aux=True))
        out = grad(params, x["states"], x["feed"], x["values"])
    assert bool(calls) == fused  # the fused path ran exactly when asked
    return out


@pytest.mark.parametrize("kind", ["additive", "general", "dot"])
@pytest.mark.parametrize("layers", [1, 2])
def test_fused_backward_equals_autodiff_of_the_step_scan(kind, layers, monkeypatch):
    dec = decoder(kind, layers)
    x = inputs(dec, layers)
    got = loss_and_grads(dec, x, True, monkeypatch)
    want = loss_and_grads(dec, x, False, monkeypatch)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    (_, (_, weights)), grads = got
    assert np.all(np.asarray(weights)[0] == 0.0)  # the empty source: no weight, no NaN
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree.leaves(grads))
    assert float(jnp.max(jnp.abs(grads[3][0]))) == 0.0  # nothing flows to an empty source


def test_unused_attention_weights_one_step_and_none(monkeypatch):
    # The training loss reads only the logits: the weights' cotangent is a symbolic zero.
    dec = decoder("additive", 2)
    x = inputs(dec, 2, seed=1)
    got = loss_and_grads(dec, x, True, monkeypatch, attention_cotangent=False)
    want = loss_and_grads(dec, x, False, monkeypatch, attention_cotangent=False)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    for steps in (1, 0):
        x["tokens"] = x["tokens"][:, :steps]
        x["logit_weights"], x["attention_weights"] = x["logit_weights"][:, :steps], None
        got = loss_and_grads(dec, x, True, monkeypatch, attention_cotangent=False)
        want = loss_and_grads(dec, x, False, monkeypatch, attention_cotangent=False)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "kind, kwargs",
    [
        ("location", {}),  # its score reads the previous weights
        ("additive", {"backward": "autodiff"}),  # the user asked for JAX's autodiff
        ("additive", {"layer_norm": True}),  # a variant cell
        ("additive", {"dtype": jnp.bfloat16}),  # mixed precision
        ("additive", {"dropout": 0.3}),  # masks in training mode
    ],
)
def test_other_decoders_run_the_step_scan(kind, kwargs, monkeypatch):
    dec = decoder(kind, 1, **kwargs)
    x = inputs(dec, 1)
    memory = dec.memory(x["values"], LENGTHS)
    carry = DecoderCarry(x["states"], x["feed"], dec.initial_alignment(memory))
    calls = _spy_on_feeding(monkeypatch)
    logits, _ = dec(x["tokens"], carry, memory)
    assert logits.shape == (B, T, V) and not calls
    if "dropout" in kwargs:  # in evaluation mode there are no masks: the fused path again
        dec.eval()
        dec(x["tokens"], carry, memory)
        assert calls


def _spy_on_feeding(monkeypatch) -> list:
    """A list that grows by one at each call of the decoder's `feeding_decoder`."""
    calls = []
    original = feeding.feeding_decoder
    monkeypatch.setattr(
        "seqlstm.decoder.feeding_decoder", lambda *a: calls.append(1) or original(*a)
    )
    return calls


def test_fused_backward_lowers_for_cuda_and_tpu(monkeypatch):
    calls = _spy_on_feeding(monkeypatch)
    dec = decoder("additive", 2)
    x = inputs(dec, 2)
    graph, params = nnx.split(dec)

    def loss(params, values):
        d = nnx.merge(graph, params)
        carry = DecoderCarry(x["states"], x["feed"], None)
        logits, _ = d(x["tokens"], carry, d.memory(values, LENGTHS))
        return jnp.sum(logits * x["logit_weights"])

    f = jax.jit(jax.grad(loss, argnums=(0, 1)))
    for platform in ("cuda", "tpu"):
        text = jax.export.export(f, platforms=[platform])(params, x["values"]).mlir_module()
        assert "stablehlo.while" in text  # the two loops, lowered for the accelerator
        assert "seqlstm_" not in text  # and no CPU kernel call among them
    assert calls  # through the fused path


# The native CPU kernel's two calls for the loops (seqlstm/kernels/feeding_cpu.inc) against the
# scans, given the same arguments: every output and every gradient.
needs_kernel = pytest.mark.skipif(not native.native_available(), reason=native.native_reason())


def _loop_arguments(kind, layers, steps, seed=0):
    """`feeding_decoder`'s arrays: hidden size H, queries of width 10 (additive), encoder
    outputs of width 12 (H for dot), the source lengths 0, S (full), 3, 1 and S + 4 (longer
    than the source: all valid)."""
    rng = np.random.default_rng(seed)
    normal = lambda *shape: jnp.asarray(0.5 * rng.normal(size=shape), jnp.float32)
    width = 10 if kind == "additive" else H
    memory = H if kind == "dot" else 12
    return (
        normal(steps, B, 4 * H),
        tuple(normal(2 * H, 4 * H) for _ in range(layers)),
        tuple(normal(4 * H) for _ in range(layers)),
        tuple(normal(B, H) for _ in range(layers)),
        tuple(normal(B, H) for _ in range(layers)),
        normal(B, H),
        normal(H, width) if kind == "additive" else jnp.zeros((0, 0)),
        normal(width) if kind == "additive" else jnp.zeros((0,)),
        normal(memory + H, H),
        normal(B, S, width),
        normal(B, S, memory),
        jnp.asarray([0, S, 3, 1, S + 4]),
    )


def _loop_grads(args, kind, backend, attention_cotangent):
    steps = args[0].shape[0]
    rng = np.random.default_rng(1)
    w_out = jnp.asarray(rng.normal(size=(steps, B, H)), jnp.float32)
    w_attn = jnp.asarray(rng.normal(size=(steps, B, S)), jnp.float32)

    def loss(*arrays):
        outs, attn = feeding.feeding_decoder(*arrays, kind, 1, backend)
        total = jnp.sum(outs * w_out)
        if attention_cotangent:
            total = total + jnp.sum(attn * w_attn)
        return total, (outs, attn)

    grad = jax.value_and_grad(loss, argnums=tuple(range(11)), has_aux=True)
    return jax.jit(grad)(*args)


@needs_kernel
@pytest.mark.parametrize("kind", ["additive", "general", "dot"])
@pytest.mark.parametrize("layers", [1, 2])
def test_native_loops_equal_the_scans(kind, layers, monkeypatch):
    args = _loop_arguments(kind, layers, steps=T)
    calls = _spy_on_native(monkeypatch)
    got = _loop_grads(args, kind, "native", attention_cotangent=layers == 2)
    assert calls == ["feeding_forward", "feeding_backward"]
    want = _loop_grads(args, kind, "scan", attention_cotangent=layers == 2)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    (_, (_, weights)), grads = got
    assert np.all(np.asarray(weights)[:, 0] == 0.0)  # the empty source
    assert float(jnp.max(jnp.abs(grads[10][0]))) == 0.0  # and nothing flows to it


def _spy_on_native(monkeypatch) -> list:
    """A list that grows by the name of each native loop call traced."""
    calls = []
    for name in ("feeding_forward", "feeding_backward"):
        original = getattr(native, name)
        monkeypatch.setattr(native, name, partial(_record, calls, name, original))
    return calls


def _record(calls, name, original, *args, **kwargs):
    calls.append(name)
    return original(*args, **kwargs)


@needs_kernel
def test_native_loops_one_step_and_under_vmap():
    args = _loop_arguments("additive", 2, steps=1, seed=3)
    got = _loop_grads(args, "additive", "native", attention_cotangent=True)
    want = _loop_grads(args, "additive", "scan", attention_cotangent=True)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    # vmap over a leading axis of the embeddings' product: one call per slice, in turn.
    x = jnp.stack([args[0], 2 * args[0]])
    run = lambda backend: jax.vmap(
        lambda x: feeding.feeding_decoder(x, *args[1:], "additive", 1, backend)[0]
    )(x)
    np.testing.assert_allclose(run("native"), run("scan"), rtol=1e-5, atol=1e-5)


def test_the_rule_for_the_native_loops():
    assert rule.native_feeding_wins(64, 256) and rule.native_feeding_wins(256, 512)
    assert rule.native_feeding_wins(128, 256, forward_only=True)  # measured 1.08x
    assert not rule.native_feeding_wins(128, 512, forward_only=True)  # measured 0.68x


def test_an_unknown_backend_is_refused():
    args = _loop_arguments("dot", 1, steps=2)
    with pytest.raises(ValueError, match="backend must be one of"):
        feeding.feeding_decoder(*args, "dot", 1, "cudnn")
    with pytest.raises(ValueError, match="backend must be one of"):
        jax.grad(lambda x: feeding.feeding_decoder(x, *args[1:], "dot", 1, "nat")[0].sum())(args[0])


@needs_kernel
def test_native_for_training_only_runs_the_scan_without_a_gradient(monkeypatch):
    args = _loop_arguments("general", 1, steps=3)
    calls = _spy_on_native(monkeypatch)
    outs, _ = jax.jit(lambda *a: feeding.feeding_decoder(*a, "general", 1, "native_train"))(*args)
    assert calls == []
    want, _ = feeding.feeding_decoder(*args, "general", 1, "scan")
    np.testing.assert_allclose(outs, want, rtol=1e-5, atol=1e-5)
    _loop_grads(args, "general", "native_train", attention_cotangent=True)
    assert calls == ["feeding_forward", "feeding_backward"]


@needs_kernel
def test_the_decoder_takes_the_native_loops_as_its_layers_backend_says(monkeypatch):
    taken = []
    original = feeding.feeding_decoder
    monkeypatch.setattr(
        "seqlstm.decoder.feeding_decoder", lambda *a: taken.append(a[-1]) or original(*a)
    )
    for backend, want in (("auto", "native"), ("native", "native"), ("scan", "scan")):
        dec = decoder("additive", 2, backend=backend)
        x = inputs(dec, 2)
        memory = dec.memory(x["values"], LENGTHS)
        dec(x["tokens"], DecoderCarry(x["states"], x["feed"], None), memory)
        assert taken.pop() == want, backend
    # Past the rule's batch x hidden, "auto" keeps the native loops for training only.
    monkeypatch.setattr(rule, "FEEDING_FORWARD_MAX", B * H - 1)
    dec = decoder("additive", 1)
    x = inputs(dec, 1)
    dec(x["tokens"], DecoderCarry(x["states"], x["feed"], None), dec.memory(x["values"], LENGTHS))
    assert taken.pop() == "native_train"
    # Without the kernel "auto" runs the scans.
    monkeypatch.setattr(native, "native_available", lambda: False)
    dec = decoder("additive", 1)
    x = inputs(dec, 1)
    dec(x["tokens"], DecoderCarry(x["states"], x["feed"], None), dec.memory(x["values"], LENGTHS))
    assert taken.pop() == "scan"
