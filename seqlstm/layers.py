"""Flax NNX modules with Keras output and state semantics: LSTM, Bidirectional, StackedLSTM.

The math lives in `seqlstm.scan.lstm_scan`; these modules hold parameters, check arguments in
Python before anything is traced, and shape results the way Keras users expect:

  return_sequences  return_state   result
  False             False          last output                 [B, H]
  True              False          all outputs                 [B, T, H]
  False             True           (last output, LSTMState)    [B, H], (h, c: [B, H])
  True              True           (all outputs, LSTMState)    [B, T, H], (h, c: [B, H])

Dropout follows Flax: active after `model.train()` (the default for new modules), off after
`model.eval()`. So do the LSTM's own stochastic options (`dropout`, `recurrent_dropout`, zoneout;
see `seqlstm.variants`), which draw their masks from the `dropout` stream of the layer's `rngs`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from seqlstm.cell import LSTMState, init_params
from seqlstm.checks import check_choice, check_float_dtype, check_int, check_positive, check_rate
from seqlstm.masking import lengths_and_poison
from seqlstm.scan import BACKENDS, BACKWARDS, PROJECTIONS, lstm_scan
from seqlstm.variants import Masks, Rates, draw_masks, lstm_step

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


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


def merge(fwd: jax.Array, bwd: jax.Array, merge_mode: str | None):
    """Merges forward and backward outputs as Keras's `Bidirectional(merge_mode=)` does."""
    if merge_mode == "concat":
        return jnp.concatenate([fwd, bwd], axis=-1)
    if merge_mode == "sum":
        return fwd + bwd
    if merge_mode == "mul":
        return fwd * bwd
    if merge_mode == "ave":
        return (fwd + bwd) / 2
    return fwd, bwd


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


class Bidirectional(nnx.Module):
    """A forward and a backward LSTM over the same input, merged as Keras's `Bidirectional`.

    Args:
      in_features, hidden_size: as `LSTM`; each direction has `hidden_size` units.
      merge_mode: `"concat"` (output `2H`), `"sum"`, `"mul"`, `"ave"` (output `H`), or None for
        the pair `(forward, backward)`.
      return_sequences, return_state: as `LSTM`; the state is `(forward LSTMState, backward
        LSTMState)`.
      **lstm_kwargs: passed to both directions (`unroll`, `projection`, `dtype`, ...).
    """

    def __init__(
        self,
        in_features: int,
        hidden_size: int,
        *,
        merge_mode: str | None = "concat",
        return_sequences: bool = False,
        return_state: bool = False,
        rngs: nnx.Rngs,
        **lstm_kwargs,
    ):
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"merge_mode must be one of {MERGE_MODES}, got {merge_mode!r}")
        self.in_features = in_features
        self.hidden_size = hidden_size
        self.merge_mode = merge_mode
        self.return_sequences = return_sequences
        self.return_state = return_state
        common = dict(return_sequences=True, return_state=True, rngs=rngs, **lstm_kwargs)
        self.forward_layer = LSTM(in_features, hidden_size, **common)
        self.backward_layer = LSTM(in_features, hidden_size, reverse=True, **common)

    @property
    def out_features(self) -> int:
        size = self.forward_layer.out_features
        return 2 * size if self.merge_mode == "concat" else size

    def __call__(
        self,
        x: jax.Array,
        *,
        initial_state: tuple[LSTMState, LSTMState] | None = None,
        seq_lengths: jax.Array | None = None,
        mask: jax.Array | None = None,
    ):
        """Runs both directions.

        Args:
          x: `[batch, time, in_features]`.
          initial_state: `(forward LSTMState, backward LSTMState)` or None.
          seq_lengths, mask: as `LSTM`.

        Returns:
          The merged last outputs `[B, H or 2H]` or sequences `[B, T, H or 2H]` (a pair when
          `merge_mode=None`), with `(forward LSTMState, backward LSTMState)` when `return_state`.
          The backward direction's last output is its output at step 0.
        """
        fwd_init = bwd_init = None
        if initial_state is not None:
            if not isinstance(initial_state, tuple) or len(initial_state) != 2:
                raise ValueError(
                    "initial_state of Bidirectional must be a pair (forward LSTMState, backward "
                    f"LSTMState), got {type(initial_state).__name__}"
                )
            fwd_init, bwd_init = initial_state
        kw = dict(seq_lengths=seq_lengths, mask=mask)
        fwd_seq, fwd_state = self.forward_layer(x, initial_state=fwd_init, **kw)
        bwd_seq, bwd_state = self.backward_layer(x, initial_state=bwd_init, **kw)
        if self.return_sequences:
            fwd_out, bwd_out = fwd_seq, bwd_seq
        else:
            # As Keras: each direction's last output is its final h (for an empty row, the
            # initial h).
            fwd_out = fwd_state.h.astype(fwd_seq.dtype)
            bwd_out = bwd_state.h.astype(bwd_seq.dtype)
        out = merge(fwd_out, bwd_out, self.merge_mode)
        return (out, (fwd_state, bwd_state)) if self.return_state else out


