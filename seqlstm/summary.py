"""`summary(model, *example_inputs)`: a Keras-like table of layers, output shapes and parameters."""

from __future__ import annotations

import math

import jax
from flax import nnx


def count_params(module: nnx.Module) -> int:
    """Number of scalar parameters (`nnx.Param`) in `module`, recursively."""
    leaves = jax.tree.leaves(nnx.state(module, nnx.Param))
    return sum(math.prod(leaf.shape) for leaf in leaves)


def _format_shapes(tree) -> str:
    if hasattr(tree, "shape") and hasattr(tree, "dtype"):
        return str(tuple(tree.shape))
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        inner = ", ".join(f"{k}={_format_shapes(v)}" for k, v in zip(tree._fields, tree))
        return f"{type(tree).__name__}({inner})"
    if isinstance(tree, (tuple, list)):
        return "(" + ", ".join(_format_shapes(t) for t in tree) + ")"
    return repr(tree)


def summary(model: nnx.Module, *example_inputs, **example_kwargs) -> str:
    """A Keras-like summary: one row per module called, in call order, nested by depth.

    Shapes are found with `jax.eval_shape`, so nothing is computed.

    Args:
      model: any `nnx.Module`.
      *example_inputs, **example_kwargs: arguments of one call of `model` (arrays or
        `jax.ShapeDtypeStruct`s).

    Returns:
      The table as a string: layer (path), type, output shape, parameter count, then totals.
      Parameter counts match Keras (one bias per LSTM gate): `LSTM(2, 64)` has 17,152, with or
      without `dropout` and `recurrent_dropout`. `proj_size=P` adds PyTorch's `weight_hr` (H * P)
      and makes the recurrent kernel P * 4H: PyTorch's count less its second bias (4H).
      `layer_norm` adds 10H gains and biases, `peepholes` 3H.
    """
    graphdef, state = nnx.split(model)
    rows: list[tuple[int, str, str, str, int]] = []
    patched: dict[type, object] = {}
    paths: dict[int, tuple] = {}
    depth = [0]

    def wrap(cls, original):
        def call(self, *args, **kwargs):
            path = paths.get(id(self))
            index = len(rows)
            if path is None:
                return original(self, *args, **kwargs)
            rows.append(None)
            level = depth[0]
            depth[0] += 1
            try:
                out = original(self, *args, **kwargs)
            finally:
                depth[0] -= 1
            name = "/".join(str(p) for p in path) or "(model)"
            rows[index] = (level, name, cls.__name__, _format_shapes(out), count_params(self))
            return out

        return call

    def run(state, args, kwargs):
        m = nnx.merge(graphdef, state)
        for path, sub in nnx.iter_modules(m):
            paths[id(sub)] = path
            cls = type(sub)
            if cls not in patched and "__call__" in vars(cls):
                patched[cls] = vars(cls)["__call__"]
                cls.__call__ = wrap(cls, patched[cls])
        return m(*args, **kwargs)

    try:
        jax.eval_shape(run, state, example_inputs, example_kwargs)
    finally:
        for cls, original in patched.items():
            cls.__call__ = original

    rows = [r for r in rows if r is not None]
    header = ("Layer (type)", "Output shape", "Param #")
    body = [
        ("  " * depth + f"{name} ({typ})", shape, f"{n:,}") for depth, name, typ, shape, n in rows
    ]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(3)]
    line = "-" * (sum(widths) + 6)
    fmt = lambda r: f"{r[0]:<{widths[0]}}   {r[1]:<{widths[1]}}   {r[2]:>{widths[2]}}"  # noqa: E731
    total = count_params(model)
    out = [line, fmt(header), "=" * len(line), *map(fmt, body), "=" * len(line)]
    out += [f"Total params: {total:,}", f"Trainable params: {total:,}", line]
    return "\n".join(out)
