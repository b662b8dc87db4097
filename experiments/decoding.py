"""Decoding inputs with a trained encoder-decoder's workdir (flag-free: `experiments/decode.py`
and the tests import it alike)."""

from __future__ import annotations

import os

import numpy as np

from experiments import plots
from experiments.commands import check_output, load_run_config, save_plot
from seqlstm.checks import check_int
from seqlstm.decoding import beam_search, greedy_decode
from seqlstm.tasks.seq2seq import format_tokens, parse_source
from seqlstm.tokens import BOS, EOS, PAD, pad_batch, strip
from seqlstm.train.restore import load_model


def show(ids, task: str) -> str:
    return ("" if task == "addition" else " ").join(format_tokens(ids, task))


def heatmap(path: str, sources, outputs, weights, task: str) -> None:
    """The attention weights of every output step over the input, one panel per input."""
    plots.plot_attention(
        weights,
        [format_tokens(src, task) for src in sources],
        [[*format_tokens(out, task), "<eos>"] for out in outputs],
        path,
        "attention of each output step over the input",
    )


def decode_inputs(
    workdir: str,
    inputs: list[str],
    *,
    beam_size: int = 1,
    length_penalty: float = 0.6,
    heatmap_path: str | None = None,
    trust_run_code: bool = False,
) -> None:
    """Prints each input and its output; with attention, writes the attention heat map.

    The run's family, the inputs and the heat map's folder are checked before the model loads;
    a heat map that cannot be written (say, a read-only workdir) is a warning after the outputs.

    Args:
      workdir: a run of `configs/seq2seq.py`.
      inputs: the sequences, as `experiments/decode.py` describes.
      beam_size: 1 decodes greedily; more runs beam search.
      length_penalty: beam search's length penalty alpha.
      heatmap_path: the PNG (default `<workdir>/attention.png`).
      trust_run_code: allow import paths in the run's config (`seqlstm.train.restore`).

    Raises:
      ValueError: one line: a run of another family, a bad input or flag, a missing folder.
    """
    check_int("--beam_size", beam_size, 1)
    config = load_run_config(workdir, "decode", trust_run_code=trust_run_code)
    task = config.data.task
    sources = [parse_source(text, task, config.data.num_symbols) for text in inputs]
    if heatmap_path is not None:
        check_output(heatmap_path, "--heatmap")
    longest = max(len(s) for s in sources)
    if longest > config.model.max_source_len:
        raise ValueError(
            f"an input has {longest} tokens, more than this model's max_source_len="
            f"{config.model.max_source_len}"
        )
    _, model, _ = load_model(workdir, trust_run_code=trust_run_code)
    src, lengths = pad_batch(sources, max(1, longest), vocab_size=model.source_vocab_size)
    if beam_size == 1:
        result = greedy_decode(model, src, lengths)
    else:
        result = beam_search(
            model, src, lengths, beam_size=beam_size, length_penalty=length_penalty
        )
    tokens = np.asarray(result.tokens)
    outputs = [strip(row) for row in tokens]
    for source, out, row in zip(sources, outputs, tokens):
        cut = "" if EOS in row else f"  (no EOS within max_target_len={model.max_target_len})"
        print(f"input:  {show(source, task) or '(empty)'}")
        print(f"output: {show(out, task) or '(empty)'}{cut}\n")
    if not model.attention:
        print("(no attention in this model: no heat-map)")
        return
    # The attention of the decoded outputs, from one teacher-forced pass over them.
    target_in = np.full((len(outputs), model.max_target_len), PAD, np.int32)
    target_in[:, 0] = BOS
    for i, out in enumerate(outputs):
        target_in[i, 1 : len(out) + 1] = out[: model.max_target_len - 1]
    _, weights = model(src, lengths, target_in, return_attention=True)
    path = heatmap_path or os.path.join(workdir, "attention.png")

    def draw(p):
        heatmap(p, sources, outputs, np.asarray(weights), task)

    if save_plot(draw, path, "attention heat-map"):
        print(f"attention heat-map: {path}")
