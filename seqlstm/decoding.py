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
hypotheses it is exhaustive search (both tested). `n_best` returns the final beams as lists.

**Ensembles.** Every function takes one model or a sequence of models (say, runs of different
seeds) with the same target vocabulary. An ensemble decodes as one model whose per-step
log-probabilities are the mean of its members' (each member keeps its own decoder state and reads
the shared previous token), so a hypothesis scores the mean of the members' log-probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from seqlstm.data.batching import fixed_batches
from seqlstm.tokens import BOS, EOS, FIRST_ID, PAD, strip


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


def _members(model) -> list:
    """The models of `model`: itself, or the members of an ensemble (a non-empty sequence)."""
    if not isinstance(model, Sequence):
        return [model]
    models = list(model)
    if not models:
        raise ValueError("model is an empty sequence; give a model or a list of models")
    for side in ("source", "target"):
        vocab = {int(getattr(m, f"{side}_vocab_size")) for m in models}
        if len(vocab) > 1:
            raise ValueError(
                f"the ensemble's models have {side} vocabularies of sizes {sorted(vocab)}; an "
                "ensemble reads one source and averages log-probabilities over one target "
                "vocabulary"
            )
    return models


def _prepare(model, source, source_lengths, max_len):
    """Validates in Python and splits the model(s) (in evaluation mode) for the jitted loop:
    `(graphdefs, states, source, lengths, max_len)`, one graphdef and state per member."""
    models = _members(model)
    limit = min(m.max_target_len for m in models)
    if max_len is None:
        max_len = limit
    if not isinstance(max_len, (int, np.integer)) or isinstance(max_len, bool) or max_len <= 0:
        raise ValueError(f"max_len must be a positive int, got {max_len!r}")
    if max_len > limit:
        raise ValueError(f"max_len={max_len} exceeds the model's max_target_len={limit}")
    source = jnp.asarray(source)
    source_lengths = jnp.asarray(source_lengths)
    graphdefs, states = [], []
    for m in models:
        m.check_inputs(source, source_lengths)
        graphdef, state = nnx.split(nnx.view(m, deterministic=True, raise_if_not_found=False))
        graphdefs.append(graphdef)
        states.append(state)
    return tuple(graphdefs), tuple(states), source, source_lengths.astype(jnp.int32), int(max_len)


def _encode(graphdefs, states, source, lengths):
    """Merges the members and encodes: `(models, memories, carries)`, one of each per member."""
    models = [nnx.merge(g, s) for g, s in zip(graphdefs, states)]
    encoded = [m.encode(source, lengths) for m in models]
    return models, tuple(e[0] for e in encoded), tuple(e[1] for e in encoded)


