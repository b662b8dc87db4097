"""Moved; this module only re-exports the old names, kept for one release.

It was split by what it held:
- `WorkdirWriteError`, `writing`, `after_failure`, `verbose`, `quiet_logs`:
  `seqlstm.train.storage` (disk and checkpoint errors);
- `first_line`, `is_disk_full`, `out_of_memory`, `OutOfMemoryError`: `seqlstm.train.causes`;
- `Interrupted`: `seqlstm.train.signals`;
- `one_line_errors`, `exit_code`, `one_line`, `USAGE_EXIT`, `RUNTIME_EXIT`: the absl launchers'
  wrapper is no longer in the library, but in `experiments/launch.py` (`experiments.launch`,
  importable from a clone's root); they are imported from there when first asked for.
"""

from __future__ import annotations

import importlib
from typing import Any

from seqlstm.train.causes import OutOfMemoryError, first_line, is_disk_full, out_of_memory
from seqlstm.train.signals import Interrupted
from seqlstm.train.storage import (
    WorkdirWriteError,
    after_failure,
    quiet_logs,
    verbose,
    writing,
)

_LAUNCH = ("RUNTIME_EXIT", "USAGE_EXIT", "exit_code", "one_line", "one_line_errors")

__all__ = [
    "Interrupted",
    "OutOfMemoryError",
    "WorkdirWriteError",
    "after_failure",
    "first_line",
    "is_disk_full",
    "out_of_memory",
    "quiet_logs",
    "verbose",
    "writing",
]


def __getattr__(name: str) -> Any:
    # Lazily: the library does not import experiments/ (not installed with the package).
    if name in _LAUNCH:
        try:
            launch = importlib.import_module("experiments.launch")
        except ModuleNotFoundError as error:
            raise ImportError(
                f"{__name__}.{name} moved to experiments/launch.py, which is part of a clone of "
                "the repository, not of the installed package: import it from experiments.launch "
                "with the clone's root on the path"
            ) from error
        return getattr(launch, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
