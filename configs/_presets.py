"""Helpers shared by the configs (not a config): preset arguments `configs/x.py:key=value,flag`."""

from __future__ import annotations


def parse_presets(arg: str | None, keys: tuple[str, ...]) -> dict[str, str]:
    """`"smoke,len=8"` -> `{"smoke": "", "len": "8"}`.

    Raises:
      ValueError: for a key not in `keys`.
    """
    out = {}
    for part in filter(None, (arg or "").split(",")):
        key, _, value = part.partition("=")
        key = key.strip()
        if key not in keys:
            raise ValueError(f"unknown preset {key!r} in {arg!r}; expected keys {keys}")
        out[key] = value.strip()
    return out
