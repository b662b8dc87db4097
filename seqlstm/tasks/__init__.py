"""The built-in tasks, one module each, shaped like `examples/parity/parity.py`: the task function
(config keys in, a `seqlstm.task.Task` out), its evaluation hooks and its scoring.

  reverse.py   "reverse"  reversed sequences of ids, one-hot (the Keras example's task)
  seq2seq.py   "seq2seq"  variable-length reverse, dedup_reverse and addition as token arrays
  text.py      "text"     next-character windows over a text corpus (bits per character)
  g2p.py       "g2p"      grapheme-to-phoneme on CMUdict (WER and PER, greedy and beam search)
  hooks.py     the evaluation hooks any task can use (per-position accuracy, bits per token,
               decoding accuracy)
  registry.py  the names a config gives (`config.data.name`) -> task functions

What a task reads that is not its own (batching, bucketing, streams, corpora, tokens) lives in
`seqlstm.data` and `seqlstm.tokens`; the models that train on it live in `seqlstm.models`.

**Adding a fifth built-in task** touches four places and nothing else:
  1. `seqlstm/tasks/<name>.py`: `make_<name>_task(**config.data keys) -> Task`, with its hooks
     (or hooks from `hooks.py`) and its scoring, as `examples/parity/parity.py`;
  2. `seqlstm/models/<family>.py`: its model class (`batch_fields`, logits `[batch, T, classes]`),
     unless an existing model serves;
  3. `configs/<name>.py`: `get_config(arg=None)` naming both;
  4. the registries: one line in `TASKS` (`seqlstm/tasks/registry.py`) and, for a new model, one
     in `MODELS` (`seqlstm/models/registry.py`). A registered name is never renamed: saved runs'
     `config.json` name it.
Its tests go to `tests/test_tasks_<name>.py`. The training loop is not touched.
"""

from seqlstm.tasks.registry import TASKS, get_task

__all__ = ["TASKS", "get_task"]
