"""Every config in configs/ loads, describes itself, and builds its model; presets work."""

import glob
import os

import jax
import jax.numpy as jnp
import pytest
from absl import flags
from ml_collections import config_flags

from seqlstm.models import VARIANTS
from seqlstm.train import build

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Every experiment config; `common.py` and `_name.py` files are shared helpers, not configs.
CONFIGS = sorted(
    p
    for p in glob.glob(os.path.join(ROOT, "configs", "*.py"))
    if not os.path.basename(p).startswith("_") and os.path.basename(p) != "common.py"
)


def load(path, arg=None, *overrides):
    """Loads a config exactly as `experiments/train.py --config=path[:arg] [overrides]` does."""
    argv = ["train.py", f"--config={path}:{arg}" if arg else f"--config={path}", *overrides]
    values = flags.FlagValues()
    config_flags.DEFINE_config_file(
        "config", None, flag_values=values, lock_config=True, sys_argv=argv
    )
    values(argv)
    return values.config


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_loads_documents_its_command_and_builds_its_model(path):
    with open(path) as f:
        source = f.read()
    assert "python -m experiments.train --config=configs/" in source.split('"""')[1]
    for arg in (None, "smoke"):
        config = load(path, arg)
        data, model, _ = build(config)
        test = data["test"]
        if "source" in test:  # an encoder-decoder reads (source, source_lengths, target_in)
            x = [jnp.asarray(test[k][:2]) for k in ("source", "source_lengths", "target_in")]
        else:
            x = [jnp.asarray(test["inputs"][:2])]
        classes = (
            config.model.get("num_classes")
            or config.model.get("vocab_size")
            or config.model.get("target_vocab_size")
        )
        assert jax.eval_shape(model, *x).shape == (
            2,
            *data["test"]["targets"].shape[1:],
            classes,
        )


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_preset_builds(variant):
    config = load(os.path.join(ROOT, "configs", "reverse.py"), f"smoke,variant={variant},len=6")
    _, model, _ = build(config)
    assert type(model) is VARIANTS[variant] and model.length == 6


def test_reverse_presets_and_linked_fields():
    path = os.path.join(ROOT, "configs", "reverse.py")
    config = load(path, "variant=state_seq,len=8")
    assert (config.model.name, config.data.length, config.model.length) == ("state_seq", 8, 8)
    config = load(path, "seed=2,len=16")
    assert (config.seed, config.data.seed, config.model.length) == (2, 2, 16)
    # The model's length and vocabulary follow the data's.
    config.data.length = 5
    config.data.vocab_size = 7
    assert (config.model.length, config.model.in_features, config.model.num_classes) == (5, 7, 7)
    with pytest.raises(flags.IllegalFlagValueError, match="unknown preset 'lenght'"):
        load(path, "lenght=8")


def test_overrides_apply_and_unknown_keys_are_rejected():
    path = os.path.join(ROOT, "configs", "reverse.py")
    config = load(path, "smoke", "--config.model.hidden_size=32", "--config.data.length=6")
    assert (config.model.hidden_size, config.model.length) == (32, 6)
    with pytest.raises(KeyError, match='Did you mean "train"'):
        load(path, "smoke", "--config.trian.x=1")
    with pytest.raises(AttributeError, match="batchsize"):
        config.train.batchsize = 1  # locked
