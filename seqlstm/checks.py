"""Argument checks shared by the layers, models, data and training code.

Every check raises `ValueError` naming the argument, the value given and what was expected, in
Python before anything is traced or compiled. Sizes may be Python or numpy integers (never bool).
"""

from __future__ import annotations

import jax
import numpy as np


def is_int(value) -> bool:
    """True for a Python or numpy integer, False for bool and everything else."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_int(name: str, value, minimum: int = 1) -> int:
    """Returns `value` as an `int` if it is an integer `>= minimum`, else raises.

    Args:
      name: how the caller calls the argument, e.g. `"hidden_size"` or `"config.train.batch_size"`.
      value: the value given.
      minimum: the smallest value allowed (1: a positive int).

    Raises:
      ValueError: naming `name`, the value given and what was expected.
    """
    if not is_int(value) or value < minimum:
        kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    return int(value)


def check_positive(name: str, value) -> int:
    """`check_int(name, value, 1)`: a positive Python or numpy int, returned as an `int`."""
    return check_int(name, value, 1)


def check_rate(name: str, value) -> float:
    """Returns `value` as a float if it is a real number in `[0, 1)` (a rate), else raises."""
    if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool):
        raise ValueError(f"{name} must be a float in [0, 1), got {value!r}")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)


def check_positive_number(name: str, value) -> float:
    """Returns `value` as a float if it is a finite real number `> 0`, else raises."""
    real = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not real or not 0.0 < float(value) < float("inf"):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def check_choice(name: str, value, choices) -> None:
    """Raises unless `value` is one of `choices`."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def check_float_dtype(name: str, dtype) -> None:
    """Raises unless `dtype` is None or a real floating dtype (an integer computation dtype
    would run the LSTM's gates in integers and return zeros)."""
    if dtype is None:
        return
    dtype = jax.numpy.dtype(dtype)
    if not jax.numpy.issubdtype(dtype, jax.numpy.floating):
        raise ValueError(f"{name} must be a floating dtype (float32, bfloat16, ...), got {dtype}")


def check_dtype_available(name: str, dtype) -> None:
    """Raises if `dtype` is float64 while JAX's x64 mode is off (None and values that name no
    dtype pass): JAX then computes in float32 and only warns, so a run asking for float64 would
    train in float32 while its config says float64."""
    if dtype is None or isinstance(dtype, bool) or not isinstance(dtype, (str, type, np.dtype)):
        return
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        return
    if dtype.kind == "f" and dtype.itemsize == 8 and not jax.config.jax_enable_x64:
        raise ValueError(
            f"{name}={dtype.name!r} needs JAX's 64-bit mode, which is off: JAX would silently "
            "compute in float32 instead. Use float32 (or bfloat16), or run with "
            "JAX_ENABLE_X64=1 to train in float64"
        )


def is_concrete(x) -> bool:
    """True unless `x` is a tracer (inside `jit`, `grad`, `vmap`, ...): its values can be read."""
    return not isinstance(x, jax.core.Tracer)
