"""Tests for seqlstm/train/parallel.py: meshes from the config, process-local batches, and
training on 8 simulated devices against 1 device (in a subprocess, so that the device count is
set before JAX starts)."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from launcher import xla_flags

from configs.common import parallel_config
from configs.reverse import get_config
from configs.seq2seq import get_config as seq2seq_config
from seqlstm.data import bucketed_batches, eval_batches, train_batches
from seqlstm.tasks import get_task
from seqlstm.train import parallel, train_and_evaluate
from seqlstm.train.parallel import DataParallel, SingleDevice, gather_rows, plan_split

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class FakeDevice:
    platform = "cpu"

    def __init__(self, i):
        self.id = i


def section(**overrides):
    c = parallel_config()
    for k, v in overrides.items():
        c[k] = v
    return c


# --- building from the config ------------------------------------------------------------------


def test_no_mesh_is_a_single_device_and_changes_nothing():
    assert type(parallel.from_config(None)) is SingleDevice
    assert type(parallel.from_config(section())) is SingleDevice
    one = SingleDevice()
    one.check_batch_size(7)
    assert one.eval_batch_size(7) == 7 and one.put("state") == "state"


def test_mesh_shapes_and_minus_one():
    devices = [FakeDevice(i) for i in range(8)]
    assert parallel.make_mesh((-1,), ("data",), devices).shape == {"data": 8}
    mesh = parallel.make_mesh((4, -1), ("data", "model"), devices)
    assert dict(mesh.shape) == {"data": 4, "model": 2}


@pytest.mark.parametrize(
    "shape, names, match",
    [
        ((4, 4), ("data", "model"), r"asks for 16 devices, but there are 8 cpu devices"),
        ((3,), ("data",), r"asks for 3 devices, but there are 8"),
        ((3, -1), ("data", "model"), r"need a multiple of 3 devices, but there are 8"),
        ((-1, -1), ("data", "model"), "may hold one -1"),
        ((0,), ("data",), "must be a tuple of positive ints"),
        ((2.0,), ("data",), "must be a tuple of positive ints"),
        ((2, 2, 2), ("data", "model"), "must name each of the 3 axes"),
        ((4, 2), ("data", "data"), "must name each of the 2 axes"),
    ],
)
def test_a_mesh_that_does_not_fit_the_devices_is_refused(shape, names, match):
    devices = [FakeDevice(i) for i in range(8)]
    with pytest.raises(ValueError, match=match):
        parallel.make_mesh(shape, names, devices)


def test_axis_choices_are_checked():
    devices = jax.devices()[:1]
    with pytest.raises(ValueError, match="data_axis='batch' is not an axis of the mesh"):
        parallel.from_config(section(mesh_shape=(1,), data_axis="batch"), devices)
    with pytest.raises(ValueError, match="param_axis must differ from data_axis"):
        parallel.from_config(section(mesh_shape=(1,), param_axis="data"), devices)
    with pytest.raises(ValueError, match="min_param_size must be an int >= 0"):
        parallel.from_config(section(mesh_shape=(1,), min_param_size=-1), devices)
    par = parallel.from_config(section(mesh_shape=(1,)), devices)
    assert isinstance(par, DataParallel) and par.param_axis is None  # no 'model' axis: replicate


def test_parameters_split_along_the_last_dimension_that_divides():
    devices = [FakeDevice(i) for i in range(8)]
    par = DataParallel(parallel.make_mesh((4, 2), ("data", "model"), devices), "data", "model", 8)
    P = jax.sharding.PartitionSpec
    assert par.param_spec((16, 64)) == P(None, "model")
    assert par.param_spec((16, 13)) == P("model", None)
    assert par.param_spec((13, 5)) == P()  # nothing divides
    assert par.param_spec((4,)) == P()  # below min_param_size
    assert par.param_spec(()) == P()


def test_batch_size_must_divide_over_the_data_axis():
    devices = [FakeDevice(i) for i in range(8)]
    par = DataParallel(parallel.make_mesh((8,), ("data",), devices), "data", None, 0)
    par.check_batch_size(32)
    with pytest.raises(
        ValueError, match=r"batch_size=30 does not divide .* multiple of 8, e.g. 32"
    ):
        par.check_batch_size(30)
    assert par.eval_batch_size(30) == 32 and par.eval_batch_size(32) == 32


def test_bad_parallel_config_fails_before_touching_the_workdir(tmp_path):
    config = get_config("smoke")
    config.parallel.mesh_shape = (2,)  # this process has one device
    with pytest.raises(ValueError, match="asks for 2 devices, but there are 1"):
        train_and_evaluate(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


# --- process-local batches ---------------------------------------------------------------------


def stitch(split, plans, processes):
    """Each process's rows of each planned batch, concatenated over the processes."""
    out = []
    for plan in plans:
        b = len(plan["mask"])
        per = b // processes
        parts = [gather_rows(split, plan, slice(p * per, (p + 1) * per)) for p in range(processes)]
        out.append({k: np.concatenate([part[k] for part in parts]) for k in parts[0]})
    return out


