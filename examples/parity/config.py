r"""Your own task and model on the stock launcher: the parity of bit strings.

    PYTHONPATH=examples/parity python -m experiments.train \
        --config=examples/parity/config.py --workdir=runs/parity

trains `ParityLSTM` (an LSTM(16) and a Dense, in `parity.py` beside this file) on 2,000 strings of
1..8 bits for 30 epochs: 25 s on 2 CPU cores, ending at 100% test accuracy (every length).
`parity.py` must be importable, hence `PYTHONPATH`. Presets: `config.py:smoke` (seconds, for tests).
"""

from __future__ import annotations

import ml_collections

from configs.common import base_config, parse_presets


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The config of one run; `arg` selects presets (see the module docstring)."""
    presets = parse_presets(arg, ("smoke",))
    config = base_config()
    config.data.name = "parity:make_parity_task"  # an import path: your own task function
    config.data.max_length = 8
    config.data.num_train = 2000
    config.model.name = "parity:ParityLSTM"  # and your own model class
    config.model.hidden_size = 16
    config.optim.learning_rate = 1e-2
    config.train.num_epochs = 30
    config.train.patience = 5
    if "smoke" in presets:
        config.data.num_train, config.data.num_test = 64, 32
        config.train.batch_size, config.train.num_epochs = 16, 2
        config.eval.batch_size = 32
    return config
