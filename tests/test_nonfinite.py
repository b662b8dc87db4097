"""Tests for seqlstm/train/nonfinite.py: NaN losses stop a run naming the step, or are skipped."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from smoke_runs import final_params, read_rows, smoke

from seqlstm.train import nonfinite, run, train_and_evaluate
from seqlstm.train.state import TrainState


def toy_step(state, batch):
    loss = jnp.sum(state.params["w"] * batch)
    grads = {"w": batch}
    new = state._replace(step=state.step + 1, params={"w": state.params["w"] - grads["w"]})
    new = new._replace(opt_state={"m": state.opt_state["m"] + 1.0})
    metrics = {"loss_sum": loss, "tokens": jnp.float32(3.0), "grad_norm": jnp.linalg.norm(batch)}
    return new, metrics


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_all_finite_finds_one_nonfinite_value_anywhere(dtype):
    # A faster float max-reduction was tried: XLA:CPU's vectorised max drops a NaN at index 0.
    # Huge finite values (3e38) pass.
    check = jax.jit(nonfinite.all_finite)
    steps = jnp.zeros((), jnp.int32)  # integer leaves are skipped
    for size in (1, 7, 4096 * 33 + 5):
        x = jnp.asarray(np.random.default_rng(size).normal(size=size) * 1e3, dtype)
        tree = {"w": x, "big": jnp.full((3, 5), 3e38, dtype)}
        assert bool(check((tree, steps)))
        for value in (np.nan, np.inf, -np.inf):
            for where in sorted({0, size // 3, size - 1}):
                bad = {"w": x.at[where].set(value), "big": tree["big"]}
                assert not bool(check((bad, steps))), (size, value, where)
    assert bool(check({"none": jnp.zeros((0,), dtype), "n": steps}))


def test_guard_passes_finite_steps_and_freezes_nonfinite_ones():
    state = TrainState(jnp.int32(4), {"w": jnp.ones(3)}, {"m": jnp.zeros(3)}, jnp.zeros(2))
    step = jax.jit(nonfinite.guard_nonfinite(toy_step))
    ok = jnp.array([1.0, 2.0, 3.0])
    new, m = step(state, ok)
    ref_new, ref_m = toy_step(state, ok)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), new, ref_new))
    assert float(m["nonfinite"]) == 0.0 and float(m["loss_sum"]) == float(ref_m["loss_sum"])
    for bad in (jnp.array([1.0, jnp.nan, 3.0]), jnp.array([jnp.inf, 0.0, 0.0])):
        new, m = step(state, bad)
        assert int(new.step) == 5  # the batch is consumed
        np.testing.assert_array_equal(new.params["w"], state.params["w"])
        np.testing.assert_array_equal(new.opt_state["m"], state.opt_state["m"])
        assert float(m["nonfinite"]) == 1.0
        assert float(m["loss_sum"]) == 0.0 and float(m["tokens"]) == 0.0


def test_nonfinite_steps_are_numbered_like_metrics_rows():
    metrics = [{"nonfinite": 0.0}, {"nonfinite": 1.0}, {"nonfinite": 0.0}, {"nonfinite": 1.0}]
    assert nonfinite.nonfinite_steps(metrics, last_step=10) == [8, 10]
    assert nonfinite.nonfinite_steps([], last_step=3) == []


def test_on_nan_is_checked_before_touching_the_workdir(tmp_path):
    with pytest.raises(ValueError, match=r"on_nan must be one of \('stop', 'skip'\), got 'ignore'"):
        train_and_evaluate(smoke(on_nan="ignore"), str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def poison_step_6(monkeypatch):
    """Makes the batch of step 6 (epoch 1, batch 1; 4 batches an epoch) hold a NaN input."""
    batches = run.train_batches

    def poisoned(split, batch_size, *, seed, epoch, start=0):
        for i, batch in batches(split, batch_size, seed=seed, epoch=epoch, start=start):
            if (epoch, i) == (1, 1):
                batch = dict(batch, inputs=batch["inputs"].copy())
                batch["inputs"][0, 0, 0] = np.nan
            yield i, batch

    monkeypatch.setattr(run, "train_batches", poisoned)


def test_nan_stops_naming_the_step_and_keeps_the_last_good_checkpoint(
    tmp_path, monkeypatch, capsys
):
    poison_step_6(monkeypatch)
    with pytest.raises(nonfinite.NonFiniteLossError, match="at step 6") as info:
        train_and_evaluate(smoke(checkpoint_every_steps=4), str(tmp_path))
    assert (info.value.step, info.value.checkpoint) == (6, 4)
    assert "last good checkpoint is step 4" in str(info.value) and "on_nan=skip" in str(info.value)
    assert os.listdir(tmp_path / "checkpoints") == ["4"]  # step 8 was not saved
    assert not (tmp_path / "results.json").exists()
    params, meta = final_params(tmp_path)
    assert all(np.isfinite(p).all() for p in params) and (meta["epoch"], meta["batch"]) == (1, 0)

    # Resuming with the skip policy (a resumable key) gets past the bad batch.
    capsys.readouterr()
    results = train_and_evaluate(smoke(on_nan="skip"), str(tmp_path))
    out = capsys.readouterr().out
    assert "Resuming" in out and "at step 4" in out and "Skipped step(s) [6]" in out
    rows = read_rows(tmp_path)
    assert [r.get("train_nonfinite_steps") for r in rows] == [None, 1.0, None]
    assert all(np.isfinite(r["train_loss"]) for r in rows)
    assert results["steps"] == 12 and np.isfinite(results["test"]["loss"])
    assert results["skipped_steps"] == 1
    assert all(np.isfinite(p).all() for p in final_params(tmp_path)[0])


def test_a_run_whose_every_step_is_skipped_fails_instead_of_reporting(tmp_path, monkeypatch):
    # It exited 0 and wrote the initial parameters' test metrics into results.json.
    batches = run.train_batches

    def poisoned(split, batch_size, *, seed, epoch, start=0):
        for i, batch in batches(split, batch_size, seed=seed, epoch=epoch, start=start):
            batch = dict(batch, inputs=batch["inputs"].copy())
            batch["inputs"][0, 0, 0] = np.inf
            yield i, batch

    monkeypatch.setattr(run, "train_batches", poisoned)
    with pytest.raises(nonfinite.NonFiniteLossError, match="Every one of the 12 training") as info:
        train_and_evaluate(smoke(on_nan="skip", checkpoint_every_steps=8), str(tmp_path))
    assert (info.value.step, info.value.cause) == (12, "every_step")
    assert "train.on_nan=skip" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "results.json").exists()
    assert os.listdir(tmp_path / "checkpoints") == ["8"]  # the end was not checkpointed