def assert_batches_equal(got, expected):
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert sorted(a) == sorted(b)
        for k in a:
            assert a[k].shape == b[k].shape and a[k].dtype == b[k].dtype, k
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("processes", [2, 4])
def test_process_rows_of_planned_batches_make_up_the_global_batches(processes):
    split = get_task("reverse", length=5, num_train=70, num_test=10)["train"]  # 63 rows: padding
    kw = dict(seed=3, epoch=1, start=1)
    plans = [b for _, b in train_batches(plan_split(split), 16, **kw)]
    assert_batches_equal(
        stitch(split, plans, processes), [b for _, b in train_batches(split, 16, **kw)]
    )
    plans = list(eval_batches(plan_split(split), 16))
    assert_batches_equal(stitch(split, plans, processes), list(eval_batches(split, 16)))


def test_process_rows_follow_length_buckets():
    config = seq2seq_config("smoke,minlen=1,len=12")
    data = get_task(**config.data.to_dict())
    split = data["train"]
    kw = dict(boundaries=(2, 4, 8), seed=0, epoch=2)
    plans = [b for _, b in bucketed_batches(plan_split(split), 8, **kw)]
    expected = [b for _, b in bucketed_batches(split, 8, **kw)]
    assert len({b["source"].shape[1] for b in expected}) > 1  # several widths, cut per bucket
    assert_batches_equal(stitch(split, plans, 2), expected)


# --- 8 simulated devices against 1 -------------------------------------------------------------

