"""The README's tour runs as written, and its printed summary is what the code prints."""

import contextlib
import io
import re
from pathlib import Path

import jax

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
