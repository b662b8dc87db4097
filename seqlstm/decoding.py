"""Greedy decoding and beam search for `seqlstm.seq2seq.EncoderDecoder`, jit-compiled.

Both run at most `max_len` decoder steps in a `lax.while_loop` that stops as soon as every row
(every beam) has produced EOS. PAD and BOS are never produced; after EOS a row is padded with PAD.

A hypothesis is a token sequence ending in EOS, or `max_len` tokens without EOS (cut at the
limit, reported with `lengths == max_len` and no EOS). Its log-probability is the sum of the
model's per-step log-softmax values; beam search ranks hypotheses by

  score = log_prob / lp(length),  lp(n) = ((5 + n) / 6) ** length_penalty   (Wu et al., 2016)

so `length_penalty=0` ranks by log-probability and larger values favour longer outputs.

Beam search keeps the `beam_size` best-scoring hypotheses at every step, finished ones included
(a finished beam continues with PAD at zero cost, so it stays while nothing better appears).
With `beam_size=1` it is greedy decoding, and with a beam larger than the number of possible
hypotheses it is exhaustive search (both tested).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from seqlstm.tokens import BOS, EOS, FIRST_ID, PAD


class DecodeResult(NamedTuple):
    """Decoded outputs.

    Attributes:
      tokens: `int32[batch, max_len]`, the best hypothesis, PAD after EOS.
      lengths: `int32[batch]`, tokens up to and including EOS (`max_len` when cut).
      scores: `float32[batch]`: greedy, the log-probability; beam, the length-penalised score.
      attention: `[batch, max_len, source]` weights of each output step (greedy with attention;
        otherwise None).
      beams: `int32[batch, beam_size, max_len]`, all final beams, best first (beam search only).
      beam_scores: `float32[batch, beam_size]`, their scores (beam search only).
    """

    tokens: jax.Array
    lengths: jax.Array
    scores: jax.Array
    attention: jax.Array | None = None
    beams: jax.Array | None = None
    beam_scores: jax.Array | None = None


def _prepare(model, source, source_lengths, max_len):
    """Validates in Python and splits the model (in evaluation mode) for the jitted loop."""
    if max_len is None:
        max_len = model.max_target_len
    if not isinstance(max_len, (int, np.integer)) or isinstance(max_len, bool) or max_len <= 0:
        raise ValueError(f"max_len must be a positive int, got {max_len!r}")
    if max_len > model.max_target_len:
        raise ValueError(
            f"max_len={max_len} exceeds the model's max_target_len={model.max_target_len}"
        )
    source = jnp.asarray(source)
    source_lengths = jnp.asarray(source_lengths)
    model.check_inputs(source, source_lengths)
    view = nnx.view(model, deterministic=True, raise_if_not_found=False)
    graphdef, state = nnx.split(view)
    return graphdef, state, source, source_lengths.astype(jnp.int32), int(max_len)


def _log_probs(logits: jax.Array) -> jax.Array:
    """Log-softmax over the whole vocabulary, with PAD and BOS (never outputs) set to -inf."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    ids = jnp.arange(logits.shape[-1])
    allowed = (ids >= FIRST_ID) | (ids == EOS)
    return jnp.where(allowed[None, :], logp, -jnp.inf)


def greedy_decode(
    model, source: jax.Array, source_lengths: jax.Array, *, max_len: int | None = None
) -> DecodeResult:
    """Greedy decoding: the most likely token at each step, until EOS or `max_len`.

    Args:
      model: an `EncoderDecoder` (decoded in evaluation mode).
      source: `int[batch, S]`, right-padded.
      source_lengths: `int[batch]`; an empty source (length 0) decodes from the bridge of zero
        states with a zero attention context.
      max_len: decoder steps (default and maximum: the model's `max_target_len`).

    Returns:
      A `DecodeResult` (no beams).
    """
    graphdef, state, source, lengths, max_len = _prepare(model, source, source_lengths, max_len)
    return _greedy(graphdef, state, source, lengths, max_len=max_len)


