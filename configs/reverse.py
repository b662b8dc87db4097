r"""The reversed-sequence task: how should two LSTMs be connected?

    python -m experiments.train --config=configs/reverse.py --workdir=runs/reverse

trains the default variant `state_seq` (LSTM 2 reads LSTM 1's output sequence and starts from its
final state) on sequences of length 8 with the tutorial's protocol (16 units, Adam, batch 32, up to
100 epochs, early stopping with patience 5). In ~15 s on 2 CPU cores it runs all 100 epochs
(validation loss still falling) and prints test token accuracy 0.583, sequence accuracy 0.010
(seed 0; Keras itself gets 0.552 on the same data).

Presets through the argument, comma-separated:

    configs/reverse.py:variant=state_last_repeat,len=16,seed=2
    configs/reverse.py:smoke                   # seconds: tiny data, 3 epochs (tests)

Variants (`seqlstm.models.reverse`): last_repeat, stacked_last_repeat, stacked_seq,
state_last_repeat, state_seq. Any field can also be set on the command line, e.g.
`--config.model.hidden_size=32`; an unknown field is an error.
"""

from __future__ import annotations

import ml_collections

from configs.common import base_config, parse_presets

PRESET_KEYS = ("variant", "len", "seed", "smoke")


def parse_arg(arg: str | None) -> dict[str, str]:
    """`"smoke,variant=x,len=8"` -> `{"smoke": "", "variant": "x", "len": "8"}`.

    Raises:
      ValueError: for an unknown preset key.
    """
    return parse_presets(arg, PRESET_KEYS)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The config of one run; `arg` selects presets (see the module docstring)."""
    presets = parse_arg(arg)
    config = base_config()

    d = config.data  # the keyword arguments of seqlstm.tasks.reverse.make_reverse_task
    d.name = "reverse"
    d.length = 8
    d.vocab_size = 10
    d.num_train = 2000
    d.num_test = 200
    d.val_fraction = 0.1  # the last 200 training sequences, as Keras validation_split
    d.seed = 0

    m = config.model  # the keyword arguments of the model class (seqlstm.models.reverse)
    m.name = "state_seq"
    m.in_features = d.get_ref("vocab_size")
    m.num_classes = d.get_ref("vocab_size")
    m.length = d.get_ref("length")
    m.hidden_size = 16
    m.dropout = 0.0
    m.unroll = 1
    m.dtype = "float32"  # "bfloat16": mixed precision (float32 parameters and state)

    t = config.train  # the tutorial's protocol: Keras's Adam, batch 32, early stopping
    t.num_epochs = 100
    t.patience = 5
    # One checkpoint costs ~80 ms, the time of 2 epochs.
    t.checkpoint_every_epochs = 5
    t.max_to_keep = 3
    config.eval.batch_size = 200

    if "variant" in presets:
        m.name = presets["variant"]
    if "len" in presets:
        d.length = int(presets["len"])
    if "seed" in presets:
        config.seed = d.seed = int(presets["seed"])
    if "smoke" in presets:
        d.num_train = 160
        d.num_test = 40
        d.val_fraction = 0.2
        t.num_epochs = 3
        config.eval.batch_size = 32
        if "len" not in presets:
            d.length = 4
    return config
