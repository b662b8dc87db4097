"""PyTorch equivalents of the shipped models and of the training stack's step, for train_step.py.

Each model takes `config.model` (the keyword arguments of `seqlstm.models.get_model`) and computes
what the seqlstm model computes, layer for layer, with `torch.nn.LSTM` (oneDNN on CPU, cuDNN on
GPU): the same sizes, the same connections, the same masked cross-entropy and Adam (with the
config's gradient clipping and cosine decay). Initial values differ (each framework draws its own);
a step costs the same whatever the weights are.

Only what the shipped configs use is built; anything else raises ValueError naming the field, so a
changed config fails loudly instead of timing a different model.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


def _require(model_config, key: str, allowed) -> None:
    value = model_config.get(key)
    if value not in allowed:
        raise ValueError(
            f"the PyTorch equivalent supports config.model.{key} in {allowed}, got {value!r}"
        )


class StateSeq(nn.Module):
    """`seqlstm.models.StateSeq`: LSTM 2 reads LSTM 1's outputs, from LSTM 1's final state."""

    def __init__(self, m):
        super().__init__()
        _require(m, "dropout", (0.0, 0))
        self.encoder = nn.LSTM(m["in_features"], m["hidden_size"], batch_first=True)
        self.decoder = nn.LSTM(m["hidden_size"], m["hidden_size"], batch_first=True)
        self.dense = nn.Linear(m["hidden_size"], m["num_classes"])

    def forward(self, batch: dict) -> torch.Tensor:
        # Every reversal row is full length (checked by `to_torch_batch`): no packing needed.
        y, state = self.encoder(batch["inputs"])
        y, _ = self.decoder(y, state)
        return self.dense(y)


class EncoderDecoder(nn.Module):
    """`seqlstm.EncoderDecoder` with one (bi)LSTM encoder layer, a linear bridge, one decoder
    layer without input feeding (the whole target in one LSTM call), and general or no attention.
    """

    def __init__(self, m):
        super().__init__()
        _require(m, "num_layers", (1,))
        _require(m, "decoder_layers", (None, 1))
        _require(m, "bridge", ("linear",))
        _require(m, "input_feeding", (False,))
        _require(m, "attention", (None, "general"))
        _require(m, "dropout", (0.0, 0))
        e, h = m["embed_dim"], m["hidden_size"]
        if e is None:
            raise ValueError("the PyTorch equivalent needs config.model.embed_dim (not one-hot)")
        keys = 2 * h if m["bidirectional"] else h
        self.source_embed = nn.Embedding(m["source_vocab_size"], e)
        self.target_embed = nn.Embedding(m["target_vocab_size"], e)
        self.encoder = nn.LSTM(e, h, batch_first=True, bidirectional=m["bidirectional"])
        self.bridge_h, self.bridge_c = nn.Linear(keys, h), nn.Linear(keys, h)
        self.decoder = nn.LSTM(e, h, batch_first=True)
        self.attention = m["attention"] is not None
        if self.attention:
            self.key_kernel = nn.Linear(keys, h, bias=False)  # seqlstm's `kernel [Hq, Hk]`
            self.combine = nn.Linear(keys + h, h, bias=False)
        self.output = nn.Linear(h, m["target_vocab_size"])

    def encode(self, source, lengths, full: bool):
        x = self.source_embed(source)
        if full:
            return self.encoder(x)
        packed = nn.utils.rnn.pack_padded_sequence(
            x, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        out, state = self.encoder(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return out, state

    def forward(self, batch: dict) -> torch.Tensor:
        source, lengths = batch["source"], batch["source_lengths"]
        values, (h, c) = self.encode(source, lengths, batch["full_length"])
        # [directions, B, H] -> [B, directions * H]: forward then backward, as seqlstm concatenates
        h = torch.cat(list(h), dim=-1)
        c = torch.cat(list(c), dim=-1)
        state = (torch.tanh(self.bridge_h(h))[None], self.bridge_c(c)[None])
        top, _ = self.decoder(self.target_embed(batch["target_in"]), state)
        if not self.attention:
            return self.output(top)
        scores = top @ self.key_kernel(values).transpose(1, 2)  # [B, T, S]
        valid = (torch.arange(values.shape[1], device=lengths.device)[None, :] < lengths[:, None])[
            :, None, :
        ]
        weights = torch.softmax(scores.masked_fill(~valid, -1e9), dim=-1) * valid
        context = weights @ values
        return self.output(torch.tanh(self.combine(torch.cat([context, top], dim=-1))))


class FeedingEncoderDecoder(nn.Module):
    """`seqlstm.EncoderDecoder` as configs/g2p.py builds it: a stacked (bi)LSTM encoder, a linear
    bridge per decoder layer, stacked decoder LSTM cells run step by step, with input feeding
    (h~_{t-1} joins the embedding of token t) or without, and additive attention (Bahdanau's
    score, Luong's placement: h~_t = tanh(W_c [context_t; h_t]), logits = W_o h~_t)."""

    def __init__(self, m):
        super().__init__()
        _require(m, "bridge", ("linear",))
        _require(m, "attention", ("additive",))
        _require(m, "dropout", (0.0, 0))
        _require(m, "input_dropout", (0.0, 0, None))
        e, h, layers = m["embed_dim"], m["hidden_size"], m["num_layers"]
        decoder_layers = m.get("decoder_layers") or layers
        dirs = 2 if m["bidirectional"] else 1
        keys, a = dirs * h, m.get("attention_size") or h
        self.dirs, self.feeding = dirs, bool(m["input_feeding"])
        self.source_embed = nn.Embedding(m["source_vocab_size"], e)
        self.target_embed = nn.Embedding(m["target_vocab_size"], e)
        self.encoder = nn.LSTM(
            e, h, num_layers=layers, batch_first=True, bidirectional=m["bidirectional"]
        )
        self.bridge_h = nn.ModuleList(nn.Linear(keys, h) for _ in range(decoder_layers))
        self.bridge_c = nn.ModuleList(nn.Linear(keys, h) for _ in range(decoder_layers))
        sizes = [e + h if self.feeding else e] + [h] * (decoder_layers - 1)
        self.cells = nn.ModuleList(nn.LSTMCell(n, h) for n in sizes)
        self.query_kernel = nn.Linear(h, a, bias=False)
        self.key_kernel = nn.Linear(keys, a, bias=False)
        self.v = nn.Linear(a, 1, bias=False)
        self.combine = nn.Linear(keys + h, h, bias=False)
        self.output = nn.Linear(h, m["target_vocab_size"])

    def forward(self, batch: dict) -> torch.Tensor:
        source, lengths = batch["source"], batch["source_lengths"]
        values, (h_n, c_n) = EncoderDecoder.encode(self, source, lengths, batch["full_length"])
        # h_n: [layers * dirs, B, H]; the top decoder_layers encoder layers feed the bridges.
        n = len(self.cells)
        h_n = h_n.view(-1, self.dirs, *h_n.shape[1:])[-n:]
        c_n = c_n.view(-1, self.dirs, *c_n.shape[1:])[-n:]
        states = [
            (
                torch.tanh(bh(torch.cat(list(h_n[i]), dim=-1))),
                bc(torch.cat(list(c_n[i]), dim=-1)),
            )
            for i, (bh, bc) in enumerate(zip(self.bridge_h, self.bridge_c))
        ]
        projected = self.key_kernel(values)  # [B, S, A]
        valid = torch.arange(values.shape[1], device=lengths.device)[None, :] < lengths[:, None]
        embedded = self.target_embed(batch["target_in"])
        feed = values.new_zeros(values.shape[0], self.combine.out_features)
        logits = []
        for t in range(embedded.shape[1]):
            x = torch.cat([embedded[:, t], feed], dim=-1) if self.feeding else embedded[:, t]
            for i, cell in enumerate(self.cells):
                states[i] = cell(x, states[i])
                x = states[i][0]
            scores = self.v(torch.tanh(self.query_kernel(x)[:, None, :] + projected))[..., 0]
            weights = torch.softmax(scores.masked_fill(~valid, -1e9), dim=-1) * valid
            context = (weights[:, :, None] * values).sum(dim=1)
            feed = torch.tanh(self.combine(torch.cat([context, x], dim=-1)))
            logits.append(self.output(feed))
        return torch.stack(logits, dim=1)


class Branch(nn.Module):
    def __init__(self, vocab: int, embed: int, units: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, units, batch_first=True, bidirectional=True)

    def forward(self, ids):
        _, (h, _) = self.lstm(self.embed(ids))
        return torch.cat([h[0], h[1]], dim=-1)  # forward final h, backward h at step 0


class TwoBranch(nn.Module):
    """`seqlstm.models.TwoBranchCharModel`."""

    def __init__(self, m):
        super().__init__()
        _require(m, "branches", ("both", "long", "short"))
        self.short_context = m["short_context"]
        v, e = m["vocab_size"], m["embed_dim"]
        self.long = Branch(v, e, m["long_units"]) if m["branches"] != "short" else None
        self.short = Branch(v, e, m["short_units"]) if m["branches"] != "long" else None
        features = 2 * m["long_units"] * (self.long is not None)
        features += 2 * m["short_units"] * (self.short is not None)
        dense = m["dense_units"]
        self.hidden = nn.Linear(features, dense) if dense else None
        self.out = nn.Linear(dense or features, v)

    def forward(self, batch: dict) -> torch.Tensor:
        x = batch["inputs"]
        feats = []
        if self.long is not None:
            feats.append(self.long(x))
        if self.short is not None:
            feats.append(self.short(x[:, x.shape[1] - self.short_context :]))
        f = torch.cat(feats, dim=-1)
        if self.hidden is not None:
            f = F.relu(self.hidden(f))
        return self.out(f)[:, None, :]


def build_model(model_config) -> nn.Module:
    """The PyTorch model of `config.model` (a mapping), or ValueError for one not built here."""
    m = dict(model_config)
    name = m["name"]
    if name == "state_seq":
        return StateSeq(m)
    if name == "encoder_decoder":
        stepwise = m.get("input_feeding") or m.get("attention") == "additive"
        return FeedingEncoderDecoder(m) if stepwise else EncoderDecoder(m)
    if name == "two_branch":
        return TwoBranch(m)
    raise ValueError(f"no PyTorch equivalent of model {name!r} in benchmarks/torch_models.py")


def to_torch_batch(batch: dict, device: str = "cpu") -> dict:
    """A numpy batch of the training stack as tensors (ids as int64, as nn.Embedding and the loss
    take them), with `full_length`: whether every source row is whole (no packing needed)."""
    out = {k: torch.from_numpy(np.asarray(v)).to(device) for k, v in batch.items()}
    for k in ("source", "target_in", "targets", "inputs"):
        if k in out and not out[k].is_floating_point():
            out[k] = out[k].long()
    if "source_lengths" in batch:
        out["full_length"] = bool(
            np.all(np.asarray(batch["source_lengths"]) == batch["source"].shape[1])
        )
    elif "inputs" in batch and out["inputs"].is_floating_point():
        # The reversal model runs its LSTMs unpacked: every row must be whole.
        if not bool(np.all(np.asarray(batch["mask"]))):
            raise ValueError("the PyTorch StateSeq equivalent needs full-length rows")
    return out


def masked_cross_entropy(logits, targets, mask, label_smoothing: float = 0.0) -> torch.Tensor:
    """`seqlstm.train.masked_cross_entropy`: mean cross-entropy over the valid steps, against
    label-smoothed targets with `label_smoothing` (`seqlstm.train.losses`' definition, which is
    PyTorch's: `smoothing / K` on every class)."""
    ce = F.cross_entropy(
        logits.flatten(0, 1).float(), targets.flatten(), reduction="none",
        label_smoothing=label_smoothing,
    )  # fmt: skip
    w = mask.flatten().float()
    return (ce * w).sum() / w.sum().clamp(min=1.0)


def make_train_step(model: nn.Module, optim_config, label_smoothing: float = 0.0):
    """`step(batch) -> loss`: forward, masked cross-entropy (label-smoothed with
    `label_smoothing`, as `config.train.label_smoothing`), backward, clipping, Adam, schedule.

    `optim_config` is `config.optim` (a mapping): Adam's `learning_rate`, `b1`, `b2`, `eps`
    (Keras defaults where missing, as `seqlstm.train.make_optimizer`), `grad_clip_norm` (0: off)
    and `decay_steps` (> 0: cosine decay to 0, optax's `cosine_decay_schedule`).
    """
    o = dict(optim_config)
    _require(o, "name", ("adam",))
    params = list(model.parameters())
    opt = torch.optim.Adam(
        params,
        lr=o.get("learning_rate", 1e-3),
        betas=(o.get("b1", 0.9), o.get("b2", 0.999)),
        eps=o.get("eps", 1e-7),
    )
    decay, clip = o.get("decay_steps", 0), o.get("grad_clip_norm", 0.0)
    schedule = None
    if decay:
        cosine = lambda s: 0.5 * (1 + math.cos(math.pi * min(s, decay) / decay))  # noqa: E731
        schedule = torch.optim.lr_scheduler.LambdaLR(opt, cosine)

    def step(batch: dict) -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = masked_cross_entropy(model(batch), batch["targets"], batch["mask"], label_smoothing)
        loss.backward()
        if clip and clip > 0:
            nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        if schedule is not None:
            schedule.step()
        return loss

    return step
