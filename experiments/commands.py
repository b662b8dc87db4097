"""What the commands that use a trained run (pronounce, decode, sample) share, flag-free so that
tests import it: reading the run for one command, checking output paths before the work, and
plots that warn rather than fail once the results are out.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

import ml_collections

from seqlstm.train.restore import load_config

# Which command serves a run, by its data task (`config.data.name`), and the configs that train
# such runs (the first is the example suggested when a workdir holds no run).
COMMANDS = {
    "g2p": ("pronounce", ("configs/g2p.py",)),
    "seq2seq": ("decode", ("configs/seq2seq.py",)),
    "text": ("sample", ("configs/chars.py", "configs/char_lm.py")),
}


def load_run_config(
    workdir: str, command: str, *, trust_run_code: bool = False
) -> ml_collections.ConfigDict:
    """The config of the run in `workdir`, checked to be one `experiments.<command>` serves.

    Args:
      workdir: a directory written by `train_and_evaluate`.
      command: `"pronounce"`, `"decode"` or `"sample"`.
      trust_run_code: allow import paths in the run's config (`seqlstm.train.restore`).

    Raises:
      ValueError: one line: no run, a config `load_config` refuses, or a run of another family
        (saying what it is and which command serves it).
    """
    configs = next(cfgs for cmd, cfgs in COMMANDS.values() if cmd == command)
    config = load_config(workdir, configs[0], trust_run_code=trust_run_code)
    data, model = config.data.get("name"), config.model.get("name")
    serves = COMMANDS.get(data)
    if serves is None or serves[0] != command:
        use = (
            f"use python -m experiments.{serves[0]} --workdir={workdir}"
            if serves
            else "no run command serves it; load it with seqlstm.train.restore.load_run"
        )
        raise ValueError(
            f"workdir {workdir!r} holds a run of data task {data!r} (model {model!r}); "
            f"experiments.{command} serves runs of {' or '.join(configs)} only: {use}"
        )
    return config


def check_output(path: str, flag: str, inputs: Sequence[tuple[str, str]] = ()) -> None:
    """Raises ValueError, before any work, when `path` cannot take a command's output: its
    folder is missing, it is a folder, or it is one of `inputs` (the same file by any name).

    Args:
      path: where the command will write.
      flag: the flag that gave it, for messages (`"--output"`).
      inputs: `(flag, path)` of each file the command reads.
    """
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(
            f"{flag}={path!r}: the folder {folder!r} does not exist; create it, or give a path "
            "in an existing folder"
        )
    if os.path.isdir(path):
        raise ValueError(f"{flag}={path!r} is a folder; give a file path")
    for name, source in inputs:
        if os.path.exists(path) and os.path.exists(source) and os.path.samefile(path, source):
            raise ValueError(
                f"{flag}={path!r} is the input {name}={source!r}; refusing to write over it: "
                f"give another {flag}"
            )


def save_plot(draw: Callable[[str], None], path: str, what: str) -> bool:
    """Calls `draw(path)`; a plot that cannot be written is a warning on stderr, not an error
    (it comes after the results, which stand). Returns whether it was written."""
    try:
        draw(path)
    except OSError as e:
        reason = e.strerror or str(e)
        sys.stderr.write(f"warning: cannot write the {what} {path} ({reason}); nothing else lost\n")
        return False
    return True
