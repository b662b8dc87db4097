"""The README's tour runs as written, and its printed summary is what the code prints."""

import contextlib
import importlib.util
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _tour_blocks() -> list[tuple[str, str]]:
    text = README.read_text()
    tour = text[text.index("## A short tour") :]
    tour = tour[: tour.index("\n## ", 5)]
    return re.findall(r"```(\w*)\n(.*?)```", tour, re.S)


def test_tour_runs_and_summary_matches():
    blocks = _tour_blocks()
    namespace: dict = {}
    shown_after: str | None = None
    for i, (lang, code) in enumerate(blocks):
        if lang != "python":
            continue
        out = io.StringIO()
        # Keras's own layers broadcast ranks, which tests/conftest.py makes an error.
        with contextlib.redirect_stdout(out), jax.numpy_rank_promotion("allow"):
            exec(compile(code, f"README block {i}", "exec"), namespace)
        if "summary(" in code:
            shown_after = blocks[i + 1][1]
            printed = out.getvalue()
    assert shown_after is not None, "the tour has no summary example"
    printed_lines = [line.rstrip() for line in printed.splitlines()]
    for line in shown_after.strip().splitlines():
        assert line.rstrip() in printed_lines, (
            f"README shows {line!r}, summary() prints:\n{printed}"
        )
    # The names the tour promises exist with the shapes it states.
    assert namespace["outputs"].shape == (8, 20, 128)
    assert namespace["last"].shape == (8, 32)
    assert namespace["repeated"].shape == (8, 20, 32)


def test_tour_imports_keras_without_keras_backend_set():
    # A new user has no KERAS_BACKEND; Keras 3 then defaults to TensorFlow, not installed here.
    block = next(code for lang, code in _tour_blocks() if "import keras" in code)
    head = block[: block.index("import keras")] + "import keras\nprint(keras.backend.backend())\n"
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    proc = subprocess.run(
        [sys.executable, "-c", head], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "jax", proc.stderr[-2000:]


def test_interop_says_how_to_fix_a_keras_backend_that_cannot_load():
    code = (
        "from flax import nnx\nfrom seqlstm import LSTM, interop\n"
        "interop.to_keras(LSTM(2, 3, rngs=nnx.Rngs(0)))\n"
    )
    env = dict(os.environ, KERAS_BACKEND="tensorflow", JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=README.parent, env=env, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    if importlib.util.find_spec("tensorflow") is not None:
        pytest.skip("TensorFlow is installed: Keras's default backend loads")
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: keras could not be imported with KERAS_BACKEND=")
    assert "set KERAS_BACKEND=jax" in last
