"""The data tasks a config can name (`config.data.name`), and building one from `config.data`.

Every entry is a function taking `config.data`'s other keys as keyword arguments and returning a
`seqlstm.task.Task` (or a plain dict of splits), one module of `seqlstm.tasks` each. The names are
those saved runs' `config.json` hold: they never change. An import path
`"package.module:function"` names a task function of the user's own.
"""

from __future__ import annotations

import inspect
from typing import Any

from seqlstm.registry import Registry
from seqlstm.task import Task, as_task
from seqlstm.tasks import g2p, reverse, seq2seq, text


def check_task_function(value: Any, what: str) -> None:
    """Raises ValueError unless `value` is a function (a task function returns the splits)."""
    if inspect.isclass(value) or not callable(value):
        raise ValueError(f"{what} is {value!r}, not a task function")


TASKS = Registry(
    "data task",
    "config.data.name",
    check_task_function,
    {
        "reverse": reverse.make_reverse_task,
        "text": text.make_text_task,
        "seq2seq": seq2seq.make_seq2seq_task,
        "g2p": g2p.make_g2p_task,
    },
)


def get_task(name: str, **kwargs) -> Task:
    """Builds the task `name` (registered, or an import path) from keyword arguments, e.g.
    `config.data`, and checks its splits keep the batch contract (`seqlstm.task`).

    Raises:
      ValueError: for an unknown task or argument, a bad argument value, or splits that break the
        batch contract.
    """
    return as_task(TASKS.build(name, **kwargs), f"data task {name!r}")
