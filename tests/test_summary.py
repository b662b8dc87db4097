"""seqlstm/summary.py: Keras parameter counts and the table."""

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from seqlstm import LSTM, Bidirectional, StackedLSTM, count_params, summary


def keras_lstm_params(d, h):
    return 4 * h * (d + h + 1)  # one bias per gate, as Keras


def test_counts_match_keras_formula():
    assert keras_lstm_params(2, 64) == 17_152
    assert count_params(LSTM(2, 64, rngs=nnx.Rngs(0))) == 17_152
    assert count_params(StackedLSTM(2, (64, 32), rngs=nnx.Rngs(0))) == 17_152 + 12_416
    assert count_params(Bidirectional(2, 64, rngs=nnx.Rngs(0))) == 2 * 17_152
    # Bidirectional concat feeds 2H into the next layer.
    stacked_bi = StackedLSTM(2, (8, 4), bidirectional=True, rngs=nnx.Rngs(0))
    assert count_params(stacked_bi) == 2 * keras_lstm_params(2, 8) + 2 * keras_lstm_params(16, 4)


def test_summary_table_rows_shapes_and_totals():
    model = StackedLSTM(2, (64, 32), rngs=nnx.Rngs(0))
    text = summary(model, jnp.zeros((7, 10, 2)))
    lines = text.splitlines()
    row0 = next(line for line in lines if "layers/0 (LSTM)" in line)
    row1 = next(line for line in lines if "layers/1 (LSTM)" in line)
    assert "(7, 10, 64)" in row0 and row0.rstrip().endswith("17,152")
    assert "(7, 10, 32)" in row1 and row1.rstrip().endswith("12,416")
    top = next(line for line in lines if "(StackedLSTM)" in line)
    assert "(7, 32)" in top
    assert "Total params: 29,568" in text
    # Layers appear in call order.
    assert text.index("layers/0") < text.index("layers/1")


def test_summary_computes_nothing_and_accepts_kwargs():
    layer = Bidirectional(3, 4, return_state=True, rngs=nnx.Rngs(0))
    spec = jax.ShapeDtypeStruct((2, 9, 3), jnp.float32)
    text = summary(layer, spec, seq_lengths=jnp.array([9, 4]))
    assert "forward_layer (LSTM)" in text and "backward_layer (LSTM)" in text
    assert "(2, 8)" in text  # concat of two directions
    # The classes are restored after the summary.
    assert LSTM.__call__.__name__ == "__call__"


def test_counts_of_the_variants_match_torch_and_keras():
    """proj_size counts as PyTorch does (its second bias aside: seqlstm keeps Keras's one bias);
    dropout and recurrent_dropout add nothing, as in Keras (tests/test_interop_keras.py checks
    Keras's own count); layer norm adds its gains, peepholes 3H."""
    torch = pytest.importorskip("torch")
    d, h, p = 2, 64, 16
    module = torch.nn.LSTM(d, h, num_layers=2, bidirectional=True, proj_size=p)
    torch_count = sum(t.numel() for t in module.parameters())
    ours = StackedLSTM(2, (h, h), bidirectional=True, proj_size=p, rngs=nnx.Rngs(0))
    assert count_params(ours) == torch_count - 2 * 2 * 4 * h  # two layers, two directions
    assert "(1, 3, 32)" in summary(ours, jnp.zeros((1, 3, d)))
    plain = count_params(LSTM(d, h, rngs=nnx.Rngs(0)))
    assert count_params(LSTM(d, h, dropout=0.5, recurrent_dropout=0.5, rngs=nnx.Rngs(0))) == plain
    assert count_params(LSTM(d, h, layer_norm=True, rngs=nnx.Rngs(0))) == plain + 10 * h
    assert count_params(LSTM(d, h, peepholes=True, rngs=nnx.Rngs(0))) == plain + 3 * h
