r"""Stacked character language model on real text: does stacking LSTMs help?

    python -m experiments.train --config=configs/char_lm.py --workdir=runs/char_lm

trains one LSTM(128) as a character language model (a prediction at every one of 128 steps per
window) on the Python standard library's own source for 1,000 steps of 64 windows: about 80
seconds on 2 CPU cores, ending with a test loss near 1.65 nats (2.39 bits per character). Same
data, optimizer and training settings as `configs/chars.py`; sample from it with
`python -m experiments.sample --workdir=runs/char_lm --prompt="    def "`.

Presets through the argument, comma-separated:

    configs/char_lm.py:layers=4,units=64,seed=1
    configs/char_lm.py:smoke                 # seconds (tests)
    configs/char_lm.py:stateful              # truncated BPTT: state carried across batches

`stateful` trains `StatefulCharLM` on each document's consecutive, non-overlapping windows of 128
characters, read as 64 parallel streams that carry the LSTM states from one batch to the next
(reset at document starts; `seqlstm.data.streams`), at the same compute per step; validation and
test windows are evaluated as for the windowed model, each from zero states. The README's
"Stateful training" table compares the two.
"""

from __future__ import annotations

import ml_collections

from configs.chars import base_config, parse_arg, smoke

PRESET_KEYS = ("layers", "units", "seed", "smoke", "stateful")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The config of one run; `arg` selects presets (see the module docstring)."""
    presets = parse_arg(arg, PRESET_KEYS)
    config = base_config()
    config.data.context = 128
    config.data.targets = "every"  # predict each next character of the window
    config.data.stride = 64  # windows overlap by half
    config.data.eval_windows = 512
    config.train.batch_size = 64
    config.train.num_steps = 1000

    # the keyword arguments of seqlstm.models.char.StackedCharLM
    config.model.name = "char_lm"
    config.model.vocab_size = config.data.get_ref("vocab_size")
    config.model.embed_dim = 16
    config.model.num_layers = 1
    config.model.units = 128
    config.model.dropout = 0.0
    config.model.unroll = 1

    if "layers" in presets:
        config.model.num_layers = int(presets["layers"])
    if "units" in presets:
        config.model.units = int(presets["units"])
    if "seed" in presets:
        config.seed = int(presets["seed"])
    if "stateful" in presets:
        config.data.stream = True  # consecutive windows of each document, as parallel streams
        config.model.name = "stateful_char_lm"
        config.model.batch_size = config.train.get_ref("batch_size")  # one stream per row
    if "smoke" in presets:
        smoke(config)
        config.data.context = 16
        config.model.units = 8
    if "stateful" in presets:
        config.data.stride = config.data.context  # non-overlapping windows, after the presets
    return config