@partial(jax.jit, static_argnames=("graphdef", "max_len"))
def _greedy(graphdef, state, source, lengths, *, max_len):
    model = nnx.merge(graphdef, state)
    memory, carry = model.encode(source, lengths)
    batch, src = source.shape
    with_attention = model.attention

    def cond(loop):
        return (loop[0] < max_len) & ~jnp.all(loop[4])

    def body(loop):
        t, carry, prev, tokens, finished, out_len, score, attn = loop
        carry, logits, weights = model.decoder.step(carry, prev, memory)
        logp = _log_probs(logits)
        tok = jnp.argmax(logp, axis=-1).astype(jnp.int32)
        tok = jnp.where(finished, PAD, tok)
        gained = jnp.take_along_axis(logp, tok[:, None], axis=-1)[:, 0]
        score = score + jnp.where(finished, 0.0, gained)
        out_len = out_len + (~finished).astype(jnp.int32)
        tokens = tokens.at[:, t].set(tok)
        if with_attention:
            attn = attn.at[:, t].set(jnp.where(finished[:, None], 0.0, weights))
        return t + 1, carry, tok, tokens, finished | (tok == EOS), out_len, score, attn

    init = (
        jnp.zeros((), jnp.int32),
        carry,
        jnp.full((batch,), BOS, jnp.int32),
        jnp.full((batch, max_len), PAD, jnp.int32),
        jnp.zeros((batch,), bool),
        jnp.zeros((batch,), jnp.int32),
        jnp.zeros((batch,), jnp.float32),
        jnp.zeros((batch, max_len, src if with_attention else 0), jnp.float32),
    )
    _, _, _, tokens, _, out_len, score, attn = jax.lax.while_loop(cond, body, init)
    return DecodeResult(tokens, out_len, score, attn if with_attention else None)


def length_penalty_factor(length: jax.Array, alpha) -> jax.Array:
    """GNMT's `lp(n) = ((5 + n) / 6) ** alpha`; 1 when `alpha == 0`."""
    return ((5.0 + length.astype(jnp.float32)) / 6.0) ** alpha


def beam_search(
    model,
    source: jax.Array,
    source_lengths: jax.Array,
    *,
    beam_size: int = 4,
    length_penalty: float = 0.0,
    max_len: int | None = None,
) -> DecodeResult:
    """Beam search (see the module docstring for the scoring and the hypothesis space).

    Args:
      model: an `EncoderDecoder` (decoded in evaluation mode).
      source: `int[batch, S]`, right-padded.
      source_lengths: `int[batch]`.
      beam_size: hypotheses kept per row, at least 1.
      length_penalty: alpha >= 0 of `lp(n)`.
      max_len: decoder steps (default and maximum: the model's `max_target_len`).

    Returns:
      A `DecodeResult` with `beams` and `beam_scores` (best first); `scores` is the
      length-penalised score of the best hypothesis.

    Raises:
      ValueError: for `beam_size < 1`, a negative `length_penalty`, or bad inputs.
    """
    if not isinstance(beam_size, (int, np.integer)) or isinstance(beam_size, bool):
        raise ValueError(f"beam_size must be an int >= 1, got {beam_size!r}")
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    if not isinstance(length_penalty, (int, float)) or not length_penalty >= 0:
        raise ValueError(f"length_penalty must be a number >= 0, got {length_penalty!r}")
    graphdef, state, source, lengths, max_len = _prepare(model, source, source_lengths, max_len)
    alpha = jnp.asarray(length_penalty, jnp.float32)
    return _beam(graphdef, state, source, lengths, alpha, beam_size=int(beam_size), max_len=max_len)


