"""Tests for seqlstm/train/losses.py: label smoothing against optax's smoothed one-hot labels, and
the train step's gradient with it (masked rows ignored, the logged loss still the NLL)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs.reverse import get_config
from seqlstm.data import train_batches
from seqlstm.train import build, create_train_state, make_train_step, split_model
from seqlstm.train.losses import smoothed_cross_entropy


def optax_smoothed(logits, targets, smoothing):
    labels = optax.smooth_labels(jax.nn.one_hot(targets, logits.shape[-1]), smoothing)
    return optax.softmax_cross_entropy(logits, labels)


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.5])
def test_smoothed_cross_entropy_equals_optax(smoothing):
    logits = jax.random.normal(jax.random.key(0), (3, 4, 5)) * 3.0
    targets = jnp.array([[0, 1, 2, 4], [4, 3, 2, 1], [1, 1, 0, 0]])
    got = smoothed_cross_entropy(logits, targets, smoothing)
    np.testing.assert_allclose(got, optax_smoothed(logits, targets, smoothing), rtol=1e-6)
    if smoothing == 0.0:  # the plain NLL
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
        np.testing.assert_allclose(got, nll, rtol=1e-6)


def test_benchmark_torch_loss_is_the_same_objective():
    """benchmarks/torch_models.py's loss (PyTorch's `label_smoothing`) is ours, masked alike."""
    torch = pytest.importorskip("torch")
    from benchmarks.torch_models import masked_cross_entropy

    logits = jax.random.normal(jax.random.key(1), (3, 4, 5)) * 3.0
    targets = jnp.array([[0, 1, 2, 4], [4, 3, 2, 1], [1, 1, 0, 0]])
    mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]], bool)
    ours = smoothed_cross_entropy(logits, targets, 0.1)
    want = float(np.sum(np.asarray(ours) * mask) / mask.sum())
    got = masked_cross_entropy(
        torch.tensor(np.asarray(logits)),
        torch.tensor(np.asarray(targets), dtype=torch.long),
        torch.tensor(mask),
        0.1,
    )
    assert float(got) == pytest.approx(want, rel=1e-6)


def test_smoothed_cross_entropy_by_hand():
    # Two classes, logits (0, 0): log p = log 1/2 for both, so the loss is log 2 at any smoothing.
    # Logits (0, log 3): p = (1/4, 3/4); target 1 with smoothing 0.5: q = (1/4, 3/4).
    got = smoothed_cross_entropy(
        jnp.array([[0.0, 0.0], [0.0, np.log(3.0)]]), jnp.array([0, 1]), 0.5
    )
    entropy = -(0.25 * np.log(0.25) + 0.75 * np.log(0.75))
    np.testing.assert_allclose(got, [np.log(2.0), entropy], rtol=1e-6)


def test_bad_smoothing():
    for bad in (-0.1, 1.0, "0.1"):
        with pytest.raises(ValueError, match="smoothing"):
            smoothed_cross_entropy(jnp.zeros((1, 2)), jnp.zeros((1,), jnp.int32), bad)
    config = get_config("smoke")
    config.train.label_smoothing = 1.5
    with pytest.raises(ValueError, match=r"config.train.label_smoothing must be in \[0, 1\)"):
        build(config)


def test_train_step_descends_the_smoothed_loss_of_unmasked_steps():
    config = get_config("smoke")
    data, model, _ = build(config)
    model_def, params = split_model(model)
    tx = optax.sgd(1.0)  # the update is minus the gradient
    state = create_train_state(params, tx, config.seed)
    _, batch = next(train_batches(data["train"], 32, seed=0, epoch=0))
    batch["mask"][20:] = False
    smoothing = 0.2
    step = jax.jit(make_train_step(model_def, tx, smoothing))
    new, metrics = step(state, batch)

    rng = jax.random.fold_in(state.rng, state.step)

    def oracle(p):
        logits, _ = model_def.train_batch(p, state.carry, batch, rng)
        ce = optax_smoothed(logits, batch["targets"], smoothing)
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
        return jnp.sum(ce * batch["mask"]) / jnp.sum(batch["mask"]), jnp.sum(nll * batch["mask"])

    grads, nll = jax.jit(jax.grad(oracle, has_aux=True))(state.params)
    for got, p, g in zip(*map(jax.tree.leaves, (new.params, state.params, grads))):
        np.testing.assert_allclose(got, p - g, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(metrics["loss_sum"], nll, rtol=1e-5)  # logged: the plain NLL
    # Targets of masked rows change nothing.
    other = {k: v.copy() for k, v in batch.items()}
    other["targets"][20:] = (other["targets"][20:] + 1) % config.model.num_classes
    again, _ = step(state, other)
    for a, b in zip(jax.tree.leaves(new.params), jax.tree.leaves(again.params)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
