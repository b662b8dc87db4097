"""Ensembles of trained runs, saved as a folder that names its members.

An ensemble folder holds one file, `ensemble.json`, `{"members": [path, ...]}`, each path a run
(`train_and_evaluate`'s workdir, or an averaged run from `seqlstm.train.averaging`) relative to the
folder. Everything that loads through `load_ensemble` takes either such a folder or a single run,
so a command serves one model and an ensemble alike (`experiments.pronounce --workdir=...`);
`seqlstm.decoding` decodes the list of models it returns as one model (the mean of the members'
per-step log-probabilities).

The members must have been trained on the same task: their `config.data` must be equal, or the
load is refused naming the first field that differs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import ml_collections
from flax import nnx

from seqlstm.train.restore import load_config, load_model
from seqlstm.train.workdir import write_json

ENSEMBLE = "ensemble.json"


def is_ensemble(path: str) -> bool:
    """Whether `path` is an ensemble folder (holds `ensemble.json`)."""
    return os.path.isfile(os.path.join(path, ENSEMBLE))


def write_ensemble(path: str, members: Sequence[str]) -> None:
    """Writes the ensemble folder `path` naming `members` (runs, paths as the caller gives them).

    Raises:
      ValueError: no members, a member given twice, or a member that holds no run.
    """
    members = [str(m) for m in members]
    if not members:
        raise ValueError("an ensemble needs at least one member run; got none")
    resolved = [os.path.realpath(m) for m in members]
    if len(set(resolved)) != len(resolved):
        raise ValueError(f"members {members} name a run twice; give each member once")
    for m in members:
        if not os.path.isfile(os.path.join(m, "config.json")):
            raise ValueError(f"member {m!r} holds no run (no config.json); train it first")
    os.makedirs(path, exist_ok=True)
    rel = [os.path.relpath(r, os.path.realpath(path)) for r in resolved]
    write_json(os.path.join(path, ENSEMBLE), {"members": rel})


def ensemble_members(path: str) -> list[str]:
    """The runs of `path`: the members an ensemble folder names, or `[path]` for a run.

    Raises:
      ValueError: an `ensemble.json` that is not `{"members": [non-empty list of strings]}`.
    """
    if not is_ensemble(path):
        return [path]
    file = os.path.join(path, ENSEMBLE)
    try:
        with open(file, encoding="utf-8") as f:
            members = json.load(f).get("members")
    except (ValueError, AttributeError) as e:
        raise ValueError(f"{file} is not an ensemble file ({e})") from None
    if not isinstance(members, list) or not members or not all(isinstance(m, str) for m in members):
        raise ValueError(f"{file}: 'members' must be a non-empty list of run paths")
    return [os.path.normpath(os.path.join(path, m)) for m in members]


def _first_difference(a: dict, b: dict, prefix: str = "data") -> str | None:
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            return f"{prefix}.{key}: {a.get(key)!r} against {b.get(key)!r}"
    return None


def load_ensemble(
    path: str, *, trust_run_code: bool = False
) -> tuple[ml_collections.ConfigDict, list[nnx.Module]]:
    """The models of a run or of an ensemble folder, in evaluation mode.

    Args:
      path: a run, or an ensemble folder (`write_ensemble`).
      trust_run_code: allow import paths in the members' configs (`seqlstm.train.restore`).

    Returns:
      `(config, models)`: the first member's config and one model per member.

    Raises:
      ValueError: a member that `load_model` refuses (naming it), or members whose `config.data`
        differ (naming the field).
    """
    members = ensemble_members(path)
    configs = [load_config(m, trust_run_code=trust_run_code) for m in members]
    first = configs[0].data.to_dict()
    for member, config in zip(members[1:], configs[1:]):
        diff = _first_difference(first, config.data.to_dict())
        if diff is not None:
            raise ValueError(
                f"ensemble {path!r}: member {member!r} was trained on other data than "
                f"{members[0]!r} ({diff}); an ensemble's members share one task"
            )
    models = [load_model(m, trust_run_code=trust_run_code)[1] for m in members]
    return configs[0], models