def _step(models, carries, prev, memories):
    """One decoder step of every member: `(carries, log_probs, attention weights)`, the
    log-probabilities (`_log_probs`) and weights averaged over the members (weights None unless
    every member attends)."""
    out = [m.decoder.step(c, prev, mem) for m, c, mem in zip(models, carries, memories)]
    carries = tuple(o[0] for o in out)
    if len(out) == 1:  # one model: its own values, bit for bit
        return carries, _log_probs(out[0][1]), out[0][2]
    logp = sum(_log_probs(o[1]) for o in out) / len(out)
    weights = None if any(o[2] is None for o in out) else sum(o[2] for o in out) / len(out)
    return carries, logp, weights


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
      model: an `EncoderDecoder` (decoded in evaluation mode), or a sequence of them (an
        ensemble, module docstring).
      source: `int[batch, S]`, right-padded.
      source_lengths: `int[batch]`; an empty source (length 0) decodes from the bridge of zero
        states with a zero attention context.
      max_len: decoder steps (default and maximum: the model's `max_target_len`).

    Returns:
      A `DecodeResult` (no beams); an ensemble's attention is its members' mean, or None unless
      every member attends.
    """
    graphdefs, states, source, lengths, max_len = _prepare(model, source, source_lengths, max_len)
    return _greedy(graphdefs, states, source, lengths, max_len=max_len)


@partial(jax.jit, static_argnames=("graphdefs", "max_len"))
def _greedy(graphdefs, states, source, lengths, *, max_len):
    models, memory, carry = _encode(graphdefs, states, source, lengths)
    batch, src = source.shape
    with_attention = all(m.attention for m in models)

    def cond(loop):
        return (loop[0] < max_len) & ~jnp.all(loop[4])

    def body(loop):
        t, carry, prev, tokens, finished, out_len, score, attn = loop
        carry, logp, weights = _step(models, carry, prev, memory)
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
      model: an `EncoderDecoder` (decoded in evaluation mode), or a sequence of them (an
        ensemble, module docstring).
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
    graphdefs, states, source, lengths, max_len = _prepare(model, source, source_lengths, max_len)
    alpha = jnp.asarray(length_penalty, jnp.float32)
    return _beam(
        graphdefs, states, source, lengths, alpha, beam_size=int(beam_size), max_len=max_len
    )


@partial(jax.jit, static_argnames=("graphdefs", "beam_size", "max_len"))
def _beam(graphdefs, states, source, lengths, alpha, *, beam_size, max_len):
    models, memory, carry = _encode(graphdefs, states, source, lengths)
    batch, k = source.shape[0], beam_size
    # Row b's beams are rows b * k .. b * k + k - 1 of every decoder array.
    memory, carry = jax.tree.map(lambda x: jnp.repeat(x, k, axis=0), (memory, carry))
    vocab = models[0].target_vocab_size
    pad_only = jnp.where(jnp.arange(vocab) == PAD, 0.0, -jnp.inf)[None, None, :]

    def cond(loop):
        t, finished, scores = loop[0], loop[5], loop[4]
        # A beam at -inf is an unused slot (fewer hypotheses than beams so far).
        return (t < max_len) & ~jnp.all(finished | (scores == -jnp.inf))

    def body(loop):
        t, carry, prev, tokens, scores, finished, out_len = loop
        carry, logp, _ = _step(models, carry, prev, memory)
        logp = logp.reshape(batch, k, vocab)
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


def n_best(
    model,
    source: jax.Array,
    source_lengths: jax.Array,
    n: int,
    *,
    beam_size: int | None = None,
    length_penalty: float = 0.0,
    max_len: int | None = None,
) -> list[list[tuple[list[int], float]]]:
    """The `n` best hypotheses of every row, best first, from beam search's final beams.

    Args:
      model: an `EncoderDecoder`, or a sequence of them (an ensemble).
      source: `int[batch, S]`, right-padded.
      source_lengths: `int[batch]`.
      n: hypotheses per row, at least 1.
      beam_size: the search's width, at least `n` (default `n`). With a beam wider than the
        number of possible hypotheses the lists are exact (`beam_search`).
      length_penalty, max_len: as `beam_search`.

    Returns:
      Per row, up to `n` pairs `(tokens, score)`: the data tokens (`seqlstm.tokens.strip`: before
      EOS, without reserved ids) and the length-penalised score; fewer when the search found
      fewer hypotheses than `n`.

    Raises:
      ValueError: for `n < 1` or a `beam_size` below `n`, and as `beam_search`.
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    width = n if beam_size is None else beam_size
    if isinstance(width, (int, np.integer)) and width < n:
        raise ValueError(f"beam_size={width} is below n={n}; a search keeps at most its width")
    out = beam_search(
        model, source, source_lengths, beam_size=width, length_penalty=length_penalty,
        max_len=max_len,
    )  # fmt: skip
    beams, scores = np.asarray(out.beams), np.asarray(out.beam_scores)
    return [
        [(strip(beams[b, i]), float(scores[b, i])) for i in range(n) if scores[b, i] > -np.inf]
        for b in range(beams.shape[0])
    ]


def sequence_log_probs(
    model,
    source: jax.Array,
    source_lengths: jax.Array,
    targets: Sequence[Sequence[int]],
) -> np.ndarray:
    """The log-probability of given outputs (n-best rescoring, forced decoding): per row, the sum
    of the per-step log-probabilities of its tokens and of EOS after them, teacher-forced (a row
    of `max_target_len` tokens is a hypothesis cut at the limit: no EOS). For a hypothesis beam
    search finds, it is the search's score with `length_penalty=0`; an ensemble scores the mean of
    its members' per-step log-probabilities, as the search does.

    Args:
      model: an `EncoderDecoder`, or a sequence of them (an ensemble).
      source: `int[batch, S]`, right-padded.
      source_lengths: `int[batch]`.
      targets: per row, its data tokens (no BOS or EOS; `n_best` gives them so), at most
        `max_target_len` of them.

    Returns:
      `float32[batch]`; `-inf` for a row holding a reserved id (PAD or BOS, never an output).

    Raises:
      ValueError: a `targets` of another batch size, a row too long, or bad inputs.
    """
    graphdefs, states, source, lengths, max_len = _prepare(model, source, source_lengths, None)
    if len(targets) != source.shape[0]:
        raise ValueError(
            f"targets holds {len(targets)} rows for a source batch of {source.shape[0]}"
        )
    target_in = np.full((len(targets), max_len), PAD, np.int32)
    target_out = np.full((len(targets), max_len), PAD, np.int32)
    target_in[:, 0] = BOS
    for i, row in enumerate(targets):
        row = [int(t) for t in row]
        if len(row) > max_len:
            raise ValueError(
                f"targets[{i}] has {len(row)} tokens; the model decodes at most "
                f"max_target_len = {max_len}"
            )
        target_in[i, 1 : len(row) + 1] = row[: max_len - 1]
        target_out[i, : len(row) + 1] = [*row, EOS][:max_len]
    steps = np.array([min(len(row) + 1, max_len) for row in targets], np.int32)
    return np.asarray(
        _forced(graphdefs, states, source, lengths, jnp.asarray(target_in),
                jnp.asarray(target_out), jnp.asarray(steps))
    )  # fmt: skip


@partial(jax.jit, static_argnames=("graphdefs",))
def _forced(graphdefs, states, source, lengths, target_in, target_out, steps):
    models = [nnx.merge(g, s) for g, s in zip(graphdefs, states)]
    logp = sum(_log_probs(m(source, lengths, target_in)) for m in models) / len(models)
    picked = jnp.take_along_axis(logp, target_out[..., None], axis=-1)[..., 0]
    mask = jnp.arange(target_out.shape[1])[None, :] < steps[:, None]
    return jnp.sum(jnp.where(mask, picked, 0.0), axis=1)


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
      model: an `EncoderDecoder`, or a sequence of them (an ensemble).
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
    for rows, index in fixed_batches(n, batch_size):
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
