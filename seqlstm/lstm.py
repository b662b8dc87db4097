"""The LSTM layer: one direction over `[batch, time, features]`, with every cell variant.

The math lives in `seqlstm.scan.lstm_scan`; `LSTM` holds the parameters, checks its arguments in
Python before anything is traced (the variant options included: rates, `proj_size`, the backends
each runs on) and shapes results the way Keras users expect:

  return_sequences  return_state   result
  False             False          last output                 [B, H]
  True              False          all outputs                 [B, T, H]
  False             True           (last output, LSTMState)    [B, H], (h, c: [B, H])
  True              True           (all outputs, LSTMState)    [B, T, H], (h, c: [B, H])

Dropout follows Flax: active after `model.train()` (the default for new modules), off after
`model.eval()`. So do the LSTM's own stochastic options (`dropout`, `recurrent_dropout`, zoneout;
see `seqlstm.variants`), which draw their masks from the `dropout` stream of the layer's `rngs`.
The layers built from it (`Bidirectional`, `StackedLSTM`, `RepeatVector`) are in `seqlstm.layers`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from seqlstm.cell import LSTMState, init_params
from seqlstm.checks import check_choice, check_float_dtype, check_int, check_positive, check_rate
from seqlstm.masking import lengths_and_poison
from seqlstm.scan import BACKENDS, BACKWARDS, PROJECTIONS, lstm_scan
from seqlstm.variants import Masks, Rates, draw_masks, lstm_step


def check_input(x: jax.Array, in_features: int, argname: str = "x") -> None:
    """Raises ValueError unless `x` is a real `[batch, time, in_features]`."""
    if jnp.issubdtype(x.dtype, jnp.complexfloating):
        raise ValueError(f"{argname} must be real, got dtype {x.dtype}")
    if x.ndim != 3:
        raise ValueError(
            f"{argname} must be [batch, time, features] (rank 3), got shape {tuple(x.shape)}"
        )
    if x.shape[-1] != in_features:
        raise ValueError(
            f"{argname} has {x.shape[-1]} features (shape {tuple(x.shape)}), expected "
            f"in_features={in_features}"
        )


def check_state(
    state, batch: int, hidden: int, argname: str = "initial_state", h_size: int | None = None
) -> LSTMState:
    """Returns `state` as an `LSTMState` after checking `h` is `[batch, h_size]` (default
    `hidden`; `proj_size` with a projection) and `c` is `[batch, hidden]`."""
    if not isinstance(state, tuple) or len(state) != 2:
        raise ValueError(f"{argname} must be an LSTMState(h, c), got {type(state).__name__}")
    state = LSTMState(*state)
    for name, v, size in zip(("h", "c"), state, (h_size or hidden, hidden)):
        shape = tuple(jnp.shape(v))
        if shape != (batch, size):
            what = "proj_size" if size != hidden else "hidden"
            raise ValueError(
                f"{argname}.{name} must have shape [batch, {what}] = {(batch, size)}, got {shape}"
            )
    return state


class LSTM(nnx.Module):
    """An LSTM layer over `[batch, time, features]`, Keras semantics, Keras parameter layout.

    Args:
      in_features: input feature size D.
      hidden_size: units H.
      return_sequences: return all outputs `[B, T, H]` instead of the last `[B, H]`.
      return_state: also return the final `LSTMState`.
      reverse: process each row from its last valid step back to step 0; outputs stay aligned
        with the input time axis (as PyTorch's backward direction; Keras's `go_backwards`
        returns them in processing order instead).
      unroll: steps per scan iteration.
      projection: step form, see `seqlstm.scan` (`"auto"`, `"hoisted"`, `"per_step"`).
      backward: `"fused"` (cuDNN-style custom VJP) or `"autodiff"`, see `seqlstm.scan`.
      backend: `"auto"` (cuDNN on a CUDA GPU in float32; on CPU the native kernel where it is
        measured faster, `seqlstm.kernels.rule`; else the scan), `"scan"`, `"cudnn"`, `"native"`
        (the CPU kernel of `seqlstm.kernels.native`, float32, plain cell and input dropout).
      remat_chunk: rematerialise the forward in chunks of this many steps (long sequences).
      unit_forget_bias: Keras's forget-gate bias of one at initialisation.
      dropout: Keras's input dropout rate in [0, 1): one mask per sequence, training mode only.
      recurrent_dropout: Keras's dropout rate of the recurrent state h, the same way.
      proj_size: PyTorch's LSTMP: P in [1, hidden_size) projects h to `[B, P]` (outputs and
        `state.h` are P wide, `state.c` stays H); 0 for none.
      layer_norm: layer-normalised LSTM (Ba et al. 2016; the variant is in `seqlstm.variants`).
      peepholes: peephole connections from the cell state to the i, f, o gates.
      zoneout_cell, zoneout_hidden: zoneout rates in [0, 1) of c and h (Krueger et al. 2016);
        in evaluation mode, the expectation.
      dtype: computation dtype (None: promote input and parameter dtypes); floating.
      param_dtype: parameter dtype; floating.
      rngs: `nnx.Rngs` for initialisation (and the `dropout` stream of the stochastic options).

    Every variant but input `dropout` runs with autodiff (`backward="fused"` falls back to it
    automatically, see `seqlstm.scan`) and none runs on cuDNN.
    """

    def __init__(
        self,
        in_features: int,
        hidden_size: int,
        *,
        return_sequences: bool = False,
        return_state: bool = False,
        reverse: bool = False,
        unroll: int = 1,
        projection: str = "auto",
        backward: str = "fused",
        backend: str = "auto",
        remat_chunk: int | None = None,
        unit_forget_bias: bool = True,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        proj_size: int = 0,
        layer_norm: bool = False,
        peepholes: bool = False,
        zoneout_cell: float = 0.0,
        zoneout_hidden: float = 0.0,
        dtype=None,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        check_positive("in_features", in_features)
        check_positive("hidden_size", hidden_size)
        check_positive("unroll", unroll)
        check_choice("projection", projection, PROJECTIONS)
        check_choice("backward", backward, BACKWARDS)
        check_choice("backend", backend, BACKENDS)
        check_float_dtype("dtype", dtype)
        check_float_dtype("param_dtype", param_dtype)
        self.rates = Rates(
            check_rate("dropout", dropout),
            check_rate("recurrent_dropout", recurrent_dropout),
            check_rate("zoneout_cell", zoneout_cell),
            check_rate("zoneout_hidden", zoneout_hidden),
        )
        proj_size = check_int("proj_size", proj_size, 0)
        if proj_size >= hidden_size:
            raise ValueError(
                f"proj_size must be smaller than hidden_size={hidden_size} (PyTorch's rule), got "
                f"{proj_size}"
            )
        variant = bool(proj_size or layer_norm or peepholes or any(self.rates[1:]))
        if variant and backend == "cudnn":
            raise ValueError(
                "backend='cudnn' runs the plain LSTM (with input dropout) only; recurrent_dropout, "
                "proj_size, layer_norm, peepholes and zoneout need backend='auto' or 'scan'"
            )
        self.in_features = in_features
        self.hidden_size = hidden_size
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.reverse = reverse
        self.unroll = unroll
        self.projection = projection
        self.backward = backward
        self.backend = backend
        self.remat_chunk = remat_chunk
        self.dtype = dtype
        self.proj_size = proj_size
        self.layer_norm = bool(layer_norm)
        self.peepholes = bool(peepholes)
        self.deterministic = False  # set by model.train() / model.eval(), as nnx.Dropout's
        p = init_params(
            rngs.params(),
            in_features,
            hidden_size,
            unit_forget_bias=unit_forget_bias,
            proj_size=proj_size,
            peepholes=peepholes,
            layer_norm=layer_norm,
            dtype=param_dtype,
        )
        self.param_names = tuple(p)
        for name, value in p.items():
            setattr(self, name, nnx.Param(value))
        if any(self.rates):  # after the parameters: the same weights as without the options
            self.rngs = rngs["dropout"].fork()

    def set_view(self, deterministic: bool | None = None) -> None:
        """Used by `nnx.view` (as the training stack's evaluation graph is made):
        `deterministic=True` turns the stochastic options off."""
        if deterministic is not None:
            self.deterministic = deterministic

    @property
    def dropout(self) -> float:
        return self.rates.dropout

    @property
    def recurrent_dropout(self) -> float:
        return self.rates.recurrent_dropout

    @property
    def out_features(self) -> int:
        """The size of the outputs and of `state.h`: `proj_size`, or `hidden_size` without."""
        return self.proj_size or self.hidden_size

    def params_dict(self) -> dict:
        """The parameters as the dict `seqlstm.scan.lstm_scan` takes (`seqlstm.variants`)."""
        return {name: getattr(self, name)[...] for name in self.param_names}

    def key(self) -> jax.Array | None:
        """A fresh PRNG key for the stochastic options in training mode; None otherwise."""
        return self.rngs() if any(self.rates) and not self.deterministic else None

    def draw_masks(self, batch: int, time: int, key: jax.Array | None = None) -> Masks | None:
        """The masks of one call in training mode (`seqlstm.variants.draw_masks`), else None."""
        key = self.key() if key is None else key
        if key is None:
            return None
        return draw_masks(
            key,
            self.rates,
            batch,
            time,
            self.in_features,
            self.params_dict(),
            self.dtype or jnp.float32,
        )

    def step(self, state: LSTMState, x: jax.Array, masks: Masks | None = None, t=0) -> LSTMState:
        """One step on `x: [batch, in_features]` (`seqlstm.variants.lstm_step`): with `masks`
        from `draw_masks` in training mode, without in evaluation mode."""
        return lstm_step(
            self.params_dict(), state, x, rates=self.rates, masks=masks, t=t, dtype=self.dtype
        )

    def __call__(
        self,
        x: jax.Array,
        *,
        initial_state: LSTMState | None = None,
        seq_lengths: jax.Array | None = None,
        mask: jax.Array | None = None,
    ):
        """Runs the layer.

        Args:
          x: `[batch, time, in_features]`.
          initial_state: `LSTMState(h, c)`, each `[batch, hidden_size]`; zeros when None.
          seq_lengths: `int[batch]` valid steps per row (right padding), or
          mask: boolean `[batch, time]` right-padded mask (not both).

        Returns:
          See the table in the module docstring. Outputs at padded steps are zero; the state is
          the state at each row's last valid step; a row of length 0 has zero outputs and returns
          its initial state. The last output is always `state.h` (as Keras: for a row of length
          0, the initial `h`).
        """
        x = jnp.asarray(x)
        check_input(x, self.in_features)
        batch, time = x.shape[0], x.shape[1]
        if initial_state is not None:
            initial_state = check_state(
                initial_state, batch, self.hidden_size, h_size=self.out_features
            )
        lengths, bad = lengths_and_poison(batch, time, seq_lengths, mask)
        outputs, state = lstm_scan(
            self.params_dict(),
            x,
            initial_state,
            seq_lengths=lengths,
            reverse=self.reverse,
            unroll=self.unroll,
            projection=self.projection,
            backward=self.backward,
            backend=self.backend,
            remat_chunk=self.remat_chunk,
            dtype=self.dtype,
            dropout=self.rates.dropout,
            recurrent_dropout=self.rates.recurrent_dropout,
            zoneout_cell=self.rates.zoneout_cell,
            zoneout_hidden=self.rates.zoneout_hidden,
            key=self.key(),
        )
        last = state.h.astype(outputs.dtype)
        if bad is not None:
            nan = jnp.asarray(jnp.nan, outputs.dtype)
            outputs = jnp.where(bad[:, None, None], nan, outputs)
            last = jnp.where(bad[:, None], nan, last)
            state = LSTMState(*(jnp.where(bad[:, None], nan, s) for s in state))
        out = outputs if self.return_sequences else last
        return (out, state) if self.return_state else out
