"""seqlstm.kernels.native: the native CPU kernel against the scan and PyTorch's nn.LSTM, its
fallback when the extension is absent, and the rule that picks it (seqlstm.kernels.rule)."""

import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from test_configs import CONFIGS, load

import seqlstm
from seqlstm import scan
from seqlstm.cell import LSTMState
from seqlstm.kernels import native, rule

B, T, D, H = 5, 7, 3, 4
LENGTHS = jnp.array([0, T, 3, 1, 5], jnp.int32)  # an empty row, a full row, three in between
ATOL = 1e-5

needs_kernel = pytest.mark.skipif(not native.native_available(), reason=native.native_reason())


def _params(seed):
    k = jax.random.split(jax.random.key(seed), 3)
    return {
        "kernel": 0.5 * jax.random.normal(k[0], (D, 4 * H)),
        "recurrent_kernel": 0.5 * jax.random.normal(k[1], (H, 4 * H)),
        "bias": 0.5 * jax.random.normal(k[2], (4 * H,)),
    }


def _inputs(seed, batch=B):
    k = jax.random.split(jax.random.key(seed), 3)
    x = jax.random.normal(k[0], (batch, T, D))
    state = LSTMState(jax.random.normal(k[1], (batch, H)), jax.random.normal(k[2], (batch, H)))
    return x, state


def _value_and_grads(backend, params, x, state, **kw):
    """Outputs, final state and the gradients of a fixed nonlinear functional of all three."""

    def loss(params, x, state):
        y, s = scan.lstm_scan(params, x, state, backend=backend, **kw)
        return jnp.sum(jnp.sin(3 * y)) + jnp.sum(s.h * jnp.cos(s.c)), (y, s)

    (_, out), grads = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)(params, x, state)
    return out, grads


def _assert_trees_close(a, b):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), atol=ATOL, rtol=0)


@needs_kernel
@pytest.mark.parametrize(
    "reverse,lengths", [(False, None), (True, LENGTHS)], ids=["forward-full", "reverse-lengths"]
)
def test_native_matches_scan_outputs_states_and_every_gradient(reverse, lengths):
    params = _params(0)
    x, state = _inputs(1)
    kw = dict(reverse=reverse, seq_lengths=lengths)
    ours = _value_and_grads("native", params, x, state, **kw)
    theirs = _value_and_grads("scan", params, x, state, **kw)
    _assert_trees_close(ours, theirs)
    if lengths is not None:  # the empty row keeps its initial state and outputs zeros
        (y, s), _ = ours
        assert not np.asarray(y[0]).any()
        np.testing.assert_array_equal(s.h[0], state.h[0])
        np.testing.assert_array_equal(s.c[0], state.c[0])


@needs_kernel
@pytest.mark.parametrize(
    "kw",
    [dict(dropout=0.3, key=jax.random.key(5)), dict(remat_chunk=3, reverse=True)],
    ids=["input_dropout", "remat_chunk"],
)
def test_native_with_input_dropout_and_rematerialised_chunks_matches_the_scan(kw):
    params = _params(0)
    x, state = _inputs(1)
    kw = dict(seq_lengths=LENGTHS, **kw)
    ours = _value_and_grads("native", params, x, state, **kw)
    _assert_trees_close(ours, _value_and_grads("scan", params, x, state, **kw))


def _layers(module, backend):
    for _, node in nnx.iter_graph(module):
        if isinstance(node, seqlstm.LSTM):
            node.backend = backend
    return module


def _wide_case(seed: int, time: int):
    """A case with tails everywhere: 13 rows (tiles of 6 and 8 rows), 20 units (blocks of 16 and
    8 lanes), lengths from 0 to `time` (>= 6), random initial states."""
    b, d, h = 13, 9, 20
    keys = jax.random.split(jax.random.key(seed), 6)
    params = {
        "kernel": 0.4 * jax.random.normal(keys[0], (d, 4 * h)),
        "recurrent_kernel": 0.4 * jax.random.normal(keys[1], (h, 4 * h)),
        "bias": 0.4 * jax.random.normal(keys[2], (4 * h,)),
    }
    x = jax.random.normal(keys[3], (b, time, d))
    state = LSTMState(jax.random.normal(keys[4], (b, h)), jax.random.normal(keys[5], (b, h)))
    lengths = jnp.array([0, time, 3, 1, 5, time, 2, 0, 4, time, 1, 6, 3], jnp.int32)
    return params, x, state, lengths


