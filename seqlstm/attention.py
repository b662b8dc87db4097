"""Attention over encoder outputs: additive (Bahdanau) and multiplicative (Luong dot, general).

Scores between a query `q` (the decoder's state) and each key `k_s` (an encoder output):

  additive  score(q, k_s) = v . tanh(W_q q + W_k k_s)     (Bahdanau et al., 2015)
  dot       score(q, k_s) = q . k_s                        (Luong et al., 2015; needs |q| = |k|)
  general   score(q, k_s) = q . (W k_s)                    (Luong et al., 2015)

Weights are a softmax over the valid source positions `s < lengths[b]`; padded positions get
exactly zero weight. A source of length 0 has all-zero weights and a zero context (a defined
result, no NaN, finite gradients). The context is `sum_s weights[s] * values[s]`.

The key projection does not depend on the query, so it is done once per source sequence
(`project_keys`) and reused at every decoder step.

Parameters are plain dicts (the functional form); `Attention` is the NNX module holding them:

  additive: query_kernel [Hq, A], key_kernel [Hk, A], v [A]
  general:  kernel [Hq, Hk]
  dot:      (none)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

KINDS = ("additive", "dot", "general")
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
    if kind == "additive":
        return jnp.einsum("bsk,ka->bsa", keys, params["key_kernel"])
    if kind == "general":
        return jnp.einsum("bsk,qk->bsq", keys, params["kernel"])
    return keys


def scores(params: dict, query: jax.Array, projected: jax.Array, kind: str) -> jax.Array:
    """Unnormalised scores of queries against projected keys.

    Args:
      query: `[batch, time, Hq]` (one row per decoder step).
      projected: `project_keys(params, keys, kind)`.

    Returns:
      `[batch, time, source]`.
    """
    if kind == "additive":
        q = jnp.einsum("btq,qa->bta", query, params["query_kernel"])
        hidden = jnp.tanh(q[:, :, None, :] + projected[:, None, :, :])
        return jnp.einsum("btsa,a->bts", hidden, params["v"])
    return jnp.einsum("btq,bsq->bts", query, projected)


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
) -> tuple[jax.Array, jax.Array]:
    """Attention of `time` queries over one source per row.

    Args:
      params: see the module docstring.
      query: `[batch, time, Hq]`.
      projected: `project_keys(params, keys, kind)`, `[batch, source, .]`.
      values: `[batch, source, Hv]` (the encoder outputs).
      lengths: `int[batch]`, valid source positions per row.
      kind: one of `KINDS`.

    Returns:
      `(context [batch, time, Hv], weights [batch, time, source])`.
    """
    weights = masked_softmax(scores(params, query, projected, kind), lengths)
    context = jnp.einsum("bts,bsv->btv", weights, values.astype(weights.dtype))
    return context, weights


class Attention(nnx.Module):
    """Attention parameters and the two-phase call: `project_keys` once, `attend` per step.

    Args:
      kind: `"additive"`, `"dot"` or `"general"`.
      query_size: Hq, the decoder state size.
      key_size: Hk, the encoder output size (must equal `query_size` for `"dot"`).
      attention_size: A, the hidden size of the additive score (default `query_size`).
      rngs: `nnx.Rngs` for initialisation (Glorot uniform kernels, as Keras's Dense).
    """

    def __init__(
        self,
        kind: str,
        query_size: int,
        key_size: int,
        *,
        attention_size: int | None = None,
        rngs: nnx.Rngs,
    ):
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
        if kind == "additive":
            a = attention_size or query_size
            self.query_kernel = nnx.Param(init(rngs.params(), (query_size, a)))
            self.key_kernel = nnx.Param(init(rngs.params(), (key_size, a)))
            self.v = nnx.Param(init(rngs.params(), (a, 1))[:, 0])
        elif kind == "general":
            self.kernel = nnx.Param(init(rngs.params(), (query_size, key_size)))

    def params_dict(self) -> dict:
        """The parameters as the plain dict the functions of this module take."""
        names = {"additive": ("query_kernel", "key_kernel", "v"), "general": ("kernel",)}
        return {n: getattr(self, n)[...] for n in names.get(self.kind, ())}

    def project_keys(self, keys: jax.Array) -> jax.Array:
        """`keys: [batch, source, key_size]` -> the projection `attend` reads."""
        if keys.ndim != 3 or keys.shape[-1] != self.key_size:
            raise ValueError(
                f"keys must be [batch, source, key_size={self.key_size}], got {tuple(keys.shape)}"
            )
        return project_keys(self.params_dict(), keys, self.kind)

    def attend(self, query, projected, values, lengths) -> tuple[jax.Array, jax.Array]:
        """See the function `attend`; `query` is `[batch, time, query_size]`."""
        if query.ndim != 3 or query.shape[-1] != self.query_size:
            raise ValueError(
                f"query must be [batch, time, query_size={self.query_size}], got "
                f"{tuple(query.shape)}"
            )
        return attend(self.params_dict(), query, projected, values, lengths, self.kind)

    def __call__(self, query, keys, lengths) -> tuple[jax.Array, jax.Array]:
        """Attention of `query [B, T, Hq]` over `keys [B, S, Hk]` (also the values).

        Returns:
          `(context [B, T, Hk], weights [B, T, S])`.
        """
        lengths = jnp.asarray(lengths)
        if lengths.shape != keys.shape[:1]:
            raise ValueError(
                f"lengths must have shape [batch] = {keys.shape[:1]}, got {lengths.shape}"
            )
        return self.attend(query, self.project_keys(keys), keys, lengths)
