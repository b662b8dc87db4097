"""Data parallelism over a `jax.sharding.Mesh`, from `config.parallel`.

`config.parallel.mesh_shape = ()` (the default) is one device and no mesh: the loop runs exactly
as it always has. A shape such as `(8,)`, `(-1,)` (every device) or `(4, 2)` builds a mesh whose
axes are named by `axis_names`. Every batch is split over `data_axis` (its leading, example
axis); parameters and optimizer state are replicated, or, when the mesh also has `param_axis`,
each leaf of at least `min_param_size` elements is split over that axis along its last dimension
that divides (for an LSTM kernel `[in, 4 * hidden]`, the gates). The train step stays one jitted
function: the shardings of its inputs and outputs are fixed and XLA inserts the collectives (the
gradient all-reduce over the data axis, gathers of split parameters).

Several processes (`seqlstm.train.distributed`): every process computes the same batch order (a
function of the seed and epoch) on row ids only, then gathers and transfers just the rows of each
batch that its own devices hold.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from seqlstm.data.batching import eval_batches, take
from seqlstm.task import LENGTH_FIELDS, split_size
from seqlstm.train.state import TrainState

Batch = dict[str, np.ndarray]


class SingleDevice:
    """No mesh: `jax.jit` places everything on the default device, as without `config.parallel`.

    `DataParallel` has the same methods; the training loop calls them without asking which it has.
    """

    mesh: Mesh | None = None
    data_size = 1

    def describe(self) -> str:
        return "one device"

    def check_batch_size(self, batch_size: int, name: str = "train.batch_size") -> None:
        """Raises ValueError if `batch_size` does not split over the data axis."""

    def eval_batch_size(self, batch_size: int) -> int:
        """`batch_size` rounded up to split over the data axis (padding rows count for nothing)."""
        return batch_size

    def put(self, state: TrainState) -> TrainState:
        """`state` placed on the devices with `state_shardings`."""
        return state

    def jit_train_step(self, train_step: Callable, state: TrainState) -> Callable:
        """`train_step(state, batch) -> (state, metrics)`, jitted with fixed shardings."""
        return jax.jit(train_step)

    def jit_eval_step(self, eval_step: Callable) -> Callable:
        """`eval_step(params, batch) -> sums`, jitted; the sums come back replicated."""
        return jax.jit(eval_step)

    def train_batches(
        self,
        batches: Callable[..., Iterator[tuple[int, Batch]]],
        split: Batch,
        batch_size: int,
        **kwargs,
    ) -> Iterator[tuple[int, Any]]:
        """`batches(split, batch_size, **kwargs)` (e.g. `train_batches`), placed for the step."""
        return batches(split, batch_size, **kwargs)

    def eval_batches(self, split: Batch, batch_size: int) -> Iterator[Any]:
        """`seqlstm.data.eval_batches(split, batch_size)`, placed for the step."""
        return eval_batches(split, batch_size)

    def fetch(self, tree: Any) -> Any:
        """`tree` whole and readable on every process: as it is on one device; as numpy arrays
        gathered from the mesh."""
        return tree


class DataParallel(SingleDevice):
    """Batches split over `data_axis` of `mesh`; parameters replicated or split over
    `param_axis` (see the module docstring). Build it with `from_config`."""

    def __init__(
        self, mesh: Mesh, data_axis: str, param_axis: str | None, min_param_size: int
    ) -> None:
        self.mesh = mesh
        self.data_axis = data_axis
        self.param_axis = param_axis
        self.min_param_size = min_param_size
        self.data_size = int(mesh.shape[data_axis])
        self.replicated = NamedSharding(mesh, P())
        self.batch_sharding = NamedSharding(mesh, P(data_axis))

    def describe(self) -> str:
        shape = ", ".join(f"{name}={size}" for name, size in self.mesh.shape.items())
        how = "replicated"
        if self.param_axis:
            how = f"of >= {self.min_param_size} elements split over {self.param_axis!r}"
        procs = jax.process_count()
        where = f"{procs} processes" if procs > 1 else "1 process"
        return f"mesh ({shape}) of {self.mesh.size} devices, {where}; parameters {how}"

    def check_batch_size(self, batch_size: int, name: str = "train.batch_size") -> None:
        if batch_size % self.data_size:
            fit = self.data_size * max(1, round(batch_size / self.data_size))
            raise ValueError(
                f"config.{name}={batch_size} does not divide over the data axis "
                f"{self.data_axis!r} of {self.data_size} devices (mesh "
                f"{dict(self.mesh.shape)}); use a multiple of {self.data_size}, e.g. {fit}"
            )

    def eval_batch_size(self, batch_size: int) -> int:
        return -(-batch_size // self.data_size) * self.data_size

    # --- parameters and optimizer state ---

    def param_spec(self, shape: Sequence[int]) -> P:
        """Replicated, or split over `param_axis` along the last dimension it divides."""
        if self.param_axis is None or math.prod(shape) < max(self.min_param_size, 1):
            return P()
        k = self.mesh.shape[self.param_axis]
        for dim in reversed(range(len(shape))):
            if shape[dim] % k == 0:
                spec: list[str | None] = [None] * len(shape)
                spec[dim] = self.param_axis
                return P(*spec)
        return P()

    def state_shardings(self, state: TrainState) -> TrainState:
        """A `TrainState` of `NamedSharding`s: step and rng replicated, params and optimizer
        state by `param_spec` (so Adam's moments are split like their parameters), the carried
        state replicated (the loop does not know which of its axes is the batch's; it is small,
        `[layers, batch, units]` for a stateful LSTM)."""
        by_shape = lambda x: NamedSharding(self.mesh, self.param_spec(np.shape(x)))
        return TrainState(
            step=self.replicated,
            params=jax.tree.map(by_shape, state.params),
            opt_state=jax.tree.map(by_shape, state.opt_state),
            rng=self.replicated,
            carry=jax.tree.map(lambda _: self.replicated, state.carry),
        )

    def put(self, state: TrainState) -> TrainState:
        # Every process holds the same initial values (drawn from the config's seed); each
        # places the pieces its own devices hold.
        host = jax.device_get(state)

        def place(x, sharding):
            x = np.asarray(x)
            return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

        return jax.tree.map(place, host, self.state_shardings(state))

    def jit_train_step(self, train_step: Callable, state: TrainState) -> Callable:
        return jax.jit(train_step, out_shardings=(self.state_shardings(state), self.replicated))

    def jit_eval_step(self, eval_step: Callable) -> Callable:
        return jax.jit(eval_step, out_shardings=self.replicated)

    # --- batches ---

    def rows(self, batch_size: int) -> slice:
        """The rows of a global batch that this process's devices hold."""
        index = self.batch_sharding.addressable_devices_indices_map((batch_size,))
        spans = [s[0].indices(batch_size)[:2] for s in index.values()]
        return slice(min(a for a, _ in spans), max(b for _, b in spans))

    def to_global(self, local: Batch, batch_size: int) -> dict[str, jax.Array]:
        """One global array per key from this process's rows `local` of a batch."""
        return {
            k: jax.make_array_from_process_local_data(
                self.batch_sharding, v, (batch_size, *v.shape[1:])
            )
            for k, v in local.items()
        }

    def train_batches(self, batches, split, batch_size, **kwargs):
        if jax.process_count() == 1:
            for i, batch in batches(split, batch_size, **kwargs):
                yield i, self.to_global(batch, batch_size)
            return
        rows = self.rows(batch_size)
        for i, plan in batches(plan_split(split), batch_size, **kwargs):
            yield i, self.to_global(gather_rows(split, plan, rows), batch_size)

    def eval_batches(self, split, batch_size):
        if jax.process_count() == 1:
            for batch in eval_batches(split, batch_size):
                yield self.to_global(batch, batch_size)
            return
        rows = self.rows(batch_size)
        for plan in eval_batches(plan_split(split), batch_size):
            yield self.to_global(gather_rows(split, plan, rows), batch_size)

    def fetch(self, tree):
        if jax.process_count() == 1:
            return jax.device_get(tree)
        return multihost_utils.process_allgather(tree, tiled=True)


# --- batch plans on row ids --------------------------------------------------------------------

_ROW = "_row"  # 1-based row ids, so that a padding row (zeros) reads 0


def plan_split(split: Batch) -> Batch:
    """A stand-in for `split` that batch iterators plan on without gathering its data.

    It holds row ids, the arrays planners read (`seqlstm.task.LENGTH_FIELDS`), and for every other
    array a zero-stride placeholder with its leading `[examples, time]` shape, so that a planned
    batch shows which rows it took and where the iterator cut each time axis.
    """
    plan: Batch = {_ROW: np.arange(1, split_size(split) + 1)}
    for k, v in split.items():
        if k in LENGTH_FIELDS:
            plan[k] = v
        else:
            plan[k] = np.broadcast_to(np.zeros((), np.int8), v.shape[:2])
    return plan


def gather_rows(split: Batch, plan: Batch, rows: slice) -> Batch:
    """Rows `rows` of the batch that `plan` (a batch of `plan_split(split)`) stands for.

    Gathers only those rows from `split`; padding rows are zeros with an all-False mask
    (as `seqlstm.data.take` pads), and time axes are cut as the planned batch's.
    """
    ids = plan[_ROW][rows]
    local = take(split, ids[ids > 0] - 1, len(ids))
    return {k: v[:, : plan[k].shape[1]] if v.ndim > 1 else v for k, v in local.items()}


# --- building from the config ------------------------------------------------------------------


def make_mesh(
    mesh_shape: Sequence[int], axis_names: Sequence[str], devices: Sequence | None = None
) -> Mesh:
    """A mesh of `devices` (default: all, in `jax.devices()` order) of shape `mesh_shape`.

    One entry may be -1: the devices left over by the others.

    Raises:
      ValueError: for a malformed shape or names, or a shape that does not use exactly the
        devices there are.
    """
    devices = list(jax.devices() if devices is None else devices)
    shape = tuple(mesh_shape)
    if not shape or any(
        not isinstance(s, (int, np.integer)) or isinstance(s, bool) or s == 0 or s < -1
        for s in shape
    ):
        raise ValueError(
            f"config.parallel.mesh_shape must be a tuple of positive ints (one may be -1), "
            f"got {mesh_shape!r}"
        )
    if shape.count(-1) > 1:
        raise ValueError(f"config.parallel.mesh_shape may hold one -1, got {mesh_shape!r}")
    if len(axis_names) < len(shape) or len(set(axis_names)) != len(axis_names):
        raise ValueError(
            f"config.parallel.axis_names={tuple(axis_names)!r} must name each of the "
            f"{len(shape)} axes of mesh_shape={shape!r} once"
        )
    known = math.prod(s for s in shape if s != -1)
    have = f"{len(devices)} {devices[0].platform} devices in {jax.process_count()} process(es)"
    if -1 in shape:
        if len(devices) % known:
            raise ValueError(
                f"config.parallel.mesh_shape={shape!r}: the fixed axes need a multiple of "
                f"{known} devices, but there are {have}"
            )
        shape = tuple(len(devices) // known if s == -1 else s for s in shape)
    if math.prod(shape) != len(devices):
        raise ValueError(
            f"config.parallel.mesh_shape={tuple(mesh_shape)!r} asks for {math.prod(shape)} "
            f"devices, but there are {have}; use a shape whose product is {len(devices)}, "
            f"e.g. ({len(devices)},) or (-1,)"
        )
    names = tuple(axis_names[: len(shape)])
    grid = np.asarray(devices, dtype=object).reshape(shape)
    return Mesh(grid, names, axis_types=(AxisType.Auto,) * len(shape))


def from_config(
    parallel: ml_collections.ConfigDict | None, devices: Sequence | None = None
) -> SingleDevice:
    """`SingleDevice()` for no or an empty `mesh_shape`, else a validated `DataParallel`.

    Args:
      parallel: `config.parallel` (see `configs/common.py`: `mesh_shape`, `axis_names`,
        `data_axis`, `param_axis`, `min_param_size`), or None for a config without it.
      devices: the devices of the mesh (default: all).

    Raises:
      ValueError: naming the key, the value given and what was expected.
    """
    if parallel is None or not tuple(parallel.get("mesh_shape", ())):
        return SingleDevice()
    keys = ("axis_names", "data_axis", "param_axis", "min_param_size")
    missing = [k for k in keys if k not in parallel]
    if missing:
        raise ValueError(
            f"config.parallel has mesh_shape but no {missing}; build the section with "
            "configs/common.py's parallel_config()"
        )
    get = parallel.get
    names = tuple(get("axis_names"))
    mesh = make_mesh(tuple(parallel.mesh_shape), names, devices)
    data_axis, param_axis = get("data_axis"), get("param_axis")
    if data_axis not in mesh.axis_names:
        raise ValueError(
            f"config.parallel.data_axis={data_axis!r} is not an axis of the mesh "
            f"{mesh.axis_names} (mesh_shape={tuple(parallel.mesh_shape)!r})"
        )
    if param_axis == data_axis:
        raise ValueError(f"config.parallel.param_axis must differ from data_axis={data_axis!r}")
    min_size = get("min_param_size")
    if not isinstance(min_size, int) or isinstance(min_size, bool) or min_size < 0:
        raise ValueError(f"config.parallel.min_param_size must be an int >= 0, got {min_size!r}")
    split_params = param_axis in mesh.axis_names and mesh.shape[param_axis] > 1
    return DataParallel(mesh, data_axis, param_axis if split_params else None, min_size)
