"""Tests for seqlstm/decoding.py: greedy against teacher forcing, beam size 1 against greedy,
beam search and n-best lists against brute-force enumeration, ensembles against their members,
stopping at EOS, bad input."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from seqlstm.decoding import (
    _greedy,
    beam_search,
    greedy_decode,
    length_penalty_factor,
    n_best,
)
from seqlstm.seq2seq import EncoderDecoder
from seqlstm.tokens import BOS, EOS, FIRST_ID, PAD, pad_batch

SOURCES = [[3, 4, 5], [6], [], [7, 7, 3, 4, 5, 6]]


def make(seed=0, scale=1.0, **kwargs):
    kw = dict(source_vocab_size=8, target_vocab_size=6, hidden_size=8, max_source_len=6)
    kw.update(max_target_len=5, attention="general")
    kw.update(kwargs)
    model = EncoderDecoder(**kw, rngs=nnx.Rngs(seed))
    if scale != 1.0:  # peakier distributions: fewer near-ties between hypotheses
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        model = nnx.merge(graphdef, jax.tree.map(lambda p: p * scale, params), rest)
    return model


def source_batch():
    return pad_batch(SOURCES, 6, vocab_size=8)


def sequence_log_probs(model, source, lengths, hyps, max_len):
    """Teacher-forced log-probabilities `[batch, len(hyps)]` of every hypothesis (one forward)."""
    n, b = len(hyps), source.shape[0]
    target_in = np.full((n, max_len), PAD, np.int32)
    target_in[:, 0] = BOS
    outputs = np.full((n, max_len), PAD, np.int32)
    for i, hyp in enumerate(hyps):
        target_in[i, 1 : len(hyp)] = hyp[:-1]
        outputs[i, : len(hyp)] = hyp
    logits = model(np.repeat(source, n, 0), np.repeat(lengths, n), np.tile(target_in, (b, 1)))
    logp = np.asarray(jax.nn.log_softmax(logits, axis=-1)).reshape(b, n, max_len, -1)
    picked = np.take_along_axis(
        logp, np.broadcast_to(outputs[None, :, :, None], logp.shape[:3] + (1,)), -1
    )
    return (picked[..., 0] * (outputs != PAD)[None]).sum(-1)


@pytest.mark.parametrize(
    "kwargs", [dict(attention=None), dict(attention="additive"), dict(attention="location")]
)
def test_greedy_matches_teacher_forcing(kwargs):
    model = make(**kwargs)
    src, lens = source_batch()
    out = greedy_decode(model, src, lens)
    target_in = np.concatenate([np.full((4, 1), BOS), np.asarray(out.tokens[:, :-1])], axis=1)
    target_in = np.where(target_in == EOS, PAD, target_in).astype(np.int32)
    logits, weights = model(src, lens, target_in, return_attention=True)
    steps = np.arange(out.tokens.shape[1])[None, :] < np.asarray(out.lengths)[:, None]
    allowed = logits.at[:, :, :FIRST_ID].set(-jnp.inf).at[:, :, EOS].set(logits[:, :, EOS])
    np.testing.assert_array_equal(np.where(steps, np.argmax(allowed, -1), PAD), out.tokens)
    logp = np.take_along_axis(np.asarray(jax.nn.log_softmax(logits)), out.tokens[..., None], -1)
    np.testing.assert_allclose(out.scores, (logp[..., 0] * steps).sum(1), rtol=1e-5, atol=1e-5)
    if weights is not None:
        np.testing.assert_allclose(out.attention, weights * steps[..., None], atol=1e-6)


def test_stops_at_eos_and_pads_after():
    model = make(seed=3)
    src, lens = source_batch()
    out = greedy_decode(model, src, lens)
    for row, n in zip(np.asarray(out.tokens), np.asarray(out.lengths)):
        assert np.all(row[n:] == PAD)
        assert np.all(row[: n - 1] >= FIRST_ID)
        assert row[n - 1] == EOS or n == row.shape[0]
    # Rows that end early are not cut by the others: the loop runs until all are finished.
    assert np.all(np.isfinite(np.asarray(out.scores)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_size_one_equals_greedy(seed):
    model = make(seed=seed, attention="additive" if seed else None, bidirectional=seed == 2)
    src, lens = source_batch()
    greedy = greedy_decode(model, src, lens)
    beam = beam_search(model, src, lens, beam_size=1)
    np.testing.assert_array_equal(beam.tokens, greedy.tokens)
    np.testing.assert_array_equal(beam.lengths, greedy.lengths)
    np.testing.assert_allclose(beam.scores, greedy.scores, rtol=1e-6)


def all_hypotheses():
    """Target data ids {3, 4} and EOS, at most 3 steps: 1 + 2 + 4 + 8 = 15 hypotheses."""
    hyps = [[EOS]]
    for n in (1, 2):
        hyps += [list(p) + [EOS] for p in itertools.product((3, 4), repeat=n)]
    return hyps + [list(p) for p in itertools.product((3, 4), repeat=3)]  # cut at max_len


@pytest.mark.parametrize("alpha,attention", [(0.0, "general"), (1.5, "general"), (0.0, "location")])
def test_beam_search_finds_the_best_hypothesis(alpha, attention):
    # All 15 hypotheses fit a beam of 16, so beam search must return the exhaustive argmax.
    # Location-aware attention carries its previous weights: beams must reorder them with the
    # LSTM states.
    kw = dict(target_vocab_size=5, max_target_len=3, attention=attention)
    model = make(seed=4, scale=3.0, **kw)
    src, lens = source_batch()
    hyps = all_hypotheses()
    logp = sequence_log_probs(model, src, lens, hyps, 3)  # [B, H]
    lp = np.asarray(length_penalty_factor(jnp.array([len(h) for h in hyps]), alpha))
    brute = logp / lp[None, :]
    out = beam_search(model, src, lens, beam_size=16, length_penalty=alpha, max_len=3)
    for b in range(len(SOURCES)):
        best = int(np.argmax(brute[b]))
        expect = hyps[best] + [PAD] * (3 - len(hyps[best]))
        np.testing.assert_array_equal(out.tokens[b], expect)
        assert int(out.lengths[b]) == len(hyps[best])
        np.testing.assert_allclose(out.scores[b], brute[b, best], rtol=1e-5)
        # The 15 beams are the 15 hypotheses, ranked; the 16th slot is unused (-inf).
        np.testing.assert_allclose(out.beam_scores[b, :15], np.sort(brute[b])[::-1], rtol=1e-5)
        assert out.beam_scores[b, 15] == -np.inf
    # A narrow beam finds a hypothesis no better than the exhaustive one, and scores it right.
    narrow = beam_search(model, src, lens, beam_size=2, length_penalty=alpha, max_len=3)
    assert np.all(np.asarray(narrow.scores) <= brute.max(1) + 1e-5)


def test_decoding_is_compiled_once():
    model = make(seed=5)
    src, lens = source_batch()
    greedy_decode(model, src, lens)
    size = _greedy._cache_size()
    greedy_decode(model, src[::-1], lens[::-1])
    assert _greedy._cache_size() == size


def test_bad_input():
    model = make()
    src, lens = source_batch()
    for bad in (0, -1):
        with pytest.raises(ValueError, match="beam_size must be >= 1"):
            beam_search(model, src, lens, beam_size=bad)
    with pytest.raises(ValueError, match="beam_size must be an int"):
        beam_search(model, src, lens, beam_size=1.5)
    with pytest.raises(ValueError, match="length_penalty"):
        beam_search(model, src, lens, length_penalty=-0.5)
    with pytest.raises(ValueError, match="exceeds the model's max_target_len=5"):
        greedy_decode(model, src, lens, max_len=6)
    with pytest.raises(ValueError, match="max_len must be a positive int"):
        greedy_decode(model, src, lens, max_len=0)
    with pytest.raises(ValueError, match="max_source_len=6"):
        greedy_decode(model, np.full((1, 7), 3, np.int32), np.array([7]))
    with pytest.raises(ValueError, match="source holds id 8"):
        beam_search(model, np.full((1, 2), 8, np.int32), np.array([2]))


def assert_n_best_is_brute_force(got, brute, hyps, n):
    """`got` (n_best's lists) are the `n` best of the exhaustive scores `brute: [B, H]`."""
    for b, row in enumerate(got):
        order = np.argsort(-brute[b], kind="stable")[:n]
        assert [tokens for tokens, _ in row] == [strip_eos(hyps[i]) for i in order]
        np.testing.assert_allclose([s for _, s in row], brute[b, order], rtol=1e-5)


def strip_eos(hyp):
    return [t for t in hyp if t != EOS]


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_n_best_is_the_ranked_brute_force_list(alpha):
    model = make(seed=4, scale=3.0, target_vocab_size=5, max_target_len=3)
    src, lens = source_batch()
    hyps = all_hypotheses()
    lp = np.asarray(length_penalty_factor(jnp.array([len(h) for h in hyps]), alpha))
    brute = sequence_log_probs(model, src, lens, hyps, 3) / lp[None, :]
    got = n_best(model, src, lens, 5, beam_size=16, length_penalty=alpha)
    assert_n_best_is_brute_force(got, brute, hyps, 5)
    # More than there are hypotheses: all 15, no unused slot.
    assert [len(r) for r in n_best(model, src, lens, 16, length_penalty=alpha)] == [15] * 4
    # A beam of n: its list starts with beam search's best.
    narrow = n_best(model, src, lens, 2, length_penalty=alpha)
    best = beam_search(model, src, lens, beam_size=2, length_penalty=alpha)
    for row, tokens, score in zip(narrow, np.asarray(best.tokens), np.asarray(best.scores)):
        assert len(row) == 2 and row[0] == (strip_eos(tokens[tokens != PAD].tolist()), score)
        assert row[0][1] >= row[1][1]
    with pytest.raises(ValueError, match="beam_size=2 is below n=3"):
        n_best(model, src, lens, 3, beam_size=2)
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        n_best(model, src, lens, 0)


# The ensembles share the brute-force test's model shape, so they add two compilations only.
SMALL = dict(scale=3.0, target_vocab_size=5, max_target_len=3)


def test_ensemble_of_one_and_of_identical_models_equal_the_model():
    model, twin = make(seed=4, **SMALL), make(seed=4, **SMALL)  # equal parameters, two objects
    src, lens = source_batch()
    single = greedy_decode(model, src, lens)
    for ensemble in ([model], [model, twin]):
        out = greedy_decode(ensemble, src, lens)
        np.testing.assert_array_equal(out.tokens, single.tokens)
        np.testing.assert_allclose(out.scores, single.scores, rtol=1e-6)
        np.testing.assert_allclose(out.attention, single.attention, rtol=1e-6)
    beam = beam_search(model, src, lens, beam_size=16)
    out = beam_search([model, twin], src, lens, beam_size=16)
    np.testing.assert_array_equal(out.beams, beam.beams)
    np.testing.assert_allclose(out.beam_scores, beam.beam_scores, rtol=1e-6)


def test_ensemble_averages_the_members_log_probabilities():
    a, b = make(seed=7, **SMALL), make(seed=8, **SMALL)
    src, lens = source_batch()
    # The first step by hand: the mean of the members' log-softmax at BOS picks the token.
    bos = np.full((len(SOURCES), 1), BOS, np.int32)
    first = [np.asarray(jax.nn.log_softmax(m(src, lens, bos)[:, 0])) for m in (a, b)]
    mean = (first[0] + first[1]) / 2
    mean[:, :FIRST_ID] = np.where(np.arange(FIRST_ID) == EOS, mean[:, :FIRST_ID], -np.inf)
    out = greedy_decode([a, b], src, lens)
    np.testing.assert_array_equal(out.tokens[:, 0], np.argmax(mean, -1))
    # Whole hypotheses score the mean of the members' sequence log-probabilities, and the
    # exhaustive search over the ensemble ranks by it.
    hyps = all_hypotheses()
    brute = sum(sequence_log_probs(m, src, lens, hyps, 3) for m in (a, b)) / 2
    for row in range(len(SOURCES)):
        greedy = np.asarray(out.tokens[row, : out.lengths[row]]).tolist()
        np.testing.assert_allclose(out.scores[row], brute[row, hyps.index(greedy)], rtol=1e-5)
    assert_n_best_is_brute_force(n_best([a, b], src, lens, 4, beam_size=16), brute, hyps, 4)
    with pytest.raises(ValueError, match="target vocabularies of sizes"):
        greedy_decode([a, make(seed=9)], src, lens)
    with pytest.raises(ValueError, match="source vocabularies of sizes"):  # JAX would clamp ids
        greedy_decode([a, make(seed=9, **{**SMALL, "source_vocab_size": 9})], src, lens)
    with pytest.raises(ValueError, match="empty sequence"):
        greedy_decode([], src, lens)


def test_sequence_log_probs_scores_what_beam_search_finds():
    """Forced decoding (one teacher-forced pass) gives every n-best hypothesis its search score
    (length_penalty 0), for one model and for an ensemble, and a row with a reserved id -inf."""
    from seqlstm.decoding import sequence_log_probs as forced

    a, b = make(seed=7, **SMALL), make(seed=8, **SMALL)
    src, lens = source_batch()
    for model in (a, [a, b]):
        lists = n_best(model, src, lens, 4, beam_size=16)
        for rank in range(4):
            targets = [row[rank][0] for row in lists]
            np.testing.assert_allclose(
                forced(model, src, lens, targets), [row[rank][1] for row in lists], rtol=1e-5
            )
    assert forced(a, src, lens, [[3], [BOS], [], [4, 3]])[1] == -np.inf
    with pytest.raises(ValueError, match="targets holds 2 rows for a source batch of 4"):
        forced(a, src, lens, [[3], [4]])
    with pytest.raises(ValueError, match=r"targets\[3\] has 4 tokens; .* max_target_len = 3"):
        forced(a, src, lens, [[3], [4], [], [3, 4, 3, 4]])
