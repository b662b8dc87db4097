r"""Two-branch next-character model on real text: does the short branch earn its place?

    python -m experiments.train --config=configs/chars.py --workdir=runs/chars

trains the published model (the previous 512 characters through a bidirectional LSTM(32), the
last 64 of them through a second one, concatenated, Dense(128, relu), softmax) on the Python
standard library's own source (~12 MB, found through `sysconfig`, no download) for 1,000 steps
of 128 windows: about 3 minutes on 2 CPU cores, ending with a test loss near 2.13 nats (3.07 bits
per character; validation 2.95). The README's study explains what each branch contributes.

Presets through the argument, comma-separated:

    configs/chars.py:branches=long           # long branch only ("short": short only)
    configs/chars.py:long=256,short=32,seed=1
    configs/chars.py:smoke                   # seconds: a small slice of the corpus (tests)

Any other text: `--config.data.path=/path/to/file_or_folder` (every file under a folder, by
document; `--config.data.pattern='*.txt'` to choose), `--config.data.level=byte
--config.data.vocab_size=256` for bytes. Sample from a trained workdir with
`python -m experiments.sample --workdir=runs/chars --prompt="def "`.
"""

from __future__ import annotations

import ml_collections

from configs.common import base_config as common_config
from configs.common import parse_presets

PRESET_KEYS = ("branches", "long", "short", "seed", "smoke")


def parse_arg(arg: str | None, keys: tuple[str, ...] = PRESET_KEYS) -> dict[str, str]:
    """`"smoke,long=256"` -> `{"smoke": "", "long": "256"}`.

    Raises:
      ValueError: for an unknown preset key.
    """
    return parse_presets(arg, keys)


def base_config() -> ml_collections.ConfigDict:
    """Data, optimizer and training settings shared by the character experiments."""
    config = common_config()
    d = config.data  # the keyword arguments of seqlstm.tasks.text.make_text_task
    d.name = "text"
    d.path = ""  # "": the standard library's source; else a text file or folder
    d.pattern = ""  # file-name glob under a folder ("": *.py for the stdlib, else all)
    d.level = "char"  # or "byte" (with vocab_size=256)
    d.vocab_size = 100  # 99 most frequent training characters + unknown
    d.split = "auto"  # by document when there are >= 20 files, else by region
    d.val_fraction = 0.05
    d.test_fraction = 0.05
    d.max_chars = 0  # 0: the whole corpus
    d.context = 512
    d.targets = "next"
    d.stride = 1
    d.eval_windows = 2048

    config.optim.learning_rate = 3e-3
    config.optim.grad_clip_norm = 1.0
    t = config.train
    t.batch_size = 128
    t.num_steps = 1000
    t.log_every_steps = 50
    t.checkpoint_every_steps = 250
    config.eval.every_steps = 250
    return config


def smoke(config: ml_collections.ConfigDict) -> None:
    """Shrinks a character config to a seconds-long run on the first 60k corpus characters."""
    config.data.max_chars = 60_000
    config.data.vocab_size = 64
    config.data.eval_windows = 32
    config.train.batch_size = 8
    config.train.num_steps = 4
    config.train.log_every_steps = 2
    config.train.checkpoint_every_steps = 0
    config.eval.batch_size = 16
    config.eval.every_steps = 2


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The config of one run; `arg` selects presets (see the module docstring)."""
    presets = parse_arg(arg)
    config = base_config()
    # the keyword arguments of seqlstm.models.char.TwoBranchCharModel
    config.model.name = "two_branch"
    config.model.vocab_size = config.data.get_ref("vocab_size")
    config.model.long_context = config.data.get_ref("context")
    config.model.short_context = 64
    config.model.branches = "both"
    config.model.embed_dim = 16
    config.model.long_units = 32
    config.model.short_units = 32
    config.model.dense_units = 128
    config.model.unroll = 1
    # The step allocates one 126 MiB block: with one malloc arena it is kept, not mapped afresh
    # each step (39,800 page faults): 89.4 -> 44.7 ms (seqlstm/train/host_memory.py).
    config.train.malloc_arenas = 1

    if "branches" in presets:
        config.model.branches = presets["branches"]
    if "long" in presets:
        config.data.context = int(presets["long"])
    if "short" in presets:
        config.model.short_context = int(presets["short"])
    if "seed" in presets:
        config.seed = int(presets["seed"])
    if "smoke" in presets:
        smoke(config)
        if "long" not in presets:
            config.data.context = 32
        if "short" not in presets:
            config.model.short_context = 8
        config.model.long_units = config.model.short_units = 8
        config.model.dense_units = 16
    return config
