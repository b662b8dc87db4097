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

from configs._presets import parse_presets
from seqlstm.train.parallel import parallel_config

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
    config = ml_collections.ConfigDict()
    config.seed = 0  # parameters, batch order and dropout

    config.data = ml_collections.ConfigDict()
    config.data.name = "reverse"
    config.data.length = 8
    config.data.vocab_size = 10
    config.data.num_train = 2000
    config.data.num_test = 200
    config.data.val_fraction = 0.1  # the last 200 training sequences, as Keras validation_split
    config.data.seed = 0

    config.model = ml_collections.ConfigDict()  # the keyword arguments of get_model
    config.model.name = "state_seq"
    config.model.in_features = config.data.get_ref("vocab_size")
    config.model.num_classes = config.data.get_ref("vocab_size")
    config.model.length = config.data.get_ref("length")
    config.model.hidden_size = 16
    config.model.dropout = 0.0
    config.model.unroll = 1
    config.model.dtype = "float32"  # "bfloat16": mixed precision (float32 parameters and state)

    config.optim = ml_collections.ConfigDict()  # Keras's Adam defaults
    config.optim.name = "adam"
    config.optim.learning_rate = 1e-3
    config.optim.b1 = 0.9
    config.optim.b2 = 0.999
    config.optim.eps = 1e-7
    config.optim.grad_clip_norm = 0.0

    config.train = ml_collections.ConfigDict()
    config.train.batch_size = 32  # Keras's fit default
    config.train.num_epochs = 100
    config.train.num_steps = 0  # > 0: train this many steps instead of num_epochs
    config.train.patience = 5  # evaluations without improvement of val loss; 0: no early stop
    config.train.min_delta = 0.0
    config.train.log_every_steps = 0  # 0: log at every evaluation only
    # Checkpoints also at the end and on SIGINT/SIGTERM. One costs ~80 ms, the time of 2 epochs.
    config.train.checkpoint_every_epochs = 5
    config.train.checkpoint_every_steps = 0  # > 0: also every this many steps
    config.train.max_to_keep = 3
    config.train.stop_after_steps = 0  # > 0: checkpoint and stop here (preemption drill)
    config.train.progress_bar = True
    config.train.on_nan = "stop"  # or "skip": a step with a NaN or Inf loss changes nothing

    config.eval = ml_collections.ConfigDict()
    config.eval.batch_size = 200
    config.eval.every_steps = 0  # 0: every epoch

    config.parallel = parallel_config()  # one device; mesh_shape=(-1,) splits batches over all

    if "variant" in presets:
        config.model.name = presets["variant"]
    if "len" in presets:
        config.data.length = int(presets["len"])
    if "seed" in presets:
        config.seed = config.data.seed = int(presets["seed"])
    if "smoke" in presets:
        config.data.num_train = 160
        config.data.num_test = 40
        config.data.val_fraction = 0.2
        config.train.num_epochs = 3
        config.eval.batch_size = 32
        if "len" not in presets:
            config.data.length = 4
    return config
