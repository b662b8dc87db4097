r"""Decodes sequences given on the command line with a trained encoder-decoder.

    python -m experiments.train --config=configs/seq2seq.py --workdir=runs/seq2seq
    python -m experiments.decode --workdir=runs/seq2seq --input="5 3 9 1 1 0 2 4 8 7 6 5 4 3 2 1"
    python -m experiments.decode --workdir=runs/add --input=123+45 --input=9+9 --beam_size=4

Inputs are numbers separated by spaces (reverse, dedup_reverse; each below the task's
`num_symbols`), or a sum such as `123+45` (addition). An empty input is an empty sequence. Prints
each input and its output; with attention, writes the attention weights of every output step over
the input as a heat-map PNG (`--heatmap`, default `<workdir>/attention.png`).
"""

from __future__ import annotations

import os

import numpy as np
from absl import app, flags

from seqlstm.data.seq2seq_tasks import format_tokens, parse_source
from seqlstm.decoding import beam_search, greedy_decode
from seqlstm.tokens import BOS, EOS, PAD, pad_batch, strip
from seqlstm.train.errors import one_line_errors
from seqlstm.train.restore import load_config, load_model

_WORKDIR = flags.DEFINE_string("workdir", None, "A run of configs/seq2seq.py.")
_INPUT = flags.DEFINE_multi_string("input", None, "A sequence to decode (repeat the flag).")
_BEAM = flags.DEFINE_integer("beam_size", 1, "1 decodes greedily; more runs beam search.")
_PENALTY = flags.DEFINE_float("length_penalty", 0.6, "Beam search's length penalty alpha.")
_HEATMAP = flags.DEFINE_string("heatmap", None, "PNG path (default <workdir>/attention.png).")
flags.mark_flags_as_required(["workdir", "input"])


def show(ids, task: str) -> str:
    return ("" if task == "addition" else " ").join(format_tokens(ids, task))


def heatmap(path: str, sources, outputs, weights, task: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(sources)
    fig, axes = plt.subplots(1, n, figsize=(4.5 * n, 4), squeeze=False)
    for ax, src, out, w in zip(axes[0], sources, outputs, weights):
        labels_x = format_tokens(src, task)
        labels_y = [*format_tokens(out, task), "<eos>"]
        if not labels_x:  # an empty input: nothing to attend to, all weights are zero
            ax.set_title("(empty input)")
            continue
        ax.imshow(w[: len(labels_y), : len(labels_x)], cmap="viridis", vmin=0.0, vmax=1.0)
        ax.set_xticks(range(len(labels_x)), labels_x, fontsize=7)
        ax.set_yticks(range(len(labels_y)), labels_y, fontsize=7)
        ax.set(xlabel="input", ylabel="output")
    fig.suptitle("attention of each output step over the input", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str]) -> None:
    config = load_config(_WORKDIR.value, example="configs/seq2seq.py")
    if config.model.name != "encoder_decoder":
        raise app.UsageError(f"{_WORKDIR.value} holds a {config.model.name!r} run, not seq2seq")
    task = config.data.task
    try:
        sources = [parse_source(text, task, config.data.num_symbols) for text in _INPUT.value]
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    _, model, _ = load_model(_WORKDIR.value)
    width = max(1, max(len(s) for s in sources))
    if width > model.max_source_len:
        longest = max(len(s) for s in sources)
        raise app.UsageError(
            f"an input has {longest} tokens, more than this model's max_source_len="
            f"{model.max_source_len}"
        )
    src, lengths = pad_batch(sources, width, vocab_size=model.source_vocab_size)
    if _BEAM.value == 1:
        result = greedy_decode(model, src, lengths)
    else:
        result = beam_search(
            model, src, lengths, beam_size=_BEAM.value, length_penalty=_PENALTY.value
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
    path = _HEATMAP.value or os.path.join(_WORKDIR.value, "attention.png")
    heatmap(path, sources, outputs, np.asarray(weights), task)
    print(f"attention heat-map: {path}")


if __name__ == "__main__":
    app.run(one_line_errors(main))
