"""The attention heat map that `experiments.decode` and `experiments.pronounce` draw (flag-free:
the commands and the tests import it alike)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def attention_figure(
    weights: Sequence[np.ndarray],
    source_labels: Sequence[Sequence[str]],
    target_labels: Sequence[Sequence[str]],
    title: str,
    *,
    xlabel: str = "input",
    ylabel: str = "output",
    panel_size: tuple[float, float] = (4.5, 4.0),
    fontsize: float = 7,
):
    """The attention of each output step over the input, one panel per example, as a figure.

    Args:
      weights: per example, its attention weights `[target_steps, source_steps]`, cut to its
        labels (the rest is padding). An output cut off at the model's `max_target_len` has one
        label more than weight rows (its "<eos>" was never produced): that label goes unpainted.
      source_labels: per example, the label of each input step (the panel's x ticks).
      target_labels: per example, the label of each output step (the y ticks), EOS included.
      title: the figure's title.
      xlabel, ylabel: the axes' names.
      panel_size: `(width, height)` of one panel, in inches.
      fontsize: of the tick labels.

    Returns:
      The matplotlib figure (Agg), one axes per example; an example without inputs gets an empty
      panel titled "(empty input)". Close it with `plt.close(fig)` when done.

    Raises:
      ValueError: the three lists differ in length, or a weight matrix is not 2-D.
    """
    if not len(weights) == len(source_labels) == len(target_labels):
        raise ValueError(
            f"weights, source_labels and target_labels must have one entry per example, got "
            f"{len(weights)}, {len(source_labels)} and {len(target_labels)}"
        )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(weights)
    width, height = panel_size
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False)
    try:
        for i, (ax, w, xs, ys) in enumerate(zip(axes[0], weights, source_labels, target_labels)):
            w = np.asarray(w)
            if w.ndim != 2:
                raise ValueError(
                    f"weights[{i}] has shape {w.shape}; expected [target_steps, source_steps]"
                )
            if not xs:  # an empty input: nothing to attend to, all weights are zero
                ax.set_title("(empty input)")
                continue
            ax.imshow(w[: len(ys), : len(xs)], cmap="viridis", vmin=0.0, vmax=1.0)
            ax.set_xticks(range(len(xs)), list(xs), fontsize=fontsize)
            ax.set_yticks(range(len(ys)), list(ys), fontsize=fontsize)
            ax.set(xlabel=xlabel, ylabel=ylabel)
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
    except BaseException:
        plt.close(fig)
        raise
    return fig


def plot_attention(
    weights: Sequence[np.ndarray],
    source_labels: Sequence[Sequence[str]],
    target_labels: Sequence[Sequence[str]],
    path: str,
    title: str,
    **style,
) -> None:
    """Writes `attention_figure(weights, source_labels, target_labels, title, **style)` to the
    PNG `path` (an OSError if it cannot be written: `experiments.commands.save_plot` makes that a
    warning)."""
    import matplotlib.pyplot as plt

    fig = attention_figure(weights, source_labels, target_labels, title, **style)
    try:
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
