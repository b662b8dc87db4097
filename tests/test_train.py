"""Tests for seqlstm/train: pure jitted steps, masked metrics, the resumable loop, bad input."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs.reverse import get_config
from seqlstm.data import train_batches
from seqlstm.train import (
    Checkpointer,
    build,
    create_train_state,
    loop,
    make_optimizer,
    make_train_step,
    masked_cross_entropy,
    masked_sums,
    split_model,
    train_and_evaluate,
)


def smoke(**overrides):
    config = get_config("smoke")
    config.train.progress_bar = False
    for key, value in overrides.items():
        section, name = key.split("__")
        config[section][name] = value
    return config


def final_params(workdir):
    """The parameters of the latest checkpoint in `workdir`, as numpy arrays."""
    config = get_config("smoke")
    _, model, tx = build(config)
    _, params = split_model(model)
    state = create_train_state(params, tx, 0)
    ckpt = Checkpointer(str(workdir))
    try:
        state, best, meta = ckpt.restore(state, params)
    finally:
        ckpt.close()
    return jax.tree.map(np.asarray, (state.params, state.opt_state)), meta


def assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)


def read_rows(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


# --- steps ------------------------------------------------------------------------------------


def test_masked_sums_by_hand():
    # Two rows of two steps; row 1 has one valid step. Class 1 wins where logits[..., 1] = 2.
    logits = jnp.array([[[0.0, 2.0], [2.0, 0.0]], [[0.0, 2.0], [0.0, 2.0]]])
    targets = jnp.array([[1, 1], [1, 0]])
    mask = jnp.array([[True, True], [True, False]])
    s = jax.device_get(masked_sums(logits, targets, mask))
    lo, hi = np.log1p(np.exp(-2.0)), 2.0 + np.log1p(np.exp(-2.0))  # -log softmax
    np.testing.assert_allclose(s["loss_sum"], lo + hi + lo, rtol=1e-6)
    assert (s["tokens"], s["token_correct"]) == (3.0, 2.0)
    assert (s["sequences"], s["seq_correct"]) == (2.0, 1.0)  # row 1's padded miss does not count
    np.testing.assert_array_equal(s["position_correct"], [2.0, 0.0])
    np.testing.assert_array_equal(s["position_tokens"], [2.0, 1.0])
    np.testing.assert_allclose(
        masked_cross_entropy(logits, targets, mask), (2 * lo + hi) / 3, rtol=1e-6
    )


@pytest.fixture(scope="module")
def step_setup():
    config = smoke()
    data, model, tx = build(config)
    model_def, params = split_model(model)
    state = create_train_state(params, tx, config.seed)
    _, batch = next(train_batches(data["train"], 32, seed=0, epoch=0))
    return model_def, tx, state, batch


def test_one_train_step_on_smoke_preset_without_recompiling(step_setup):
    model_def, tx, state, batch = step_setup
    traces = []
    pure = make_train_step(model_def, tx)
    step = jax.jit(lambda s, b: (traces.append(1), pure(s, b))[1])
    new, metrics = step(state, batch)
    loss = float(metrics["loss_sum"] / metrics["tokens"])
    assert np.isfinite(loss) and 2.0 < loss < 2.6  # about log(10) at initialisation
    assert float(metrics["grad_norm"]) > 0 and int(new.step) == 1
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), state.params, new.params)
    assert all(jax.tree.leaves(changed))
    newer, _ = step(new, batch)
    assert int(newer.step) == 2
    assert len(traces) == 1 and step._cache_size() == 1


def test_padded_rows_change_neither_loss_nor_gradient(step_setup):
    model_def, tx, state, batch = step_setup
    step = jax.jit(make_train_step(model_def, tx))
    padded = {k: v.copy() for k, v in batch.items()}
    padded["mask"][20:] = False
    padded["inputs"][20:] = 0.0
    other = {k: v.copy() for k, v in padded.items()}
    other["inputs"][20:, :, 3] = 1.0  # different garbage in the padding rows
    other["targets"][20:] = 7
    (s1, m1), (s2, m2) = step(state, padded), step(state, other)
    assert m1["tokens"] == 20 * 4 and m1["sequences"] == 20
    np.testing.assert_allclose(m1["loss_sum"], m2["loss_sum"], rtol=1e-6)
    for a, b in zip(jax.tree.leaves(s1.params), jax.tree.leaves(s2.params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


# --- the loop ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("smoke"))
    return workdir, train_and_evaluate(smoke(), workdir)


def test_smoke_run_leaves_a_complete_workdir(smoke_run):
    workdir, results = smoke_run
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["model"]["name"] == "state_seq"
    rows = read_rows(workdir)
    assert [r["step"] for r in rows] == [4, 8, 12]  # 128 sequences / 32 per batch, 3 epochs
    for key in (
        "epoch",
        "train_loss",
        "train_token_accuracy",
        "train_sequence_accuracy",
        "train_grad_norm",
        "train_param_norm",
        "eval_loss",
        "eval_token_accuracy",
        "eval_sequence_accuracy",
        "steps_per_sec",
    ):
        assert all(np.isfinite(r[key]) for r in rows), key
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(workdir))
    assert os.listdir(os.path.join(workdir, "checkpoints")) == ["12"]
    with open(os.path.join(workdir, "results.json")) as f:
        assert json.load(f) == results
    test = results["test"]
    assert len(test["position_accuracy"]) == 4 and 0 <= test["token_accuracy"] <= 1
    assert results["steps"] == 12 and results["epochs"] == 3


def test_running_a_finished_workdir_again_only_reevaluates(smoke_run):
    workdir, results = smoke_run
    rows = read_rows(workdir)
    assert train_and_evaluate(smoke(), workdir) == results
    assert read_rows(workdir) == rows


def test_interrupted_and_resumed_run_ends_with_identical_parameters(smoke_run, tmp_path):
    reference, _ = smoke_run
    # Stops before the first evaluation, mid-epoch after it, and at an epoch end (4 steps/epoch).
    for stop_after in (2, 5, 8):
        out = train_and_evaluate(smoke(train__stop_after_steps=stop_after), str(tmp_path))
        assert out == {"interrupted": True, "step": stop_after}
        (params, _), meta = final_params(tmp_path)
        assert (meta["epoch"], meta["batch"]) == divmod(stop_after, 4) and not meta["done"]
    train_and_evaluate(smoke(), str(tmp_path))
    assert_trees_equal(final_params(tmp_path)[0], final_params(reference)[0])
    strip = lambda rows: [{k: v for k, v in r.items() if k != "steps_per_sec"} for r in rows]
    assert strip(read_rows(tmp_path)) == strip(read_rows(reference))


def test_crash_resumes_from_last_checkpoint_with_identical_parameters(
    smoke_run, tmp_path, monkeypatch
):
    reference, _ = smoke_run
    calls = []
    evaluate = loop.evaluate

    def crash_on_second_eval(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("injected crash")
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(loop, "evaluate", crash_on_second_eval)
    with pytest.raises(RuntimeError, match="injected crash"):
        train_and_evaluate(smoke(train__checkpoint_every_steps=3), str(tmp_path))
    assert Checkpointer(str(tmp_path)).latest_step() == 6  # the crash came at step 8
    monkeypatch.setattr(loop, "evaluate", evaluate)
    train_and_evaluate(smoke(), str(tmp_path))
    assert_trees_equal(final_params(tmp_path)[0], final_params(reference)[0])


def test_early_stopping_restores_the_best_parameters(tmp_path):
    # A huge learning rate makes validation loss worse after the first epoch.
    config = smoke(optim__learning_rate=3.0, train__patience=1, train__num_epochs=10)
    results = train_and_evaluate(config, str(tmp_path))
    rows = read_rows(tmp_path)
    best = min(rows, key=lambda r: r["eval_loss"])
    assert results["stopped_early"] and results["best_step"] == best["step"]
    assert rows[-1]["step"] < 40
    np.testing.assert_allclose(results["val"]["loss"], best["eval_loss"], rtol=1e-6)


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(train__batch_size=0), "train.batch_size must be a positive int, got 0"),
        (dict(train__batch_size=-32), "train.batch_size must be a positive int"),
        (dict(eval__batch_size=0), "eval.batch_size must be a positive int"),
        (dict(data__length=0), "length must be a positive int, got 0"),
        (dict(data__length=-4), "length must be a positive int"),
        (dict(model__name="seq2seq"), "unknown model 'seq2seq'"),
        (dict(optim__name="adagrad"), "unknown optimizer 'adagrad'"),
        (dict(optim__learning_rate=0.0), "learning_rate must be a positive number"),
        (dict(train__num_epochs=0), "num_epochs or config.train.num_steps must be positive"),
        (
            dict(train__batch_size=100_000_000),
            r"batch_size=100000000 is larger than the training split \(128 examples",
        ),
        (
            dict(model__name="encoder_decoder"),
            r"reads batch fields \['source', 'source_lengths', 'target_in'\] but data task "
            r"'reverse'.*has no \['source'",
        ),
    ],
)
def test_bad_config_fails_before_touching_the_workdir(tmp_path, overrides, match):
    workdir = tmp_path / "run"
    with pytest.raises(ValueError, match=match):
        train_and_evaluate(smoke(**overrides), str(workdir))
    assert not workdir.exists()


def test_incompatible_workdir_is_refused_and_left_intact(smoke_run):
    workdir, _ = smoke_run

    def snapshot():
        files = {}
        for root, _, names in os.walk(workdir):
            for name in names:
                with open(os.path.join(root, name), "rb") as f:
                    files[os.path.relpath(os.path.join(root, name), workdir)] = f.read()
        return files

    before = snapshot()
    for overrides, key in [
        (dict(model__hidden_size=8), "model.hidden_size: 16 -> 8"),
        (dict(model__name="stacked_seq"), "model.name: 'state_seq' -> 'stacked_seq'"),
        (dict(data__num_train=320), "data.num_train: 160 -> 320"),
        (dict(optim__learning_rate=0.01), "optim.learning_rate"),
    ]:
        with pytest.raises(ValueError, match="holds a run with a different config") as info:
            train_and_evaluate(smoke(**overrides), workdir)
        assert key in str(info.value)
    assert snapshot() == before


def test_checkpoints_without_config_are_refused(smoke_run, tmp_path):
    workdir, _ = smoke_run
    foreign = tmp_path / "foreign"
    os.makedirs(foreign / "checkpoints" / "7")
    with pytest.raises(ValueError, match="has checkpoints but no config.json"):
        train_and_evaluate(smoke(), str(foreign))
    assert os.listdir(foreign / "checkpoints") == ["7"]


def test_optimizer_factory():
    params = {"w": jnp.ones((3,))}
    grads = {"w": jnp.array([1.0, -2.0, 0.5])}
    for name in ("adam", "adamw", "rmsprop", "sgd"):
        tx = make_optimizer({"name": name, "learning_rate": 0.1, "grad_clip_norm": 1.0})
        updates, _ = tx.update(grads, tx.init(params), params)
        assert np.all(np.isfinite(updates["w"])) and np.any(updates["w"] != 0)
    keras_adam = make_optimizer({"name": "adam"})
    updates, _ = keras_adam.update(grads, keras_adam.init(params), params)
    expected, _ = optax.adam(1e-3, eps=1e-7).update(grads, optax.adam(1e-3).init(params))
    np.testing.assert_allclose(updates["w"], expected["w"])