EIGHT_DEVICES = textwrap.dedent(
    """
    import json, os, sys
    import jax, numpy as np
    from configs.reverse import get_config
    from configs.seq2seq import get_config as seq2seq_config
    from seqlstm.train import Checkpointer, build, create_train_state, split_model
    from seqlstm.train import train_and_evaluate

    assert jax.device_count() == 8, jax.devices()
    out, root = {}, sys.argv[1]

    def run(name, config, mesh_shape, workdir=None, **parallel):
        config.train.progress_bar = False
        config.parallel.mesh_shape = mesh_shape
        config.parallel.update(parallel)
        workdir = os.path.join(root, workdir or name)
        try:
            results = train_and_evaluate(config, workdir)
        except ValueError as e:
            out[name] = {"error": str(e), "workdir_exists": os.path.exists(workdir)}
            return
        if results.get("interrupted"):
            return
        _, model, tx = build(config)
        _, params = split_model(model)
        ckpt = Checkpointer(workdir)
        state, _, _ = ckpt.restore(create_train_state(params, tx, 0), params)
        ckpt.close()
        leaves = [np.asarray(x).tolist() for x in jax.tree.leaves(state.params)]
        with open(os.path.join(workdir, "metrics.jsonl")) as f:
            losses = [json.loads(line)["train_loss"] for line in f]
        out[name] = {"test": results["test"], "losses": losses, "params": leaves}

    stacked = lambda: get_config("smoke,variant=stacked_seq")
    run("stacked_1", stacked(), ())
    # 4 x 2 devices, parameters split over the second axis; stopped there and resumed on one.
    stopped = stacked()
    stopped.train.stop_after_steps = 5
    run("stacked_4x2_then_1", stopped, (4, 2), min_param_size=0)
    run("stacked_4x2_then_1", stacked(), ())
    run("seq2seq_1", seq2seq_config("smoke"), ())
    run("seq2seq_8", seq2seq_config("smoke"), (-1,))
    bad = stacked()
    bad.train.batch_size = 30
    run("bad_batch", bad, (8,))
    run("bad_mesh", stacked(), (3,))

    # The native CPU kernel with the batch split over the 8 devices by shard_map: each device
    # runs it on its own rows (no all-gather), and the gradients equal the scan's on one device.
    from seqlstm.kernels.native import native_available
    from seqlstm.scan import lstm_scan
    if native_available():
        from jax.sharding import PartitionSpec as P
        mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
        keys = jax.random.split(jax.random.key(0), 3)
        p = {"kernel": jax.random.normal(keys[0], (3, 32)),
             "recurrent_kernel": jax.random.normal(keys[1], (8, 32)), "bias": jax.numpy.zeros(32)}
        x = jax.random.normal(keys[2], (16, 5, 3))
        lengths = jax.numpy.arange(16) % 6
        def loss(backend, p, x, lengths):
            y, s = lstm_scan(p, x, seq_lengths=lengths, backend=backend)
            return jax.numpy.sum(jax.numpy.sin(y)) + jax.numpy.sum(s.c)
        sharded = jax.jit(jax.shard_map(
            lambda p, x, n: jax.grad(loss, argnums=(1, 2))("native", p, x, n),
            mesh=mesh, in_specs=(P(), P("data"), P("data")), out_specs=(P(), P("data"))))
        text = sharded.lower(p, x, lengths).as_text()
        got = sharded(p, x, lengths)
        want = jax.grad(loss, argnums=(1, 2))("scan", p, x, lengths)
        out["shard_map_native"] = {
            "max_error": max(float(abs(a - b).max())
                             for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want))),
            "kernel_calls": text.count("seqlstm_lstm_"), "all_gather": "all-gather" in text}

    # The input-feeding decoder's fused backward (seqlstm.feeding) with the batch split over
    # the 8 devices, by shard_map and by sharded inputs, against one device.
    from flax import nnx
    from jax.sharding import NamedSharding, PartitionSpec as P
    from seqlstm.decoder import Decoder, DecoderCarry
    from seqlstm.cell import LSTMState
    mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    graph, params = nnx.split(
        Decoder(11, 8, 6, num_layers=2, embed_dim=4, attention="additive", rngs=nnx.Rngs(0)))
    keys = jax.random.split(jax.random.key(1), 5)
    tokens = jax.random.randint(keys[0], (16, 5), 0, 11)
    values = jax.random.normal(keys[1], (16, 4, 6))
    lengths = jax.numpy.arange(16) % 5
    h = jax.random.normal(keys[2], (2, 16, 8))
    wl = jax.random.normal(keys[3], (16, 5, 11))
    def feeding_loss(params, tokens, values, lengths, h, wl):
        d = nnx.merge(graph, params)
        carry = DecoderCarry(tuple(LSTMState(x, x) for x in h), h[0], None)
        logits, _ = d(tokens, carry, d.memory(values, lengths))
        return jax.numpy.sum(logits * wl)
    grad = jax.grad(feeding_loss, argnums=(0, 2, 4))
    want = jax.jit(grad)(params, tokens, values, lengths, h, wl)
    row = P("data")
    specs = (P(), row, row, row, P(None, "data"), row)
    # The parameters' gradients come back summed over the devices (replicated parameters).
    by_shard_map = jax.jit(jax.shard_map(grad, mesh=mesh, in_specs=specs,
                                         out_specs=(P(), row, P(None, "data"))))
    args = (params, tokens, values, lengths, h, wl)
    placed = [jax.device_put(a, NamedSharding(mesh, s)) for a, s in zip(args[1:], specs[1:])]
    errors = {}
    for name, got in (("shard_map", by_shard_map(*args)),
                      ("sharded", jax.jit(grad)(params, *placed))):
        errors[name] = max(float(abs(np.asarray(a) - np.asarray(b)).max())
                           for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)))
    out["feeding_sharded"] = errors
    print("RESULTS" + json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def eight_devices(tmp_path_factory):
    root = tmp_path_factory.mktemp("eight")
    devices = xla_flags("--xla_force_host_platform_device_count=8")
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=devices)
    proc = subprocess.run(
        [sys.executable, "-c", EIGHT_DEVICES, str(root)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.split("RESULTS", 1)[1])


def assert_same_run(a, b):
    np.testing.assert_allclose(a["losses"], b["losses"], rtol=1e-5)
    for x, y in zip(a["params"], b["params"], strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    for key in ("loss", "token_accuracy", "sequence_accuracy"):
        np.testing.assert_allclose(a["test"][key], b["test"][key], rtol=1e-5)


def test_native_kernel_under_shard_map_runs_per_device_and_matches_the_scan(eight_devices):
    from seqlstm.kernels.native import native_available, native_reason

    if not native_available():
        pytest.skip(native_reason())
    got = eight_devices["shard_map_native"]
    assert got["kernel_calls"] == 2 and not got["all_gather"]  # forward and backward, per device
    assert got["max_error"] < 1e-5


def test_feeding_decoder_with_the_batch_over_8_devices_matches_1_device(eight_devices):
    errors = eight_devices["feeding_sharded"]
    assert set(errors) == {"shard_map", "sharded"}
    assert max(errors.values()) < 1e-5, errors


def test_8_devices_match_1_device_and_bad_meshes_fail_before_touching_the_workdir(eight_devices):
    # One test for the one (expensive) subprocess: with xdist each test module's fixture would
    # run once per worker that gets one of its tests.
    assert len(eight_devices["stacked_1"]["losses"]) == 3
    # Data over 4 devices and parameters split over 2, stopped and resumed on one device.
    assert_same_run(eight_devices["stacked_4x2_then_1"], eight_devices["stacked_1"])
    a, b = eight_devices["seq2seq_8"], eight_devices["seq2seq_1"]
    assert_same_run(a, b)
    assert a["test"]["decoded"] == b["test"]["decoded"]
    bad = eight_devices["bad_batch"]
    assert "train.batch_size=30 does not divide over the data axis 'data' of 8" in bad["error"]
    assert "asks for 3 devices, but there are 8" in eight_devices["bad_mesh"]["error"]
    assert not bad["workdir_exists"] and not eight_devices["bad_mesh"]["workdir_exists"]
