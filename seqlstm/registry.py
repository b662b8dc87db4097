"""Name lookup for the things a config names: a registered name, or an import path.

`config.model.name` and `config.data.name` take either a name registered in a `Registry` (the
models of `seqlstm.models.registry`, the tasks of `seqlstm.tasks.registry`) or an import path
`"package.module:attribute"` into the user's own code, so that a researcher's own model and data
train with the stock launcher without editing the package. A saved run's config is another matter:
`seqlstm.train.restore` reads it resolving registered names only, unless the caller trusts the
run's code (`trust_run_code`).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any


def import_path(path: str, *, what: str) -> Any:
    """The attribute that `"package.module:attribute"` names (dots after the colon walk into it).

    Args:
      path: the import path.
      what: how the caller calls the value, for messages, e.g. `"config.model.name"`.

    Raises:
      ValueError: naming `what` and `path`, when the path is malformed, the module does not import
        (with the import's own message) or has no such attribute.
    """
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError(f"{what}={path!r} is not an import path 'package.module:attribute'")
    try:
        value = importlib.import_module(module_name)
    except Exception as e:  # a user's module may raise anything while it imports
        raise ValueError(
            f"{what}={path!r}: module {module_name!r} does not import ({type(e).__name__}: {e}); "
            "check that it is on the Python path (run from the folder that holds it, or set "
            "PYTHONPATH)"
        ) from e
    for part in attr.split("."):
        if not hasattr(value, part):
            raise ValueError(f"{what}={path!r}: {value.__name__!r} has no attribute {part!r}")
        value = getattr(value, part)
    return value


class Registry(Mapping[str, Any]):
    """Named entries of one kind (models, tasks), and lookup by name or import path.

    Args:
      kind: what the entries are, for messages (`"model"`, `"data task"`).
      key: the config key that names an entry, for messages (`"config.model.name"`).
      check: `check(value, what)` raises ValueError unless `value` is an entry of this kind; it
        runs on every entry, registered or imported.
      entries: the registered entries.
    """

    def __init__(
        self, kind: str, key: str, check: Callable[[Any, str], None], entries: Mapping[str, Any]
    ) -> None:
        self.kind, self.key, self.check = kind, key, check
        self._entries = dict(entries)
        for name, value in self._entries.items():
            check(value, f"registered {kind} {name!r}")

    def __getitem__(self, name: str) -> Any:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def resolve(self, name: str) -> Any:
        """The entry `name`: registered, or imported when `name` holds a colon.

        Raises:
          ValueError: for an unknown name (listing the registered ones), a path that does not
            import, or a value that is not an entry of this kind.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.key} must be a {self.kind} name or import path, got {name!r}")
        if ":" in name:
            value = import_path(name, what=self.key)
            self.check(value, f"{self.key}={name!r}")
            return value
        if name not in self._entries:
            raise ValueError(
                f"unknown {self.kind} {name!r} ({self.key}); expected one of {sorted(self)} or an "
                "import path 'package.module:attribute'"
            )
        return self._entries[name]

    def build(self, name: str, **kwargs) -> Any:
        """Calls the entry `name` with `kwargs`, after checking they are arguments it takes.

        Raises:
          ValueError: as `resolve`, or for keyword arguments the entry does not take.
        """
        entry = self.resolve(name)
        check_kwargs(entry, kwargs, f"{self.kind} {name!r}")
        return entry(**kwargs)


def check_kwargs(fn: Callable, kwargs: Mapping[str, Any], what: str) -> None:
    """Raises ValueError if `fn` (a function or class) takes no keyword argument of `kwargs`.

    A class whose `__init__` passes `**kwargs` on to its base takes what the base takes.
    """
    takes: list[str] = []
    for f in (
        [c.__init__ for c in fn.__mro__ if "__init__" in vars(c)] if inspect.isclass(fn) else [fn]
    ):
        params = inspect.signature(f).parameters
        takes += [p for p, v in params.items() if p != "self" and v.kind is not v.VAR_KEYWORD]
        if not any(v.kind is inspect.Parameter.VAR_KEYWORD for v in params.values()):
            break
    else:
        return  # **kwargs all the way up: anything goes
    unknown = sorted(set(kwargs) - set(takes))
    if unknown:
        shown = [p for p in dict.fromkeys(takes) if p != "rngs"]
        raise ValueError(f"{what} got unknown arguments {unknown}; it takes {shown}")