@partial(jax.jit, static_argnames=("graphdef", "beam_size", "max_len"))
def _beam(graphdef, state, source, lengths, alpha, *, beam_size, max_len):
    model = nnx.merge(graphdef, state)
    batch, k = source.shape[0], beam_size
    memory, carry = model.encode(source, lengths)
    # Row b's beams are rows b * k .. b * k + k - 1 of every decoder array.
    memory, carry = jax.tree.map(lambda x: jnp.repeat(x, k, axis=0), (memory, carry))
    vocab = model.target_vocab_size
    pad_only = jnp.where(jnp.arange(vocab) == PAD, 0.0, -jnp.inf)[None, None, :]

    def cond(loop):
        t, finished, scores = loop[0], loop[5], loop[4]
        # A beam at -inf is an unused slot (fewer hypotheses than beams so far).
        return (t < max_len) & ~jnp.all(finished | (scores == -jnp.inf))

    def body(loop):
        t, carry, prev, tokens, scores, finished, out_len = loop
        carry, logits, _ = model.decoder.step(carry, prev, memory)
        logp = _log_probs(logits).reshape(batch, k, vocab)
        logp = jnp.where(finished[:, :, None], pad_only, logp)
        cand = scores[:, :, None] + logp  # [B, k, V]
        new_len = out_len + (~finished).astype(jnp.int32)
        key = cand / length_penalty_factor(new_len, alpha)[:, :, None]
        _, idx = jax.lax.top_k(key.reshape(batch, k * vocab), k)
        beam, tok = idx // vocab, (idx % vocab).astype(jnp.int32)
        scores = jnp.take_along_axis(cand.reshape(batch, k * vocab), idx, axis=1)
        finished = jnp.take_along_axis(finished, beam, axis=1) | (tok == EOS)
        out_len = jnp.take_along_axis(new_len, beam, axis=1)
        tokens = jnp.take_along_axis(tokens, beam[:, :, None], axis=1).at[:, :, t].set(tok)
        rows = (jnp.arange(batch)[:, None] * k + beam).reshape(-1)
        carry = jax.tree.map(lambda x: x[rows], carry)
        return t + 1, carry, tok.reshape(-1), tokens, scores, finished, out_len

    first = jnp.where(jnp.arange(k) == 0, 0.0, -jnp.inf)  # one live beam: no duplicates
    init = (
        jnp.zeros((), jnp.int32),
        carry,
        jnp.full((batch * k,), BOS, jnp.int32),
        jnp.full((batch, k, max_len), PAD, jnp.int32),
        jnp.broadcast_to(first[None, :], (batch, k)),
        jnp.zeros((batch, k), bool),
        jnp.zeros((batch, k), jnp.int32),
    )
    _, _, _, tokens, scores, _, out_len = jax.lax.while_loop(cond, body, init)
    final = scores / length_penalty_factor(out_len, alpha)
    order = jnp.argsort(-final, axis=1)
    beams = jnp.take_along_axis(tokens, order[:, :, None], axis=1)
    final = jnp.take_along_axis(final, order, axis=1)
    out_len = jnp.take_along_axis(out_len, order, axis=1)
    return DecodeResult(beams[:, 0], out_len[:, 0], final[:, 0], None, beams, final)


def evaluate_decoding(
    model,
    split: dict,
    batch_size: int = 256,
    *,
    beam_size: int = 1,
    length_penalty: float = 0.0,
    max_len: int | None = None,
) -> dict[str, float]:
    """Free-running accuracy: decoded outputs (greedy, or beam search) against the targets.

    Unlike teacher-forced accuracy, each step reads the model's own previous output, so one early
    mistake spoils the rest: this is the accuracy a user of the model sees.

    Args:
      model: an `EncoderDecoder`.
      split: a seq2seq split (`source`, `source_lengths`, `targets`, `mask`).
      batch_size: rows decoded at once (the last batch is padded, then ignored).
      beam_size: 1 decodes greedily.
      length_penalty, max_len: as `beam_search`.

    Returns:
      `sequence_accuracy` (the whole output, EOS included, exactly right), `token_accuracy`
      (output tokens equal to the target at the target's steps, EOS included), `sequences` and
      `tokens` counted.
    """
    n = int(split["targets"].shape[0])
    seq_ok = tok_ok = tokens = 0
    for i in range(0, n, batch_size):
        rows = np.arange(i, min(i + batch_size, n))
        index = np.concatenate([rows, np.zeros(batch_size - len(rows), np.int64)])
        src, lens = split["source"][index], split["source_lengths"][index]
        if beam_size == 1:
            out = greedy_decode(model, src, lens, max_len=max_len)
        else:
            out = beam_search(
                model, src, lens, beam_size=beam_size, length_penalty=length_penalty,
                max_len=max_len,
            )  # fmt: skip
        pred = np.asarray(out.tokens)[: len(rows)]
        target, mask = split["targets"][rows], split["mask"][rows]
        width = max(pred.shape[1], target.shape[1])
        pred = np.pad(pred, ((0, 0), (0, width - pred.shape[1])))
        target = np.pad(target, ((0, 0), (0, width - target.shape[1])))
        mask = np.pad(mask, ((0, 0), (0, width - mask.shape[1])))
        equal = pred == target  # PAD after EOS must match too: no trailing output
        seq_ok += int(np.sum(np.all(equal, axis=1)))
        tok_ok += int(np.sum(equal & mask))
        tokens += int(np.sum(mask))
    return {
        "sequence_accuracy": seq_ok / max(n, 1),
        "token_accuracy": tok_ok / max(tokens, 1),
        "sequences": n,
        "tokens": tokens,
    }
