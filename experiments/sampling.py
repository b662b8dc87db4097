"""Text from a trained character model's workdir (flag-free: `experiments/sample.py` and the tests
import it alike)."""

from __future__ import annotations

from experiments.commands import load_run_config
from seqlstm.models.char import generate
from seqlstm.tasks.text import task_vocabulary
from seqlstm.train.restore import load_model


def sample(
    workdir: str,
    prompt: str,
    *,
    num_chars: int,
    temperature: float,
    seed: int = 0,
    trust_run_code: bool = False,
) -> str:
    """The `num_chars` characters a workdir's model writes after `prompt`.

    Reads the run's `config.json` (which rebuilds the vocabulary from the same corpus) and its
    latest checkpoint, then samples one character at a time from the last `data.context` ones.

    Args:
      workdir: a workdir holding a trained character model (`configs/chars.py`, `char_lm.py`).
      prompt: text to continue, only characters of the model's vocabulary ("" for the start of
        a file).
      num_chars: characters to generate.
      temperature: sampling temperature; 0 is greedy.
      seed: sampling seed.
      trust_run_code: allow import paths in the run's config (`seqlstm.train.restore`).

    Returns:
      The generated characters, without the prompt.

    Raises:
      ValueError: for a workdir without a trained character model (a run of another family is
        named before its model loads), a prompt with characters outside the vocabulary, or a
        bad `num_chars` / `temperature`.
    """
    load_run_config(workdir, "sample", trust_run_code=trust_run_code)
    config, model, _ = load_model(workdir, trust_run_code=trust_run_code)
    if not hasattr(model, "next_logits"):
        raise ValueError(
            f"workdir {workdir!r} holds a {config.model.get('name')!r} model on "
            f"{config.data.get('name')!r} data; sampling needs a character model "
            "(configs/chars.py or configs/char_lm.py)"
        )
    vocab = task_vocabulary(config.data)
    ids = vocab.encode(prompt, what="--prompt")
    newline = vocab.encode("\n", strict=False)
    out = generate(
        model,
        ids,
        context=config.data.context,
        num_chars=num_chars,
        temperature=temperature,
        seed=seed,
        pad_id=int(newline[0]) if newline.size else 0,
    )
    return vocab.decode(out)
