"""Moved to `seqlstm.tasks.registry`; this path is kept for one release."""

from seqlstm.tasks.registry import TASKS, check_task_function, get_task  # noqa: F401
