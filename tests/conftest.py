"""Test settings: strict rank promotion, float32 on CPU, Keras on the JAX backend, and one
persistent compilation cache per test run.

Most of the suite's time is XLA compiling the same small programs again: every `build` jits fresh
closures, and every launcher subprocess starts with an empty in-memory cache. JAX's persistent
compilation cache, in a temporary folder made here (in the xdist controller, before its workers
start, so that they and every subprocess inherit it) and removed when the run ends, compiles each
program once per run. Nothing persists between runs: CI's cold start is what is timed.
"""

import os
import shutil
import tempfile

os.environ.setdefault("KERAS_BACKEND", "jax")
_OWN_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _OWN_CACHE = tempfile.mkdtemp(prefix="seqlstm-test-xla-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_CACHE
    # Programs that compile in under 0.1 s are cheaper to compile again than to read back.
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")

import jax  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


def pytest_sessionfinish(session, exitstatus):
    if _OWN_CACHE is not None:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)
