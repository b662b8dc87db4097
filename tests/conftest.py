"""Test settings: strict rank promotion, float32 on CPU, Keras on the JAX backend, and XLA set
to compile fast.

Most of the suite's time is XLA compiling small programs, often the same ones again: every `build`
jits fresh closures, and every launcher subprocess starts with an empty in-memory cache. So
- JAX's persistent compilation cache, in a temporary folder made here (in the xdist controller,
  before its workers start, so that they and every subprocess inherit it) and removed when the run
  ends, compiles each program once per run. Nothing persists between runs: CI's cold start is what
  is timed.
- XLA's CPU backend compiles without LLVM's optimisation passes (`--xla_backend_optimization_level
  =0`, unless XLA_FLAGS sets a level): a third less time for the suite's tiny programs, which run
  for microseconds. The HLO passes (fusion, layout, buffer assignment) and the arithmetic are the
  same; benchmarks/ measures speed at the default level.
"""

import os
import shutil
import tempfile

from launcher import FAST_COMPILE

os.environ.setdefault("KERAS_BACKEND", "jax")
_OWN_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _OWN_CACHE = tempfile.mkdtemp(prefix="seqlstm-test-xla-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_CACHE
    # Programs that compile in under 0.1 s are cheaper to compile again than to read back.
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE}".strip()

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


# Smoke runs the fault tests (test_signals, test_storage) compare with or damage copies of; made
# once per worker, whichever file asks first.


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    """An uninterrupted smoke run of `smoke_runs.EPOCHS` epochs."""
    from smoke_runs import EPOCHS, smoke

    from seqlstm.train import train_and_evaluate

    workdir = tmp_path_factory.mktemp("reference")
    train_and_evaluate(smoke(num_epochs=EPOCHS), str(workdir))
    return workdir


@pytest.fixture(scope="session")
def stopped_at_8(tmp_path_factory):
    """A smoke run stopped after step 8, with checkpoints at 4 and 8 (tests damage copies)."""
    from smoke_runs import smoke

    from seqlstm.train import train_and_evaluate

    workdir = tmp_path_factory.mktemp("stopped_at_8")
    train_and_evaluate(smoke(checkpoint_every_steps=4, stop_after_steps=8), str(workdir))
    return workdir


def pytest_sessionfinish(session, exitstatus):
    if _OWN_CACHE is not None:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)