class StackedLSTM(nnx.Module):
    """LSTM layers where each reads the previous layer's full output sequence.

    Args:
      in_features: input feature size of the first layer.
      hidden_sizes: units of each layer, first to last.
      bidirectional: make every layer a `Bidirectional`.
      merge_mode: how bidirectional layers merge (not None: the next layer needs one array).
      dropout: dropout rate between layers (not after the last), active in training mode only
        (PyTorch's `nn.LSTM(dropout=)`: a fresh mask per element).
      input_dropout: every layer's Keras `dropout` (`LSTM(dropout=)`: one mask per sequence on
        the layer's input); `recurrent_dropout` and the other variants go in `**lstm_kwargs`.
      return_sequences: return the last layer's outputs `[B, T, H_last]` instead of `[B, H_last]`.
      return_state: also return `states`, one per layer: an `LSTMState`, or a
        `(forward, backward)` pair when bidirectional.
      **lstm_kwargs: passed to every layer (`unroll`, `projection`, `dtype`, ...).
    """

    def __init__(
        self,
        in_features: int,
        hidden_sizes: Sequence[int] = (64, 32),
        *,
        bidirectional: bool = False,
        merge_mode: str = "concat",
        dropout: float = 0.0,
        input_dropout: float = 0.0,
        return_sequences: bool = False,
        return_state: bool = False,
        rngs: nnx.Rngs,
        **lstm_kwargs,
    ):
        hidden_sizes = tuple(hidden_sizes) if isinstance(hidden_sizes, Sequence) else hidden_sizes
        if not isinstance(hidden_sizes, tuple) or not hidden_sizes:
            raise ValueError(
                f"hidden_sizes must be a non-empty sequence of ints, got {hidden_sizes!r}"
            )
        for i, h in enumerate(hidden_sizes):
            check_positive(f"hidden_sizes[{i}]", h)
        if bidirectional and merge_mode not in MERGE_MODES[:-1]:
            raise ValueError(
                f"merge_mode of a bidirectional StackedLSTM must be one of {MERGE_MODES[:-1]} "
                f"(the next layer reads one array), got {merge_mode!r}"
            )
        check_rate("dropout", dropout)
        if dropout > 0 and len(hidden_sizes) == 1:
            warnings.warn(  # as PyTorch's nn.LSTM warns: the rate would silently do nothing
                "dropout acts between stacked layers, not after the last, so a non-zero dropout "
                f"expects at least 2 layers, but got dropout={dropout} and 1 layer; "
                "input_dropout drops each layer's inputs",
                UserWarning,
                stacklevel=2,
            )
        self.in_features = in_features
        self.hidden_sizes = hidden_sizes
        self.bidirectional = bidirectional
        self.merge_mode = merge_mode
        self.return_sequences = return_sequences
        self.return_state = return_state
        layers = []
        d = in_features
        for h in hidden_sizes:
            common = dict(return_sequences=True, return_state=True, rngs=rngs, **lstm_kwargs)
            common["dropout"] = input_dropout
            if bidirectional:
                layer = Bidirectional(d, h, merge_mode=merge_mode, **common)
            else:
                layer = LSTM(d, h, **common)
            d = layer.out_features
            layers.append(layer)
        self.layers = nnx.List(layers)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)

    @property
    def out_features(self) -> int:
        """The size of the last layer's outputs."""
        return self.layers[-1].out_features

    def __call__(
        self,
        x: jax.Array,
        *,
        initial_state: Sequence | None = None,
        seq_lengths: jax.Array | None = None,
        mask: jax.Array | None = None,
    ):
        """Runs the stack.

        Args:
          x: `[batch, time, in_features]`.
          initial_state: None, or one entry per layer (an `LSTMState`, a `(forward, backward)`
            pair when bidirectional, or None for zeros).
          seq_lengths, mask: as `LSTM`, applied to every layer.

        Returns:
          The last layer's last output or sequence; with `return_state`, `(outputs, states)`.
        """
        n = len(self.hidden_sizes)
        if initial_state is None:
            initial_state = (None,) * n
        elif not isinstance(initial_state, Sequence) or len(initial_state) != n:
            raise ValueError(
                f"initial_state must hold one entry per layer ({n}), got "
                f"{len(initial_state) if isinstance(initial_state, Sequence) else initial_state!r}"
            )
        check_input(jnp.asarray(x), self.in_features)
        states = []
        h = x
        for i, (layer, init) in enumerate(zip(self.layers, initial_state)):
            if i > 0:
                h = self.dropout(h)
            h, state = layer(h, initial_state=init, seq_lengths=seq_lengths, mask=mask)
            states.append(state)
        if self.return_sequences:
            out = h
        else:
            last = states[-1]
            if self.bidirectional:
                out = merge(last[0].h, last[1].h, self.merge_mode)
            else:
                out = last.h
            out = out.astype(h.dtype)
        return (out, tuple(states)) if self.return_state else out


class RepeatVector(nnx.Module):
    """Keras's `RepeatVector(n)`: `[batch, features] -> [batch, n, features]`."""

    def __init__(self, n: int):
        check_positive("n", n)
        self.n = n

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jnp.asarray(x)
        if x.ndim != 2:
            raise ValueError(f"x must be [batch, features] (rank 2), got shape {tuple(x.shape)}")
        return jnp.repeat(x[:, None, :], self.n, axis=1)