def _check_wide_shapes() -> None:
    """Both directions of `_wide_case`: outputs, final state and every gradient against the
    scan; and the forward pass alone, which runs its own target (no residuals written)."""
    params, x, state, lengths = _wide_case(7, 6)
    for reverse in (False, True):
        kw = dict(reverse=reverse, seq_lengths=lengths)
        ours = _value_and_grads("native", params, x, state, **kw)
        _assert_trees_close(ours, _value_and_grads("scan", params, x, state, **kw))
    y, s = jax.jit(lambda x: scan.lstm_scan(params, x, state, backend="native"))(x)
    y_scan, s_scan = scan.lstm_scan(params, x, state, backend="scan")
    _assert_trees_close((y, s), (y_scan, s_scan))


@needs_kernel
def test_native_at_shapes_with_partial_tiles_on_two_threads(monkeypatch):
    # One thread is what every small shape above runs (the kernel does not split tiny steps).
    monkeypatch.setenv("SEQLSTM_NATIVE_THREADS", "2")
    _check_wide_shapes()
    _check_bf16()


@needs_kernel
def test_outputs_large_enough_for_huge_pages_match_the_scan_either_way(monkeypatch):
    # Outputs, residuals and cell states of 39 MB together, past the size where the kernel maps
    # them as huge pages first (`Prefault`, when their block is fresh: strace shows its madvise
    # calls here), unless SEQLSTM_NATIVE_HUGE_PAGES=0. The numbers are the same either way, and
    # the scan's; the test does not assert that the mapping happened (malloc's state decides).
    b, t, d, h = 64, 100, 16, 256
    keys = jax.random.split(jax.random.key(3), 4)
    params = {
        "kernel": 0.1 * jax.random.normal(keys[0], (d, 4 * h)),
        "recurrent_kernel": 0.05 * jax.random.normal(keys[1], (h, 4 * h)),
        "bias": 0.1 * jax.random.normal(keys[2], (4 * h,)),
    }
    x = jax.random.normal(keys[3], (b, t, d))
    state = LSTMState(jnp.zeros((b, h)), jnp.zeros((b, h)))
    lengths = jnp.linspace(0, t, b).astype(jnp.int32)  # 0 to T
    kw = dict(seq_lengths=lengths)
    huge = _value_and_grads("native", params, x, state, **kw)
    monkeypatch.setenv("SEQLSTM_NATIVE_HUGE_PAGES", "0")
    small = _value_and_grads("native", params, x, state, **kw)
    for u, v in zip(jax.tree.leaves(huge), jax.tree.leaves(small), strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    # Gradients are sums over 6,400 rows in another order: errors of float32 rounding on the
    # scale of the largest entries (up to ~200 in the input kernel's gradient).
    scanned = _value_and_grads("scan", params, x, state, **kw)
    for u, v in zip(jax.tree.leaves(huge), jax.tree.leaves(scanned), strict=True):
        u, v = np.asarray(u), np.asarray(v)
        scale = max(1.0, float(np.abs(v).max()))
        np.testing.assert_allclose(u, v, atol=ATOL * scale / 10, rtol=1e-4)


def _check_bf16() -> None:
    """dtype=bfloat16 against the bfloat16 scan (products of bfloat16 operands accumulated in
    float32, gate math and state in float32: the scan's mixed precision), and not float32."""
    params, x, state, lengths = _wide_case(0, 9)
    kw = dict(reverse=True, seq_lengths=lengths)
    native_bf16 = _value_and_grads("native", params, x, state, dtype=jnp.bfloat16, **kw)
    scan_bf16 = _value_and_grads("scan", params, x, state, dtype=jnp.bfloat16, **kw)
    scan_f32 = _value_and_grads("scan", params, x, state, **kw)
    assert jax.tree.leaves(native_bf16)[0].dtype == jnp.bfloat16  # the outputs
    gap_to_f32 = 0.0
    for u, v, w in zip(*map(jax.tree.leaves, (native_bf16, scan_bf16, scan_f32)), strict=True):
        u, v, w = (np.asarray(a, np.float64) for a in (u, v, w))
        np.testing.assert_allclose(u, v, atol=1e-3, rtol=1e-3)
        gap_to_f32 = max(gap_to_f32, np.abs(v - w).max())
    assert gap_to_f32 > 3e-2  # the comparison can tell bfloat16 from float32
    # The forward pass alone (its own target, no residuals) gives the same outputs.
    forward = partial(scan.lstm_scan, backend="native", dtype=jnp.bfloat16, **kw)
    run = jax.jit(lambda x: forward(params, x, state))
    _assert_trees_close(run(x), native_bf16[0])


@needs_kernel
def test_native_in_bfloat16_matches_the_bfloat16_scan_not_float32():
    """The kernel sums the same exact products in another order (on this CPU's bfloat16 units
    where it has them): it agrees with the bfloat16 scan to ~1e-4, where the bfloat16 scan
    differs from float32 by ~1e-1."""
    has_units = {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_bf16"} <= native.cpu_flags()
    assert native.bf16_units() == has_units, native.native_reason()
    assert ("bfloat16 units" in native.native_reason()) == has_units
    _check_bf16()


@needs_kernel
@pytest.mark.parametrize(
    "isa",
    [
        "avx2",
        pytest.param(
            "avx512",
            marks=pytest.mark.skipif(
                "avx512f" not in native.cpu_flags(), reason="this CPU runs no AVX-512 tiles"
            ),
        ),
    ],
)
def test_the_other_tiles_match_the_scan_too(isa):
    """This CPU may run the AVX-512 tiles with bfloat16 units; a process with
    SEQLSTM_NATIVE_ISA=avx2 runs the AVX2 tiles, one with avx512 the AVX-512 tiles with
    bfloat16 products as float32 arithmetic on rounded operands."""
    env = dict(os.environ, SEQLSTM_NATIVE_ISA=isa, SEQLSTM_NATIVE_THREADS="2")
    check = "t._check_wide_shapes(); t._check_bf16()" if isa == "avx2" else "t._check_bf16()"
    code = (
        "import test_kernels_native as t; from seqlstm.kernels import native; "
        f"assert {isa.upper().replace('AVX512', 'AVX-512')!r} in native.native_reason(); "
        f"assert not native.bf16_units(); {check}"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=Path(__file__).parent, env=env, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]


@needs_kernel
def test_native_two_layer_bidirectional_stack_matches_the_scan():
    """A 2-layer `StackedLSTM` of `Bidirectional` layers, forward lengths from 0 to T."""
    x, _ = _inputs(2)

    def run(backend):
        model = seqlstm.StackedLSTM(
            D, [H, H], bidirectional=True, return_sequences=True, return_state=True,
            backend=backend, rngs=nnx.Rngs(3),
        )  # fmt: skip
        graph, params, rest = nnx.split(model, nnx.Param, ...)

        def loss(params, x):
            y, states = nnx.merge(graph, params, rest)(x, seq_lengths=LENGTHS)
            extra = sum(jnp.sum(jnp.tanh(s)) for s in jax.tree.leaves(states))
            return jnp.sum(jnp.sin(3 * y)) + extra, y

        return jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, x)

    _assert_trees_close(run("native"), run("scan"))


@needs_kernel
def test_native_matches_torch_lstm_with_the_same_weights():
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from seqlstm.interop import from_torch, torch_states

    torch.manual_seed(0)
    module = torch.nn.LSTM(D, H, num_layers=2, bidirectional=True, batch_first=True)
    model = _layers(from_torch(module), "native")
    x_np = np.random.default_rng(0).normal(size=(3, T, D)).astype(np.float32)
    lengths = np.array([T, 2, 5])
    xt = torch.tensor(x_np, requires_grad=True)
    packed = pack_padded_sequence(xt, torch.tensor(lengths), batch_first=True, enforce_sorted=False)
    out_t, (h_n, c_n) = module(packed)
    out_t, _ = pad_packed_sequence(out_t, batch_first=True, total_length=T)
    (out_t.square().sum() + h_n.sum() + c_n.sum()).backward()

    def loss(x):
        out, states = model(x, seq_lengths=jnp.asarray(lengths))
        return jnp.sum(out**2) + sum(jnp.sum(s) for s in jax.tree.leaves(states)), (out, states)

    (_, (out, states)), grad = jax.value_and_grad(loss, has_aux=True)(jnp.asarray(x_np))
    np.testing.assert_allclose(np.asarray(out), out_t.detach().numpy(), atol=ATOL, rtol=0)
    _assert_trees_close(states, torch_states(h_n, c_n, 2, True))
    np.testing.assert_allclose(np.asarray(grad), xt.grad.numpy(), atol=ATOL, rtol=0)


def test_without_the_extension_auto_takes_the_scan_and_native_is_refused(monkeypatch):
    unbuilt = (False, "the native kernel is not built (test)", 0, False)
    monkeypatch.setattr(native, "_load", lambda: unbuilt)
    monkeypatch.setattr(rule, "native_wins", lambda *shape: True)
    assert not native.native_available()
    assert scan.choose_backend("auto", jnp.float32, (32, 100, 128, 128)) == "scan"
    params = _params(0)
    x, _ = _inputs(1)
    y, _ = scan.lstm_scan(params, x)  # auto: the scan
    np.testing.assert_allclose(y, scan.lstm_scan(params, x, backend="scan")[0], atol=0)
    with pytest.raises(ValueError, match=r"backend='native' is unavailable: .*not built \(test\)"):
        scan.lstm_scan(params, x, backend="native")


@needs_kernel
def test_auto_rule_takes_native_where_it_wins_in_float32_and_bfloat16(monkeypatch):
    train, forward = (32, 100, 128, 128), (16, 512, 64, 64)
    monkeypatch.setattr(rule, "native_wins", lambda *s: s[:4] in (train, forward))
    monkeypatch.setattr(rule, "native_forward_wins", lambda *s: s[:4] == forward)
    assert scan.choose_backend("auto", jnp.float32, forward) == "native"
    assert scan.choose_backend("auto", jnp.float32, train) == "native_train"
    assert scan.choose_backend("auto", jnp.float32, (8, 4, 2, 2)) == "scan"
    assert scan.choose_backend("auto", jnp.bfloat16, train) == "native_train"
    assert scan.choose_backend("auto", jnp.float16, train) == "scan"
    assert scan.choose_backend("auto", jnp.float32, None) == "scan"
    with pytest.raises(
        ValueError, match="backend='native' runs float32 and bfloat16 only, got dtype float16"
    ):
        scan.choose_backend("native", jnp.float16)
    with pytest.raises(ValueError, match="backend='native' runs the plain cell"):
        scan.lstm_scan(
            {**_params(0), "peephole": jnp.zeros((3, H))}, _inputs(0)[0], backend="native"
        )


def test_the_measured_rule():
    """benchmarks/native_rule.py: since the kernel's own tiles, it trains and runs the forward
    pass faster than the scan at every shape measured there (the issue's four, the G2P encoder's,
    the character model's, the reversal task's), so auto takes it for all of them."""
    from benchmarks.native_rule import SHAPES

    assert len(SHAPES) == 9
    for shape in SHAPES:
        assert rule.native_wins(*shape) and rule.native_forward_wins(*shape), shape
    # bfloat16 on bfloat16 units: every shape (1.00-4.7x in training).
    for shape in SHAPES:
        assert rule.native_wins(*shape, bf16=True, units=True), shape
        assert rule.native_forward_wins(*shape, bf16=True, units=True), shape
    # Without them: up to H = 128, where it won 1.8-4.9x; at H = 512 the bfloat16 scan was faster.
    assert rule.native_wins(32, 100, 128, 128, bf16=True)
    assert rule.native_forward_wins(16, 512, 64, 64, bf16=True)
    assert not rule.native_wins(128, 50, 512, 512, bf16=True)
    assert not rule.native_forward_wins(64, 16, 256, 256, bf16=True)


@needs_kernel
def test_a_training_only_choice_runs_the_scan_when_not_differentiated(monkeypatch):
    monkeypatch.setattr(rule, "native_wins", lambda *s: True)
    monkeypatch.setattr(rule, "native_forward_wins", lambda *s: False)
    params = _params(0)
    x, _ = _inputs(1)
    forward = jax.jit(lambda p, x: scan.lstm_scan(p, x)[0])
    assert "seqlstm_lstm" not in forward.lower(params, x).as_text()
    train = jax.jit(jax.grad(lambda p, x: jnp.sum(scan.lstm_scan(p, x)[0])))
    assert "seqlstm_lstm_backward" in train.lower(params, x).as_text()
    _assert_trees_close(train(params, x), _value_and_grads_of_sum(params, x))


def _value_and_grads_of_sum(params, x):
    return jax.grad(lambda p, x: jnp.sum(scan.lstm_scan(p, x, backend="scan")[0]))(params, x)


@needs_kernel
def test_native_under_vmap_and_jit_without_recompiling():
    params = _params(0)
    x, state = _inputs(1)
    xs = jnp.stack([x, 2 * x])
    run = lambda x, backend: scan.lstm_scan(params, x, state, seq_lengths=LENGTHS, backend=backend)
    mapped = jax.vmap(lambda x: run(x, "native"))(xs)
    _assert_trees_close(mapped, jax.vmap(lambda x: run(x, "scan"))(xs))

    step = jax.jit(jax.grad(lambda p, x: jnp.sum(scan.lstm_scan(p, x, backend="native")[0])))
    step(params, x)
    with jax.log_compiles():
        before = step._cache_size()
        step(params, 2 * x)
    assert step._cache_size() == before == 1


@needs_kernel
def test_the_native_custom_call_is_lowered_for_cpu_only():
    params = _params(0)
    x, _ = _inputs(1)
    f = jax.jit(jax.grad(lambda p, x: jnp.sum(scan.lstm_scan(p, x, backend="native")[0])))
    assert "seqlstm_lstm_forward" in f.lower(params, x).as_text()
    for platform in ("cuda", "tpu"):
        text = jax.export.export(f, platforms=[platform])(params, x).mlir_module()
        assert "seqlstm_lstm" not in text, platform


def _lowered_steps(path):
    """`(name, jitted function, args)` of a config's training step and, for an encoder-decoder,
    its greedy decoding and beam search, built from the config's `smoke` preset."""
    from seqlstm.train import build_run, create_train_state

    config = load(path, "smoke")
    run = build_run(config)
    state = run.place.put(create_train_state(run.params, run.tx, config.seed))
    _, batch = next(iter(run.epoch(0)))
    yield "train_step", run.train_step(state), (state, batch)
    model = run.model_def.merge_eval(lambda p: p, run.params)
    if isinstance(model, seqlstm.EncoderDecoder):
        source = (batch["source"][:2], batch["source_lengths"][:2])
        yield "greedy", jax.jit(lambda s, n: seqlstm.greedy_decode(model, s, n).tokens), source
        beam = lambda s, n: seqlstm.beam_search(model, s, n, beam_size=2).tokens
        yield "beam", jax.jit(beam), source


@needs_kernel
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.split("/")[-1])
def test_shipped_configs_lower_for_cuda_and_tpu_without_the_native_call(path, monkeypatch):
    monkeypatch.setattr(rule, "native_wins", lambda *shape: True)  # native wherever it may run
    for name, f, args in _lowered_steps(path):
        if name == "train_step":  # the CPU lowering differentiates the kernel
            assert "seqlstm_lstm_backward" in f.lower(*args).as_text()
        for platform in ("cuda", "tpu"):
            text = jax.export.export(f, platforms=[platform])(*args).mlir_module()
            assert "seqlstm_lstm" not in text, (name, platform)


def test_a_cpu_without_avx2_takes_the_scan_instead_of_dying_with_sigill(monkeypatch):
    # The library is compiled for x86-64-v3; on an older CPU its first call would be SIGILL.
    before = native._load()
    native._load.cache_clear()
    try:
        with monkeypatch.context() as m:
            m.setattr(native, "cpu_flags", lambda: frozenset({"sse4_2", "avx"}))
            available, reason, _, units = native._load()
        assert not available and not units
        assert "x86-64-v3" in reason and "avx2" in reason and "fma" in reason
    finally:
        native._load.cache_clear()  # the real answer again, for the tests after this one
    assert native._load() == before
