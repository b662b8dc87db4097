"""experiments/plots.py: the one attention heat map of `decode` and `pronounce`, checked by its
axes (tick labels, names, title), not its pixels."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from experiments import decoding, plots, pronouncing  # noqa: E402
from seqlstm.tasks.g2p import encode_phones, encode_word, vocab_sizes  # noqa: E402
from seqlstm.tasks.seq2seq import encode_addition  # noqa: E402
from seqlstm.tokens import EOS, PAD  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def ticks(ax, axis: str) -> list[str]:
    return [t.get_text() for t in getattr(ax, f"get_{axis}ticklabels")()]


def test_one_panel_per_example_with_its_labels_and_the_weights_cut_to_them():
    w = np.arange(4 * 5, dtype=np.float32).reshape(4, 5) / 20  # [target 4, source 5], padded
    fig = plots.attention_figure(
        [w, np.zeros((4, 5))], [["a", "b", "c"], []], [["x", "<eos>"], ["<eos>"]], "the title",
        xlabel="letters", ylabel="phones",
    )  # fmt: skip
    try:
        first, empty = fig.axes
        assert ticks(first, "x") == ["a", "b", "c"] and ticks(first, "y") == ["x", "<eos>"]
        assert (first.get_xlabel(), first.get_ylabel()) == ("letters", "phones")
        np.testing.assert_array_equal(first.images[0].get_array(), w[:2, :3])
        assert empty.get_title() == "(empty input)" and not empty.images
        assert fig._suptitle.get_text() == "the title"
        assert tuple(fig.get_size_inches()) == pytest.approx((9.0, 4.0))  # 2 panels of 4.5 x 4
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match=r"one entry per example, got 1, 2 and 1$"):
        plots.attention_figure([w], [["a"], ["b"]], [["x"]], "t")
    with pytest.raises(ValueError, match=r"weights\[0\] has shape \(5,\); expected \[target"):
        plots.attention_figure([np.ones(5)], [["a"]], [["x"]], "t")


@pytest.fixture
def drawn(monkeypatch):
    """The figures `plots.plot_attention` draws (closed once written), for their axes."""
    figures = []
    draw = plots.attention_figure

    def record(*args, **kwargs):
        figures.append(draw(*args, **kwargs))
        return figures[-1]

    monkeypatch.setattr(plots, "attention_figure", record)
    return figures


def test_decode_heatmap_is_the_shared_plot_with_tokens_as_labels(tmp_path, drawn):
    path = tmp_path / "attention.png"
    sources, outputs = [encode_addition("12+3")], [encode_addition("15")]
    decoding.heatmap(str(path), sources, outputs, np.full((1, 4, 4), 0.25), "addition")
    assert path.read_bytes().startswith(PNG) and not plt.get_fignums()
    (ax,) = drawn[0].axes
    assert ticks(ax, "x") == ["1", "2", "+", "3"] and ticks(ax, "y") == ["1", "5", "<eos>"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("input", "output")
    assert drawn[0]._suptitle.get_text() == "attention of each output step over the input"


class ToyG2P:
    """Stands in for a G2P model: uniform attention over the letters, [words, 4 steps, letters]."""

    source_vocab_size, max_target_len = vocab_sizes()[0], 4

    def __call__(self, src, lengths, target_in, return_attention):
        assert return_attention and target_in.shape == (len(src), self.max_target_len)
        return None, np.ones((len(src), self.max_target_len, src.shape[1])) / src.shape[1]


def test_pronounce_plot_is_the_shared_plot_with_letters_and_phones(tmp_path, drawn):
    path = tmp_path / "hi.png"
    words = ["hi", "a"]
    best = np.array(
        [[*encode_phones(["HH", "AY"]), EOS, PAD], [*encode_phones(["AH"]), EOS, PAD, PAD]]
    )
    pronouncing.plot_attention(str(path), [ToyG2P()], words, list(map(encode_word, words)), best,
                               stress=False)  # fmt: skip
    assert path.read_bytes().startswith(PNG) and not plt.get_fignums()
    hi, a = drawn[0].axes
    assert ticks(hi, "x") == ["h", "i"] and ticks(hi, "y") == ["HH", "AY", "<eos>"]
    assert ticks(a, "x") == ["a"] and ticks(a, "y") == ["AH", "<eos>"]
    assert (hi.get_xlabel(), hi.get_ylabel()) == ("letters", "phones")
    np.testing.assert_allclose(hi.images[0].get_array(), np.full((3, 2), 0.5))
    assert drawn[0]._suptitle.get_text() == "attention of each phone over the letters"


def test_a_plot_that_cannot_be_written_raises_oserror_and_closes_its_figure(tmp_path):
    with pytest.raises(OSError):
        plots.plot_attention([np.ones((1, 1))], [["a"]], [["x"]], str(tmp_path / "no/x.png"), "t")
    assert not plt.get_fignums()
