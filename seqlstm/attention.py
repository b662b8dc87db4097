"""Attention over encoder outputs: additive (Bahdanau), multiplicative (Luong dot, general) and
location-aware (Chorowski).

Scores between a query `q` (the decoder's state) and each key `k_s` (an encoder output):

  additive  score(q, k_s) = v . tanh(W_q q + W_k k_s)     (Bahdanau et al., 2015)
  dot       score(q, k_s) = q . k_s                        (Luong et al., 2015; needs |q| = |k|)
  general   score(q, k_s) = q . (W k_s)                    (Luong et al., 2015)
  location  score(q, k_s) = v . tanh(W_q q + W_k k_s + U f_s),  f = F * a_prev
                                                           (Chorowski et al., 2015, eq. 8-9)

Location-aware attention also reads where the previous step attended: `a_prev [source]`, the
previous step's weights, is convolved with `F`, `location_filters` filters of odd width
`location_width` (a cross-correlation, zero beyond the ends: `f_s[j] = sum_k a_prev[s - w//2 + k]
F[k, j]`), and the features `f_s` are projected by `U` into the additive score. Its first step
reads `initial_alignment`, uniform over the valid positions. Being recurrent, it runs step by
step: `attend` takes one `previous [batch, time, source]` row per query, and `Attention.__call__`
scans a `[batch, time, Hq]` query, each step's weights being the next step's `previous`.

Weights are a softmax over the valid source positions `s < lengths[b]`; padded positions get
exactly zero weight. A source of length 0 has all-zero weights and a zero context (a defined
result, no NaN, finite gradients). The context is `sum_s weights[s] * values[s]`.

The key projection does not depend on the query, so it is done once per source sequence
(`project_keys`) and reused at every decoder step.

Parameters are plain dicts (the functional form); `Attention` is the NNX module holding them:

  additive: query_kernel [Hq, A], key_kernel [Hk, A], v [A]
  location: as additive, and conv_kernel [K, F], location_kernel [F, A]
  general:  kernel [Hq, Hk]
  dot:      (none)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from seqlstm.checks import check_positive

KINDS = ("additive", "dot", "general", "location")
# The score of these kinds reads the previous step's weights.
RECURRENT_KINDS = ("location",)
# Finite, so a fully masked row gives a uniform softmax (then zeroed), never NaN.
_MASKED = -1e9


def project_keys(params: dict, keys: jax.Array, kind: str) -> jax.Array:
    """The query-independent half of the score, computed once per source.

    Args:
      params: see the module docstring.
      keys: encoder outputs `[batch, source, Hk]`.
      kind: one of `KINDS`.

    Returns:
      `[batch, source, A]` (additive: `W_k k`), `[batch, source, Hq]` (general: `W k`), or
      `keys` itself (dot).
    """
    if kind in ("additive", "location"):
        return jnp.einsum("bsk,ka->bsa", keys, params["key_kernel"])
    if kind == "general":
        return jnp.einsum("bsk,qk->bsq", keys, params["kernel"])
    return keys


def location_features(params: dict, previous: jax.Array) -> jax.Array:
    """`U f_s` of location-aware attention (module docstring).

    Args:
      params: `conv_kernel [K, F]` (K odd) and `location_kernel [F, A]`.
      previous: the previous step's weights `[batch, time, source]`.

    Returns:
      `[batch, time, source, A]`.
    """
    width = params["conv_kernel"].shape[0]
    source = previous.shape[-1]
    half = width // 2
    padded = jnp.pad(previous, ((0, 0), (0, 0), (half, half)))
    windows = jnp.stack([padded[..., k : k + source] for k in range(width)], axis=-1)
    features = jnp.einsum("btsk,kf->btsf", windows, params["conv_kernel"])
    return jnp.einsum("btsf,fa->btsa", features, params["location_kernel"])


def initial_alignment(lengths: jax.Array, source: int) -> jax.Array:
    """The `previous` weights of the first step: `1 / lengths[b]` at each valid position of row
    b, zero elsewhere (all zero for an empty row). `[batch, source]`."""
    valid = jnp.arange(source)[None, :] < lengths[:, None]
    return valid / jnp.maximum(lengths, 1)[:, None].astype(jnp.float32)


def scores(
    params: dict,
    query: jax.Array,
    projected: jax.Array,
    kind: str,
    previous: jax.Array | None = None,
) -> jax.Array:
    """Unnormalised scores of queries against projected keys.

    Args:
      query: `[batch, time, Hq]` (one row per decoder step).
      projected: `project_keys(params, keys, kind)`.
      previous: location-aware only: the previous step's weights `[batch, time, source]`.

    Returns:
      `[batch, time, source]`.
    """
    if kind in ("additive", "location"):
        q = jnp.einsum("btq,qa->bta", query, params["query_kernel"])
        extra = None
        if kind == "location":
            extra = location_features(params, previous.astype(projected.dtype))
        return additive_scores(q, projected, params["v"], extra)
    return jnp.einsum("btq,bsq->bts", query, projected)


def additive_scores(q, projected, v, extra=None):
    """`v . tanh(q + W_k k_s (+ extra))`: the additive score of queries already multiplied by
    the query kernel, `q: [batch, time, A]`, against `projected: [batch, source, A]`; `extra`
    (`[batch, time, source, A]`) is location-aware attention's term. Returns `[batch, time,
    source]`."""
    hidden = q[:, :, None, :] + projected[:, None, :, :]
    if extra is not None:
        hidden = hidden + extra
    return jnp.einsum("btsa,a->bts", jnp.tanh(hidden), v)


def masked_softmax(logits: jax.Array, lengths: jax.Array) -> jax.Array:
    """Softmax over the last axis restricted to positions `s < lengths[b]`.

    Args:
      logits: `[batch, time, source]`.
      lengths: `int[batch]`.

    Returns:
      `[batch, time, source]`: rows summing to one over valid positions, exactly zero at padded
      ones; all zero when `lengths[b] == 0`.
    """
    valid = jnp.arange(logits.shape[-1])[None, :] < lengths[:, None]  # [B, S]
    valid = valid[:, None, :]
    weights = jax.nn.softmax(jnp.where(valid, logits, _MASKED), axis=-1)
    return jnp.where(valid, weights, jnp.zeros_like(weights))


def attend(
    params: dict,
    query: jax.Array,
    projected: jax.Array,
    values: jax.Array,
    lengths: jax.Array,
    kind: str,
    previous: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Attention of `time` queries over one source per row.

    Args:
      params: see the module docstring.
      query: `[batch, time, Hq]`.
      projected: `project_keys(params, keys, kind)`, `[batch, source, .]`.
      values: `[batch, source, Hv]` (the encoder outputs).
      lengths: `int[batch]`, valid source positions per row.
      kind: one of `KINDS`.
      previous: for `RECURRENT_KINDS` (required there), the previous step's weights
        `[batch, time, source]`.

    Returns:
      `(context [batch, time, Hv], weights [batch, time, source])`.
    """
    if kind in RECURRENT_KINDS and previous is None:
        raise ValueError(f"{kind!r} attention reads the previous step's weights: pass previous")
    weights = masked_softmax(scores(params, query, projected, kind, previous), lengths)
    context = jnp.einsum("bts,bsv->btv", weights, values.astype(weights.dtype))
    return context, weights


class Attention(nnx.Module):
    """Attention parameters and the two-phase call: `project_keys` once, `attend` per step.

    Args:
      kind: one of `KINDS`.
      query_size: Hq, the decoder state size.
      key_size: Hk, the encoder output size (must equal `query_size` for `"dot"`).
      attention_size: A, the hidden size of the additive score (default `query_size`).
      location_filters: F, filters over the previous weights (location-aware).
      location_width: K, their odd width (location-aware).
      rngs: `nnx.Rngs` for initialisation (Glorot uniform kernels, as Keras's Dense).
    """

    def __init__(
        self,
        kind: str,
        query_size: int,
        key_size: int,
        *,
        attention_size: int | None = None,
        location_filters: int = 8,
        location_width: int = 5,
        rngs: nnx.Rngs,
    ):
        check_positive("location_filters", location_filters)
        check_positive("location_width", location_width)
        if location_width % 2 == 0:
            raise ValueError(f"location_width must be odd (centred filters), got {location_width}")
        if kind not in KINDS:
            raise ValueError(f"attention kind must be one of {KINDS}, got {kind!r}")
        if kind == "dot" and query_size != key_size:
            raise ValueError(
                f"dot attention needs query_size == key_size, got {query_size} and {key_size}; "
                "use 'general' or 'additive' attention, or match the sizes"
            )
        self.kind = kind
        self.query_size = query_size
        self.key_size = key_size
        init = nnx.initializers.glorot_uniform()
        if kind in ("additive", "location"):
            a = attention_size or query_size
            self.query_kernel = nnx.Param(init(rngs.params(), (query_size, a)))
            self.key_kernel = nnx.Param(init(rngs.params(), (key_size, a)))
            self.v = nnx.Param(init(rngs.params(), (a, 1))[:, 0])
        if kind == "location":
            f, k = location_filters, location_width
            self.conv_kernel = nnx.Param(init(rngs.params(), (k, f)))
            self.location_kernel = nnx.Param(init(rngs.params(), (f, a)))
        elif kind == "general":
            self.kernel = nnx.Param(init(rngs.params(), (query_size, key_size)))

    def params_dict(self) -> dict:
        """The parameters as the plain dict the functions of this module take."""
        additive = ("query_kernel", "key_kernel", "v")
        names = {
            "additive": additive,
            "location": (*additive, "conv_kernel", "location_kernel"),
            "general": ("kernel",),
        }
        return {n: getattr(self, n)[...] for n in names.get(self.kind, ())}

    def project_keys(self, keys: jax.Array) -> jax.Array:
        """`keys: [batch, source, key_size]` -> the projection `attend` reads."""
        if keys.ndim != 3 or keys.shape[-1] != self.key_size:
            raise ValueError(
                f"keys must be [batch, source, key_size={self.key_size}], got {tuple(keys.shape)}"
            )
        return project_keys(self.params_dict(), keys, self.kind)

    @property
    def recurrent(self) -> bool:
        """Whether the score reads the previous step's weights (`previous`)."""
        return self.kind in RECURRENT_KINDS

    def initial_alignment(self, lengths: jax.Array, source: int) -> jax.Array | None:
        """The first step's `previous [batch, source]`, or None for a kind that reads none."""
        return initial_alignment(lengths, source) if self.recurrent else None

    def attend(
        self, query, projected, values, lengths, previous=None
    ) -> tuple[jax.Array, jax.Array]:
        """See the function `attend`; `query` is `[batch, time, query_size]`."""
        if query.ndim != 3 or query.shape[-1] != self.query_size:
            raise ValueError(
                f"query must be [batch, time, query_size={self.query_size}], got "
                f"{tuple(query.shape)}"
            )
        params = self.params_dict()
        return attend(params, query, projected, values, lengths, self.kind, previous)

    def __call__(self, query, keys, lengths) -> tuple[jax.Array, jax.Array]:
        """Attention of `query [B, T, Hq]` over `keys [B, S, Hk]` (also the values); a recurrent
        kind runs the T steps in order from `initial_alignment`.

        Returns:
          `(context [B, T, Hk], weights [B, T, S])`.
        """
        lengths = jnp.asarray(lengths)
        if lengths.shape != keys.shape[:1]:
            raise ValueError(
                f"lengths must have shape [batch] = {keys.shape[:1]}, got {lengths.shape}"
            )
        projected = self.project_keys(keys)
        if not self.recurrent:
            return self.attend(query, projected, keys, lengths)
        if query.ndim != 3:
            self.attend(query, projected, keys, lengths)  # raises the message about the query

        def step(previous, q):
            context, weights = self.attend(q[:, None], projected, keys, lengths, previous[:, None])
            return weights[:, 0], (context[:, 0], weights[:, 0])

        start = initial_alignment(lengths, keys.shape[1])
        _, (context, weights) = jax.lax.scan(step, start, jnp.swapaxes(query, 0, 1))
        return jnp.swapaxes(context, 0, 1), jnp.swapaxes(weights, 0, 1)
