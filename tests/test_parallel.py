"""Tests for seqlstm/train/parallel.py: meshes from the config, process-local batches, and
training on 8 simulated devices against 1 device (in a subprocess, so that the device count is
set before JAX starts)."""

import os

import jax
import numpy as np
import pytest

from configs.seq2seq import get_config as seq2seq_config
from seqlstm.data import bucketed_batches, eval_batches, get_task, train_batches
from seqlstm.train import parallel
from seqlstm.train.parallel import DataParallel, SingleDevice, gather_rows, plan_split

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class FakeDevice:
    platform = "cpu"

    def __init__(self, i):
        self.id = i


def section(**overrides):
    c = parallel.parallel_config()
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
        (
            (4, 4),
            ("data", "model"),
            r"asks for 16 devices, but there are 8 cpu devices",
        ),
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
