r"""Encoder-decoder with attention on variable-length sequence tasks.

    python -m experiments.train --config=configs/seq2seq.py --workdir=runs/seq2seq

trains a bidirectional LSTM encoder and an LSTM decoder with general (Luong) attention to reverse
sequences of length 16 (10 numbers), 2,000 steps of batch 64, in about 30 seconds on 2 CPU cores;
greedy decoding then gets all 1,000 test sequences exactly right (the printed
`decoded_sequence_accuracy`; the README's encoder-decoder study has every preset's result).

Presets through the argument, comma-separated:

    configs/seq2seq.py:task=dedup_reverse          # reverse, keep the first of each number
    configs/seq2seq.py:task=addition               # "123+45" -> "168", up to 3 digits
    configs/seq2seq.py:len=64,attention=none       # fixed length 64, no attention
    configs/seq2seq.py:minlen=4,len=32,bucket      # lengths 4..32, length bucketing
    configs/seq2seq.py:generalize                  # train on 1..16, test on 17..32
    configs/seq2seq.py:smoke                       # seconds: tiny model and data (tests)

`attention` is one of none, additive, dot, general, location. Any field can be set on the command
line too, e.g. `--config.model.hidden_size=128`; an unknown field is an error.
"""

from __future__ import annotations

import ml_collections

from configs.common import base_config, parse_presets
from seqlstm.tasks.seq2seq import SEQ2SEQ_TASKS, max_lengths, vocab_sizes

PRESET_KEYS = ("task", "len", "minlen", "attention", "generalize", "bucket", "seed", "smoke")
ATTENTION = ("none", "additive", "dot", "general", "location")


def parse_arg(arg: str | None) -> dict[str, str]:
    """`"smoke,len=8"` -> `{"smoke": "", "len": "8"}`.

    Raises:
      ValueError: for an unknown preset key or value.
    """
    out = parse_presets(arg, PRESET_KEYS)
    if out.get("task", "reverse") not in SEQ2SEQ_TASKS:
        raise ValueError(f"unknown task {out['task']!r}; expected one of {SEQ2SEQ_TASKS}")
    if out.get("attention", "general") not in ATTENTION:
        raise ValueError(f"unknown attention {out['attention']!r}; expected one of {ATTENTION}")
    return out


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The config of one run; `arg` selects presets (see the module docstring)."""
    presets = parse_arg(arg)
    config = base_config()

    d = config.data  # the keyword arguments of seqlstm.tasks.seq2seq.make_seq2seq_task
    d.name = "seq2seq"
    d.task = presets.get("task", "reverse")
    d.max_length = int(presets.get("len", 16))
    d.min_length = int(presets.get("minlen", d.max_length))  # fixed length unless minlen=
    d.test_min_length = d.min_length
    d.test_max_length = d.max_length
    d.num_symbols = 10
    d.num_digits = 3
    d.num_train = 20000
    d.num_val = 500
    d.num_test = 1000
    d.seed = 0
    if "generalize" in presets:
        d.min_length, d.max_length = 1, 16
        d.test_min_length, d.test_max_length = 17, 32

    m = config.model  # EncoderDecoder's keyword arguments
    m.name = "encoder_decoder"
    m.hidden_size = 64
    m.num_layers = 1
    m.embed_dim = 32
    m.bidirectional = True
    attention = presets.get("attention", "general")
    m.attention = None if attention == "none" else attention
    if attention == "dot":
        m.bidirectional = False  # dot scores need encoder outputs as wide as the decoder state
    m.input_feeding = False  # reversal needs no coverage memory; the fused whole-sequence path
    m.bridge = "linear"
    m.dropout = 0.0
    m.unroll = 1

    config.optim.learning_rate = 3e-3
    config.optim.grad_clip_norm = 1.0
    t = config.train  # a fixed budget: the study compares models at equal steps
    t.batch_size = 64
    t.num_steps = 2000
    t.log_every_steps = 100
    t.checkpoint_every_steps = 500
    t.buckets = (8, 16, 32, 64) if "bucket" in presets else ()
    config.eval.batch_size = 250
    config.eval.every_steps = 500

    if "seed" in presets:
        config.seed = d.seed = int(presets["seed"])
    if "smoke" in presets:
        d.num_train, d.num_val, d.num_test = 128, 32, 32
        if "len" not in presets and "generalize" not in presets:
            d.min_length, d.max_length = 1, 6
            d.test_min_length, d.test_max_length = 1, 6
        if "generalize" in presets:
            d.max_length, d.test_min_length, d.test_max_length = 4, 5, 8
        d.num_digits = min(d.num_digits, 2)
        m.hidden_size, m.embed_dim = 8, 4
        t.batch_size, t.num_steps = 16, 6
        t.log_every_steps, t.checkpoint_every_steps = 3, 0
        config.eval.batch_size, config.eval.every_steps = 16, 3

    # Derived once, after the presets: vocabularies and the longest sequences the model sees.
    m.source_vocab_size, m.target_vocab_size = vocab_sizes(d.task, d.num_symbols)
    longest = max(d.max_length, d.test_max_length)
    m.max_source_len, m.max_target_len = max_lengths(d.task, longest, d.num_digits)
    # Cosine decay to 0 over the run: the late, small steps settle the last few percent.
    config.optim.decay_steps = t.get_ref("num_steps")
    return config
