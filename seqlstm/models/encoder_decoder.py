"""The encoder-decoder models of the `"seq2seq"` and `"g2p"` tasks.

Both tasks train `seqlstm.EncoderDecoder` (`seqlstm/seq2seq.py`: encoder, bridge, attentional
decoder), a library class of its own, public since it is reused outside any task; this module is
the models family that names it for configs (`config.model.name = "encoder_decoder"`). The G2P
model is this class with the keyword arguments of `configs/g2p.py` (a bidirectional 2-layer
encoder, additive attention, input feeding, a linear bridge): it has no factory of its own.

Build one by name with `seqlstm.models.get_model("encoder_decoder", rngs=..., **kwargs)`;
`config.model` holds `name` and the keyword arguments.
"""

from __future__ import annotations

from flax import nnx

from seqlstm.seq2seq import EncoderDecoder

ENCODER_DECODERS: dict[str, type[nnx.Module]] = {"encoder_decoder": EncoderDecoder}

__all__ = ["ENCODER_DECODERS", "EncoderDecoder"]
