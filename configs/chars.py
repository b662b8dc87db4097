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

from configs._presets import parse_presets
from seqlstm.train.parallel import parallel_config

PRESET_KEYS = ("branches", "long", "short", "seed", "smoke")


def parse_arg(arg: str | None, keys: tuple[str, ...] = PRESET_KEYS) -> dict[str, str]:
    """`"smoke,long=256"` -> `{"smoke": "", "long": "256"}`.

    Raises:
      ValueError: for an unknown preset key.
    """
    return parse_presets(arg, keys)


def base_config() -> ml_collections.ConfigDict:
    """Data, optimizer and training settings shared by the character experiments."""
    config = ml_collections.ConfigDict()
    config.seed = 0  # parameters, batch order and dropout

    config.data = ml_collections.ConfigDict()  # the keyword arguments of make_text_task
    config.data.name = "text"
    config.data.path = ""  # "": the standard library's source; else a text file or folder
    config.data.pattern = ""  # file-name glob under a folder ("": *.py for the stdlib, else all)
    config.data.level = "char"  # or "byte" (with vocab_size=256)
    config.data.vocab_size = 100  # 99 most frequent training characters + unknown
    config.data.split = "auto"  # by document when there are >= 20 files, else by region
    config.data.val_fraction = 0.05
    config.data.test_fraction = 0.05
    config.data.max_chars = 0  # 0: the whole corpus
    config.data.context = 512
    config.data.targets = "next"
    config.data.stride = 1
    config.data.eval_windows = 2048

    config.optim = ml_collections.ConfigDict()
    config.optim.name = "adam"
    config.optim.learning_rate = 3e-3
    config.optim.b1 = 0.9
    config.optim.b2 = 0.999
    config.optim.eps = 1e-7
    config.optim.grad_clip_norm = 1.0

    config.train = ml_collections.ConfigDict()
    config.train.batch_size = 128
    config.train.num_epochs = 0
    config.train.num_steps = 1000
    config.train.patience = 0  # evaluations without improvement of val loss; 0: no early stop
    config.train.min_delta = 0.0
    config.train.log_every_steps = 50
    config.train.checkpoint_every_epochs = 0
    config.train.checkpoint_every_steps = 250
    config.train.max_to_keep = 2
    config.train.stop_after_steps = 0
    config.train.progress_bar = True
    config.train.on_nan = "stop"  # or "skip": a step with a NaN or Inf loss changes nothing

    config.eval = ml_collections.ConfigDict()
    config.eval.batch_size = 256
    config.eval.every_steps = 250

    config.parallel = parallel_config()  # one device; mesh_shape=(-1,) splits batches over all
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
    config.model = ml_collections.ConfigDict()  # the keyword arguments of get_model
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
