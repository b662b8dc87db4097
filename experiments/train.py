r"""Trains one config in one workdir; running it again resumes.

    python -m experiments.train --config=configs/reverse.py --workdir=runs/reverse
    python -m experiments.train --config=configs/reverse.py:variant=stacked_seq,len=16 \
        --config.train.batch_size=64 --workdir=runs/stacked_seq_16
"""

from absl import app, flags, logging
from ml_collections import config_flags

from seqlstm.train import train_and_evaluate

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file, with an optional :preset argument.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and results.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
        # absl raises the default to INFO, where orbax logs each checkpoint; --verbosity=0 shows it.
        logging.set_verbosity(logging.WARNING)
    train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
    app.run(main)
