"""Weight exchange with PyTorch's `torch.nn.LSTM`.

The layouts line up without permutation: both use gate order i, f, g, o, and

  seqlstm `kernel`            = torch `weight_ih_l{k}.T`      [D, 4H]
  seqlstm `recurrent_kernel`  = torch `weight_hh_l{k}.T`      [H, 4H]
  seqlstm `bias`              = torch `bias_ih_l{k} + bias_hh_l{k}`

with the `_reverse` weights of a bidirectional torch layer in `Bidirectional.backward_layer`.
With `proj_size = P > 0` (LSTMP) `weight_hh` is `[4H, P]` and

  seqlstm `proj_kernel`       = torch `weight_hr_l{k}.T`      [H, P]

PyTorch's two biases only ever appear summed, so merging them loses nothing the forward pass sees;
`to_torch` puts the sum in `bias_ih` and zeros in `bias_hh`.

torch is imported inside the functions only: `import seqlstm.interop` does not import it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from seqlstm.cell import LSTMState
from seqlstm.layers import LSTM, Bidirectional, StackedLSTM

if TYPE_CHECKING:
    import torch


def _to_jax(t: torch.Tensor) -> jax.Array:
    import torch

    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: go through float32, exactly
        return jnp.asarray(t.float().numpy(), dtype=jnp.bfloat16)
    return jnp.asarray(t.numpy())


def _to_torch(a: jax.Array) -> torch.Tensor:
    import torch

    a = jnp.asarray(a)
    if a.dtype == jnp.bfloat16:
        return torch.from_numpy(np.asarray(a, dtype=np.float32)).to(torch.bfloat16)
    return torch.from_numpy(np.array(a))


def _set(layer: LSTM, kernel, recurrent, bias, proj_kernel=None) -> None:
    layer.kernel[...] = kernel
    layer.recurrent_kernel[...] = recurrent
    layer.bias[...] = bias
    if proj_kernel is not None:
        layer.proj_kernel[...] = proj_kernel


def from_torch(module: torch.nn.LSTM, *, rngs: nnx.Rngs | None = None) -> StackedLSTM:
    """A `StackedLSTM` computing what a `torch.nn.LSTM` computes, with its weights.

    seqlstm is always batch-first: whatever `module.batch_first` is, call the result with
    `x: [batch, time, input_size]` (transpose time-major torch inputs yourself). Variable lengths
    are seqlstm's `seq_lengths=` where torch uses `pack_padded_sequence`.

    Args:
      module: the PyTorch LSTM; any `num_layers`, uni- or bidirectional, with or without bias,
        with or without `proj_size` (then `LSTM(proj_size=)`: outputs and `h` are P wide).
        Its inter-layer `dropout` becomes the stack's `dropout`, and its train/eval mode becomes
        the stack's (torch's dropout is active in `train()` mode only, as is seqlstm's).
      rngs: `nnx.Rngs` for the stack's dropout (and the initial parameters, which are all
        overwritten); `nnx.Rngs(0)` when None.

    Returns:
      A `StackedLSTM(return_sequences=True, return_state=True)` (`merge_mode="concat"` when
      bidirectional) whose outputs equal torch's, and whose states, one per layer (an `LSTMState`
      or a `(forward, backward)` pair), hold torch's `h_n, c_n` (see `torch_states`).

    Raises:
      TypeError: if `module` is not a `torch.nn.LSTM`.
    """
    import torch

    if not isinstance(module, torch.nn.LSTM):
        raise TypeError(f"from_torch expects a torch.nn.LSTM, got {type(module).__name__}")
    n, hidden = module.num_layers, module.hidden_size
    dtype = _to_jax(module.weight_ih_l0).dtype
    model = StackedLSTM(
        module.input_size,
        (hidden,) * n,
        bidirectional=module.bidirectional,
        merge_mode="concat",
        dropout=float(module.dropout),
        return_sequences=True,
        return_state=True,
        proj_size=module.proj_size,
        param_dtype=dtype,
        rngs=rngs if rngs is not None else nnx.Rngs(0),
    )
    zeros = jnp.zeros((4 * hidden,), dtype)
    for k, layer in enumerate(model.layers):
        if module.bidirectional:
            directions = [(layer.forward_layer, ""), (layer.backward_layer, "_reverse")]
        else:
            directions = [(layer, "")]
        for target, suffix in directions:
            w_ih = getattr(module, f"weight_ih_l{k}{suffix}")
            w_hh = getattr(module, f"weight_hh_l{k}{suffix}")
            bias = zeros
            if module.bias:
                b_ih, b_hh = (getattr(module, f"bias_{w}_l{k}{suffix}") for w in ("ih", "hh"))
                bias = _to_jax(b_ih + b_hh)
            proj = None
            if module.proj_size:
                proj = _to_jax(getattr(module, f"weight_hr_l{k}{suffix}")).T
            _set(target, _to_jax(w_ih).T, _to_jax(w_hh).T, bias, proj)
    if module.training:
        model.train()
    else:
        model.eval()
    return model


def _torch_layers(model: StackedLSTM | LSTM | Bidirectional) -> tuple[list, bool, float]:
    """Per-layer `[forward LSTM, (backward LSTM)]`, bidirectional, dropout; or ValueError."""
    if isinstance(model, StackedLSTM):
        if len(set(model.hidden_sizes)) != 1:
            raise ValueError(
                "torch.nn.LSTM needs the same hidden size in every layer; the StackedLSTM has "
                f"hidden_sizes={model.hidden_sizes}"
            )
        layers, dropout = list(model.layers), float(model.dropout.rate)
    elif isinstance(model, (LSTM, Bidirectional)):
        layers, dropout = [model], 0.0
    else:
        raise TypeError(
            f"to_torch expects a seqlstm StackedLSTM, LSTM or Bidirectional, got "
            f"{type(model).__name__}"
        )
    bidirectional = isinstance(layers[0], Bidirectional)
    out = []
    for layer in layers:
        lstm = layer.forward_layer if bidirectional else layer
        extra = [
            name
            for name, on in (
                ("dropout", lstm.dropout),
                ("recurrent_dropout", lstm.recurrent_dropout),
                ("layer_norm", lstm.layer_norm),
                ("peepholes", lstm.peepholes),
                ("zoneout_cell", lstm.rates.zoneout_cell),
                ("zoneout_hidden", lstm.rates.zoneout_hidden),
            )
            if on
        ]
        if extra:
            raise ValueError(
                f"torch.nn.LSTM has no {', '.join(extra)}; only proj_size among the LSTM variants "
                "converts (and a StackedLSTM's dropout between layers)"
            )
        if bidirectional:
            if layer.merge_mode != "concat":
                raise ValueError(
                    "torch.nn.LSTM concatenates its two directions; merge_mode must be 'concat', "
                    f"got {layer.merge_mode!r}"
                )
            out.append([layer.forward_layer, layer.backward_layer])
        else:
            if layer.reverse:
                raise ValueError(
                    "a unidirectional torch.nn.LSTM runs forward only; an LSTM with reverse=True "
                    "has no torch counterpart"
                )
            out.append([layer])
    return out, bidirectional, dropout


def to_torch(model: StackedLSTM | LSTM | Bidirectional) -> torch.nn.LSTM:
    """A `torch.nn.LSTM(batch_first=True)` with the weights of a seqlstm layer or stack.

    Args:
      model: an `LSTM` (forward, `reverse=False`), a `Bidirectional` with
        `merge_mode="concat"`, or a `StackedLSTM` of equal hidden sizes (bidirectional ones with
        `merge_mode="concat"`). A stack's `dropout` becomes torch's inter-layer dropout, and its
        train/eval mode becomes the module's. `proj_size` becomes torch's; the other variants
        (Keras dropout, layer norm, peepholes, zoneout) have no torch counterpart.

    Returns:
      The torch module, in the parameter dtype, with `bias_ih` holding seqlstm's `bias` and
      `bias_hh` zero. Its outputs and `h_n, c_n` match `model`'s with `return_sequences=True,
      return_state=True` (whatever `model`'s own flags are).

    Raises:
      TypeError: if `model` is not one of the three types.
      ValueError: naming `hidden_sizes`, `merge_mode`, `reverse` or a variant when torch cannot
        represent it.
    """
    import torch

    layers, bidirectional, dropout = _torch_layers(model)
    first = layers[0][0]
    dtype = _to_torch(jnp.zeros((), first.kernel[...].dtype)).dtype
    module = torch.nn.LSTM(
        first.in_features,
        first.hidden_size,
        num_layers=len(layers),
        bias=True,
        batch_first=True,
        dropout=dropout if len(layers) > 1 else 0.0,  # torch warns about dropout on one layer
        bidirectional=bidirectional,
        proj_size=first.proj_size,
        dtype=dtype,
    )
    with torch.no_grad():
        for k, directions in enumerate(layers):
            for lstm, suffix in zip(directions, ("", "_reverse")[: len(directions)], strict=True):
                getattr(module, f"weight_ih_l{k}{suffix}").copy_(_to_torch(lstm.kernel[...].T))
                getattr(module, f"weight_hh_l{k}{suffix}").copy_(
                    _to_torch(lstm.recurrent_kernel[...].T)
                )
                getattr(module, f"bias_ih_l{k}{suffix}").copy_(_to_torch(lstm.bias[...]))
                getattr(module, f"bias_hh_l{k}{suffix}").zero_()
                if first.proj_size:
                    getattr(module, f"weight_hr_l{k}{suffix}").copy_(
                        _to_torch(lstm.proj_kernel[...].T)
                    )
    if isinstance(model, StackedLSTM):
        module.train(not model.dropout.deterministic)
    return module


def torch_states(h_n, c_n, num_layers: int, bidirectional: bool) -> tuple:
    """PyTorch's final states in seqlstm's `StackedLSTM` layout.

    Args:
      h_n, c_n: torch's final states `[num_layers * num_directions, batch, P or H]` and
        `[num_layers * num_directions, batch, H]` (torch tensors or arrays; P = proj_size),
        ordered layer by layer, forward before backward within a layer.
      num_layers: number of layers.
      bidirectional: whether the module had two directions.

    Returns:
      A tuple with one entry per layer: `LSTMState(h, c)` (as `jax.Array`s), or
      a `(forward LSTMState, backward LSTMState)` pair when `bidirectional`.
    """
    h_n, c_n = (
        jnp.asarray(np.asarray(s.detach() if hasattr(s, "detach") else s)) for s in (h_n, c_n)
    )
    dirs = 2 if bidirectional else 1
    if h_n.shape[0] != num_layers * dirs or c_n.shape[:2] != h_n.shape[:2]:
        raise ValueError(
            f"h_n and c_n must be [num_layers * num_directions, batch, .] with num_layers * "
            f"num_directions = {num_layers * dirs}; got {h_n.shape} and {c_n.shape}"
        )
    states = [LSTMState(h_n[i], c_n[i]) for i in range(num_layers * dirs)]
    if not bidirectional:
        return tuple(states)
    return tuple((states[2 * k], states[2 * k + 1]) for k in range(num_layers))
