"""Moved; this module only re-exports the old names, kept for one release.

It was split by what it held:
- the guard of non-finite steps (`guard_nonfinite`, `NonFiniteLossError`, `ON_NAN`,
  `check_on_nan`, `all_finite`, `nonfinite_steps`, `nonfinite_cause`):
  `seqlstm.train.nonfinite`;
- SIGTERM / SIGINT (`StopRequest`, `signals_interrupt`, `any_process`, `Interrupted`,
  `STOP_SYNC_EVERY`, `STOP_DEADLINE_S`): `seqlstm.train.signals`; setting `STOP_DEADLINE_S`
  here changes nothing: set `seqlstm.train.signals.STOP_DEADLINE_S`;
- the checkpoint fallback (`restore_latest_readable`, `NoUsableCheckpointError`, `quiet_logs`):
  `seqlstm.train.storage`.
"""

from seqlstm.train.nonfinite import (
    ON_NAN,
    NonFiniteLossError,
    all_finite,
    check_on_nan,
    guard_nonfinite,
    nonfinite_cause,
    nonfinite_steps,
)
from seqlstm.train.signals import (
    STOP_DEADLINE_S,
    STOP_SYNC_EVERY,
    Interrupted,
    StopRequest,
    any_process,
    signals_interrupt,
)
from seqlstm.train.storage import NoUsableCheckpointError, quiet_logs, restore_latest_readable

__all__ = [
    "ON_NAN",
    "STOP_DEADLINE_S",
    "STOP_SYNC_EVERY",
    "Interrupted",
    "NoUsableCheckpointError",
    "NonFiniteLossError",
    "StopRequest",
    "all_finite",
    "any_process",
    "check_on_nan",
    "guard_nonfinite",
    "nonfinite_cause",
    "nonfinite_steps",
    "quiet_logs",
    "restore_latest_readable",
    "signals_interrupt",
]
