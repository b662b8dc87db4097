"""Weight exchange with Keras 3's `keras.layers.LSTM` and `Bidirectional(LSTM)`.

seqlstm keeps Keras's parameter layout, so weights copy as they are: `kernel [D, 4H]`,
`recurrent_kernel [H, 4H]`, `bias [4H]` (zeros for `use_bias=False`), gate order i, f, c, o.

What differs is only at masked (padded) steps, and only for a plain LSTM returning sequences:
Keras repeats the last valid output there, seqlstm writes zeros. `Bidirectional` sets Keras's
`zero_output_for_mask=True` when returning sequences, so there both give zeros. Last outputs and
final states agree, also for fully masked rows, with one exception: given a non-zero
`initial_state`, Keras's last output of a fully masked row is that initial `h`, seqlstm's is zero.

`dropout` and `recurrent_dropout` carry over both ways with Keras 3's semantics (masks drawn once
per sequence; with `recurrent_dropout`, one input and one recurrent mask per gate): the layers
agree in inference exactly and in training in distribution (the random draws differ). seqlstm's
other variants (`proj_size`, `layer_norm`, `peepholes`, zoneout) have no Keras counterpart.

keras is imported inside the functions only: `import seqlstm.interop` does not import it. When
`to_keras` is the first to import it and `KERAS_BACKEND` is unset, the JAX backend is chosen; a
backend Keras cannot load (TensorFlow, its default, when not installed) is an ImportError saying
to set `KERAS_BACKEND=jax`.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from seqlstm.layers import LSTM, Bidirectional

if TYPE_CHECKING:
    import keras


def _import_keras():
    if "keras" not in sys.modules:
        os.environ.setdefault("KERAS_BACKEND", "jax")
    try:
        import keras
    except ImportError as e:
        # Keras 3 imports its backend with itself; its default, TensorFlow, is rarely installed.
        backend = os.environ.get("KERAS_BACKEND", "tensorflow")
        raise ImportError(
            f"keras could not be imported with KERAS_BACKEND={backend!r} ({e}). The interop "
            "works with any backend Keras can load; set KERAS_BACKEND=jax (installed with "
            "seqlstm) before keras is first imported, e.g. os.environ['KERAS_BACKEND'] = 'jax'."
        ) from e
    return keras


def _is_one_of(fn, names: tuple[str, ...], candidates: tuple) -> bool:
    if any(fn is c for c in candidates):
        return True
    import keras

    try:
        return keras.activations.serialize(fn) in names
    except Exception:  # an arbitrary callable Keras cannot serialise is not one of ours
        return False


def _check_lstm(layer: keras.layers.LSTM, argname: str, go_backwards: bool) -> None:
    """Raises ValueError naming the first option of `layer` seqlstm cannot represent."""
    import keras

    act = layer.cell.activation
    if not _is_one_of(act, ("tanh",), (keras.activations.tanh, keras.ops.tanh, jnp.tanh)):
        raise ValueError(
            f"{argname} has activation={getattr(act, '__name__', act)!r}; seqlstm supports "
            "activation='tanh' only"
        )
    rec = layer.cell.recurrent_activation
    sigmoids = (keras.activations.sigmoid, keras.ops.sigmoid, jax.nn.sigmoid)
    if not _is_one_of(rec, ("sigmoid",), sigmoids):
        raise ValueError(
            f"{argname} has recurrent_activation={getattr(rec, '__name__', rec)!r}; seqlstm "
            "supports recurrent_activation='sigmoid' only"
        )
    if layer.stateful:
        raise ValueError(
            f"{argname} has stateful=True; seqlstm layers are stateless (pass initial_state and "
            "carry the returned state yourself)"
        )
    if layer.go_backwards != go_backwards:
        hint = (
            "Keras returns a go_backwards layer's sequence in processing (reversed) order; wrap "
            "it in keras.layers.Bidirectional, or use seqlstm.LSTM(reverse=True) directly"
            if layer.go_backwards
            else "the backward layer of a Bidirectional must run backwards"
        )
        raise ValueError(f"{argname} has go_backwards={layer.go_backwards}: {hint}")
    if not layer.built:
        raise ValueError(
            f"{argname} is not built, so it has no weights yet: call it on an input or "
            "layer.build((None, None, features)) first"
        )


def _options(layer: keras.layers.LSTM) -> dict:
    """The seqlstm.LSTM keyword arguments for the dtypes and dropout rates of a Keras LSTM."""
    param_dtype = jnp.dtype(layer.variable_dtype)
    compute = jnp.dtype(layer.compute_dtype)
    return {
        "param_dtype": param_dtype,
        "dtype": None if compute == param_dtype else compute,
        "dropout": float(layer.cell.dropout),
        "recurrent_dropout": float(layer.cell.recurrent_dropout),
    }


def _copy_from_keras(target: LSTM, layer: keras.layers.LSTM) -> None:
    cell = layer.cell
    dtype = target.kernel[...].dtype
    target.kernel[...] = jnp.asarray(np.asarray(cell.kernel.value), dtype)
    target.recurrent_kernel[...] = jnp.asarray(np.asarray(cell.recurrent_kernel.value), dtype)
    if cell.use_bias:
        target.bias[...] = jnp.asarray(np.asarray(cell.bias.value), dtype)
    else:
        target.bias[...] = jnp.zeros((4 * cell.units,), dtype)


def from_keras(layer: Any, *, rngs: nnx.Rngs | None = None) -> LSTM | Bidirectional:
    """A seqlstm layer computing what a built Keras LSTM (or `Bidirectional(LSTM)`) computes.

    Args:
      layer: a built `keras.layers.LSTM` (tanh activation, sigmoid recurrent activation, not
        stateful, not `go_backwards`; `use_bias=False` becomes a zero bias; `dropout` and
        `recurrent_dropout` carry over), or a built `keras.layers.Bidirectional` of two such
        LSTMs with equal `units` (the forward layer's rates serve both directions).
      rngs: `nnx.Rngs` for the initial parameters (all overwritten); `nnx.Rngs(0)` when None.

    Returns:
      `seqlstm.LSTM` or `seqlstm.Bidirectional` with Keras's weights, `return_sequences`,
      `return_state` and (bidirectional) `merge_mode`. Keras returns states flat, `[out, h, c]`
      or `[out, h_f, c_f, h_b, c_b]`; seqlstm returns `(out, LSTMState)` or
      `(out, (forward LSTMState, backward LSTMState))`.

    Raises:
      TypeError: if `layer` is neither a Keras LSTM nor a Bidirectional.
      ValueError: naming the Keras option seqlstm cannot represent, or if `layer` is not built.
    """
    keras = _import_keras()
    rngs = rngs if rngs is not None else nnx.Rngs(0)
    if isinstance(layer, keras.layers.Bidirectional):
        fwd, bwd = layer.forward_layer, layer.backward_layer
        for name, sub in (("forward_layer", fwd), ("backward_layer", bwd)):
            if not isinstance(sub, keras.layers.LSTM):
                raise TypeError(
                    f"Bidirectional.{name} must be a keras.layers.LSTM, got {type(sub).__name__}"
                )
        _check_lstm(fwd, "Bidirectional.forward_layer", go_backwards=False)
        _check_lstm(bwd, "Bidirectional.backward_layer", go_backwards=True)
        rates = [(sub.cell.dropout, sub.cell.recurrent_dropout) for sub in (fwd, bwd)]
        if rates[0] != rates[1]:
            raise ValueError(
                "seqlstm.Bidirectional has the same dropout and recurrent_dropout in both "
                f"directions; got forward {rates[0]}, backward {rates[1]}"
            )
        if fwd.units != bwd.units:
            raise ValueError(
                "seqlstm.Bidirectional has the same units in both directions; got forward "
                f"units={fwd.units}, backward units={bwd.units}"
            )
        model = Bidirectional(
            fwd.cell.kernel.shape[0],
            fwd.units,
            merge_mode=layer.merge_mode,
            return_sequences=layer.return_sequences,
            return_state=layer.return_state,
            rngs=rngs,
            **_options(fwd),
        )
        _copy_from_keras(model.forward_layer, fwd)
        _copy_from_keras(model.backward_layer, bwd)
        return model
    if isinstance(layer, keras.layers.LSTM):
        _check_lstm(layer, "layer", go_backwards=False)
        model = LSTM(
            layer.cell.kernel.shape[0],
            layer.units,
            return_sequences=layer.return_sequences,
            return_state=layer.return_state,
            rngs=rngs,
            **_options(layer),
        )
        _copy_from_keras(model, layer)
        return model
    raise TypeError(
        f"from_keras expects a keras.layers.LSTM or keras.layers.Bidirectional, got "
        f"{type(layer).__name__}"
    )


def _keras_dtype(lstm: LSTM) -> str:
    param = jnp.dtype(lstm.kernel[...].dtype)
    if lstm.dtype is None or jnp.dtype(lstm.dtype) == param:
        return param.name
    compute = jnp.dtype(lstm.dtype)
    if param == jnp.float32 and compute in (jnp.float16, jnp.bfloat16):
        return f"mixed_{compute.name}"
    raise ValueError(
        f"Keras has no dtype policy for param_dtype={param.name} with dtype={compute.name} "
        "(only float32 parameters with float16 or bfloat16 compute)"
    )


def _build(layer: keras.layers.Layer, in_features: int) -> None:
    # Keras's initialisers broadcast across ranks (orthogonal: [4H, H] * [H]); that is Keras's
    # business, so do not let a user's jax_numpy_rank_promotion="raise" break the conversion.
    with jax.numpy_rank_promotion("allow"):
        layer.build((None, None, in_features))


def _check_for_keras(lstm: LSTM) -> None:
    """Raises ValueError naming the first variant of `lstm` Keras's LSTM does not have."""
    for name, on in (
        ("proj_size", lstm.proj_size),
        ("layer_norm", lstm.layer_norm),
        ("peepholes", lstm.peepholes),
        ("zoneout_cell", lstm.rates.zoneout_cell),
        ("zoneout_hidden", lstm.rates.zoneout_hidden),
    ):
        if on:
            raise ValueError(
                f"keras.layers.LSTM has no {name} (the layer has {name}={on!r}); only dropout "
                "and recurrent_dropout among seqlstm's LSTM variants convert to Keras"
            )


def _rates(lstm: LSTM) -> dict:
    return {"dropout": lstm.dropout, "recurrent_dropout": lstm.recurrent_dropout}


def _copy_to_keras(layer: keras.layers.LSTM, source: LSTM) -> None:
    cell = layer.cell
    cell.kernel.assign(np.asarray(source.kernel[...]))
    cell.recurrent_kernel.assign(np.asarray(source.recurrent_kernel[...]))
    cell.bias.assign(np.asarray(source.bias[...]))


def to_keras(layer: LSTM | Bidirectional) -> Any:
    """A built Keras layer with the weights and flags of a seqlstm `LSTM` or `Bidirectional`.

    Args:
      layer: a `seqlstm.LSTM` with `reverse=False` (Keras's `go_backwards` returns sequences in
        reversed order, so it is not the same layer), or a `seqlstm.Bidirectional`.

    Returns:
      `keras.layers.LSTM` or `keras.layers.Bidirectional(keras.layers.LSTM)`, built for
      `[batch, time, in_features]`, with `use_bias=True` and the same `return_sequences`,
      `return_state`, `merge_mode`, `dropout` and `recurrent_dropout`.

    Raises:
      TypeError: if `layer` is neither a seqlstm `LSTM` nor a `Bidirectional`.
      ValueError: if `layer.reverse` is True, its dtypes have no Keras dtype policy, or it has a
        variant Keras lacks (`proj_size`, `layer_norm`, `peepholes`, zoneout).
    """
    if isinstance(layer, Bidirectional):
        keras = _import_keras()
        fwd = layer.forward_layer
        _check_for_keras(fwd)
        out = keras.layers.Bidirectional(
            keras.layers.LSTM(
                layer.hidden_size,
                return_sequences=layer.return_sequences,
                return_state=layer.return_state,
                dtype=_keras_dtype(fwd),
                **_rates(fwd),
            ),
            merge_mode=layer.merge_mode,
        )
        _build(out, layer.in_features)
        _copy_to_keras(out.forward_layer, fwd)
        _copy_to_keras(out.backward_layer, layer.backward_layer)
        return out
    if isinstance(layer, LSTM):
        if layer.reverse:
            raise ValueError(
                "an LSTM with reverse=True has no Keras counterpart: Keras's go_backwards returns "
                "the sequence in reversed order. Convert a seqlstm.Bidirectional instead"
            )
        _check_for_keras(layer)
        keras = _import_keras()
        out = keras.layers.LSTM(
            layer.hidden_size,
            return_sequences=layer.return_sequences,
            return_state=layer.return_state,
            dtype=_keras_dtype(layer),
            **_rates(layer),
        )
        _build(out, layer.in_features)
        _copy_to_keras(out, layer)
        return out
    raise TypeError(f"to_keras expects a seqlstm LSTM or Bidirectional, got {type(layer).__name__}")
