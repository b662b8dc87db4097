"""Test settings: strict rank promotion, float32 on CPU, Keras on the JAX backend."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
