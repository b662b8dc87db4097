"""The command line every benchmark script shares: `--quick`, `--write`, `--reps`, `--rounds`.

    args = cli.parser(__doc__, reps=20, rounds=3).parse_args()

Importing it imports nothing heavy (no JAX), so a script may set its environment first.
"""

from __future__ import annotations

import argparse


def parser(
    description: str | None,
    *,
    quick: str = "tiny sizes, few repetitions (a smoke check)",
    write: bool = True,
    reps: int | None = 20,
    rounds: int | None = 3,
) -> argparse.ArgumentParser:
    """An `ArgumentParser` with the flags the benchmark scripts share; a script adds its own.

    Args:
      description: the script's docstring; its first line becomes the description.
      quick: the help of `--quick` (what the quick run shrinks).
      write: add `--write` (rewrite the script's section of benchmarks/README.md).
      reps: the default of `--reps` (timed calls per median); None for no `--reps`.
      rounds: the default of `--rounds` (interleaved rounds, the best kept); None for none.

    Returns:
      The parser, with `--quick` always and the others as asked.
    """
    first = (description or "").strip().splitlines()
    result = argparse.ArgumentParser(description=first[0] if first else None)
    result.add_argument("--quick", action="store_true", help=quick)
    if write:
        result.add_argument("--write", action="store_true", help="rewrite benchmarks/README.md")
    if reps is not None:
        result.add_argument("--reps", type=int, default=reps, help="timed calls per median")
    if rounds is not None:
        result.add_argument(
            "--rounds", type=int, default=rounds, help="interleaved rounds, the best kept"
        )
    return result
