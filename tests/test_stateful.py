"""Stateful training (seqlstm/models/stateful.py, seqlstm/data/streams.py): the carried state
against a plain LSTM over the joined windows, resets, stream batches, exact resume."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import char_lm
from seqlstm.data.streams import document_windows, stream_batches, stream_steps_per_epoch
from seqlstm.models import StackedCharLM, StatefulCharLM
from seqlstm.tasks.text import make_text_task
from seqlstm.train import Checkpointer, build, build_run, split_model, train_and_evaluate
from seqlstm.train.state import create_train_state


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """24 small Python-like files (a document split)."""
    root = tmp_path_factory.mktemp("corpus")
    for i in range(24):
        body = "".join(f"def f{i}_{j}(x):\n    return x + {j}\n\n" for j in range(4 + i % 5))
        (root / f"m{i:02d}.py").write_text(body)
    return str(root)


def smoke(corpus, preset="stateful,smoke", **train):
    config = char_lm.get_config(preset)
    config.data.path = corpus
    config.data.vocab_size = 40
    config.train.progress_bar = False
    config.train.update(train)
    return config


# --- data: document windows and stream batches ------------------------------------------------


def test_document_windows_by_hand():
    ids = np.arange(1, 11, dtype=np.int32)  # documents [1..5], [6, 7], [8], [9, 10]
    w = document_windows(ids, np.array([0, 5, 7, 8]), 3)
    # [8] has nothing to predict and is left out; a window never crosses a document.
    np.testing.assert_array_equal(w["inputs"], [[1, 2, 3], [4, 5, 0], [6, 7, 0], [9, 10, 0]])
    targets = np.where(w["mask"], w["targets"], 0)  # masked steps may read the next document
    np.testing.assert_array_equal(targets, [[2, 3, 4], [5, 0, 0], [7, 0, 0], [10, 0, 0]])
    np.testing.assert_array_equal(w["mask"], [[1, 1, 1], [1, 0, 0], [1, 0, 0], [1, 0, 0]])
    np.testing.assert_array_equal(w["reset"], [True, False, True, True])
    with pytest.raises(ValueError, match="ascend strictly from 0"):
        document_windows(ids, np.array([1, 5]), 3)


def test_stream_rows_continue_from_batch_to_batch_and_reset_at_documents():
    starts = np.array([0, 50, 53, 130, 131, 200, 260])
    w = document_windows(np.arange(1, 301, dtype=np.int32), starts, 4)
    n, batch = w["reset"].shape[0], 5
    doc_of = np.cumsum(w["reset"]) - 1
    batches = list(stream_batches(w, batch, seed=1, epoch=2))
    assert len(batches) == stream_steps_per_epoch(w, batch) == n // batch
    seen = np.concatenate([b["inputs"][:, 0] for _, b in batches])
    assert len(set(seen.tolist()) - {0}) == n // batch * batch  # no window twice
    assert batches[0][1]["reset"].all()
    first_input = {int(v): i for i, v in enumerate(w["inputs"][:, 0])}  # windows start uniquely
    for (_, a), (_, b) in zip(batches, batches[1:]):
        ia = np.array([first_input[int(v)] for v in a["inputs"][:, 0]])
        ib = np.array([first_input[int(v)] for v in b["inputs"][:, 0]])
        # Each row reads the next window of its document, or the first of another one.
        same_doc = doc_of[ia] == doc_of[ib]
        np.testing.assert_array_equal(b["reset"], ~same_doc)
        np.testing.assert_array_equal(ib[same_doc], ia[same_doc] + 1)
    # A function of (seed, epoch): resuming at batch 3 gives the same batches.
    tail = list(stream_batches(w, batch, seed=1, epoch=2, start=3))
    for (i, a), (j, b) in zip(batches[3:], tail, strict=True):
        assert i == j and all(np.array_equal(a[k], b[k]) for k in a)
    other = next(stream_batches(w, batch, seed=1, epoch=3))[1]
    assert not np.array_equal(other["inputs"], batches[0][1]["inputs"])


# --- the model: the carried state against a plain LSTM over the joined windows ----------------


def test_carried_state_continues_exactly_as_one_long_sequence_and_reset_zeroes_it():
    kw = dict(vocab_size=11, embed_dim=4, num_layers=2, units=5)
    stateful = StatefulCharLM(batch_size=2, rngs=nnx.Rngs(0), **kw)
    plain = StackedCharLM(rngs=nnx.Rngs(0), **kw)
    model_def, params = split_model(stateful)
    x = jax.random.randint(jax.random.PRNGKey(1), (2, 14), 0, 11)
    w1, w2 = x[:, :7], x[:, 7:]
    step = jax.jit(lambda carry, batch: model_def.train_batch(params, carry, batch))
    _, carry = step(model_def.carry, {"inputs": w1, "reset": jnp.array([True, True])})
    assert jax.tree.leaves(carry)[0].shape == (2, 2, 5)
    logits, _ = step(carry, {"inputs": w2, "reset": jnp.array([False, True])})
    whole, alone = nnx.jit(lambda m, a, b: (m(a), m(b)))(plain, x, w2)
    # Row 0 carried the state of window 1: window 2 continues the long sequence exactly.
    np.testing.assert_allclose(logits[0], whole[0, 7:], rtol=1e-6, atol=1e-6)
    assert not np.allclose(logits[0], alone[0], atol=1e-3)
    # Row 1 was reset: window 2 alone, from zeros.
    np.testing.assert_allclose(logits[1], alone[1], rtol=1e-6, atol=1e-6)
    # Evaluation mode is the plain model: any number of rows, no carried state.
    evaluated = model_def.apply(params, x[:1], train=False)
    np.testing.assert_allclose(evaluated, whole[:1], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m: m(jnp.zeros((3, 4), jnp.int32), jnp.zeros(3, bool)), r"3 rows.*batch_size=2"),
        (lambda m: m(jnp.zeros((2, 4), jnp.int32)), r"reset must be bool\[2\].*got None"),
        (lambda m: m(jnp.zeros((2, 4), jnp.int32), jnp.zeros(2, jnp.int32)), "reset must be"),
    ],
)
def test_bad_calls_in_training_mode_name_the_argument(call, match):
    model = StatefulCharLM(batch_size=2, vocab_size=5, units=3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=match):
        call(model)
    with pytest.raises(ValueError, match="model.batch_size must be a positive int, got 0"):
        StatefulCharLM(batch_size=0, vocab_size=5, units=3, rngs=nnx.Rngs(0))


@pytest.mark.parametrize(
    "section, key, value, match",
    [
        ("data", "targets", "next", "data.stream=True .* data.targets='every'"),
        ("data", "stride", 8, "data.stride equal to data.context=16 .got 8"),
        ("train", "buckets", (8, 16), "config.train.buckets=.* orders its own training batches"),
    ],
)
def test_bad_stateful_config_is_a_value_error_naming_the_key(corpus, section, key, value, match):
    config = smoke(corpus)
    config[section][key] = value
    with pytest.raises(ValueError, match=match):
        build_run(config)


def test_stream_must_be_a_bool(corpus):
    with pytest.raises(ValueError, match="data.stream must be True or False, got 'yes'"):
        make_text_task(path=corpus, context=8, stride=8, targets="every", stream="yes")


# --- training: exact resume with the carried state in the checkpoint --------------------------


def saved(workdir, config):
    _, model, tx = build(config)
    model_def, params = split_model(model)
    ckpt = Checkpointer(str(workdir))
    try:
        state, _, meta = ckpt.restore(create_train_state(params, tx, 0, model_def.carry), params)
    finally:
        ckpt.close()
    return state, meta


def test_stop_and_resume_mid_epoch_ends_bit_identical_with_the_carried_state(corpus, tmp_path):
    config = smoke(corpus, num_steps=6)
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    expected = train_and_evaluate(config, str(reference))
    stopped = train_and_evaluate(smoke(corpus, num_steps=6, stop_after_steps=3), str(resumed))
    assert stopped == {"interrupted": True, "step": 3}
    state, meta = saved(resumed, config)
    assert meta["epoch"] == 0 and meta["batch"] == 3  # mid-epoch
    assert float(jnp.abs(state.carry["carry_h"][...]).max()) > 0  # a real state was saved
    assert train_and_evaluate(config, str(resumed)) == expected
    a, b = saved(reference, config)[0], saved(resumed, config)[0]
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_a_plain_model_checkpoint_holds_no_carried_state(corpus, tmp_path):
    config = smoke(corpus, preset="smoke", num_steps=1)
    train_and_evaluate(config, str(tmp_path))
    with open(os.path.join(tmp_path, "checkpoints", "1", "state", "_METADATA")) as f:
        assert '"carry' not in f.read()
    state, _ = saved(tmp_path, config)
    assert not jax.tree.leaves(state.carry)
