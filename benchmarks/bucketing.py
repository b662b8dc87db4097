"""Length bucketing against plain padding: training on length-skewed seq2seq data.

    flock /tmp/seqlstm-heavy.lock python benchmarks/bucketing.py --write
    python benchmarks/bucketing.py --quick     # tiny (a smoke check)

The data is the reversal task with log-uniform lengths 2..64 (40% of sequences at most 8 long,
20% longer than 32): the skew of real corpora, where a few long sequences set the padded width.
Plain padding pads every batch to 64 steps; bucketing (`config.train.buckets = (8, 16, 32, 64)`)
puts each sequence in the smallest bucket that holds it and cuts the batch to that width. Both
train the same model (bidirectional LSTM(64) encoder, LSTM(64) decoder, general attention,
batch 64) through the train stack's jitted `train_step` for 8 epochs; compilation (one program
per bucket) is timed separately, after which every shape is warm.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

if not __package__:  # run as a file (python benchmarks/x.py): import as `python -m` would
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from benchmarks import cli  # noqa: E402
from benchmarks.common import machine, write_section  # noqa: E402
from seqlstm.data import bucketed_batches, train_batches  # noqa: E402
from seqlstm.seq2seq import EncoderDecoder  # noqa: E402
from seqlstm.tasks.seq2seq import vocab_sizes  # noqa: E402
from seqlstm.tokens import FIRST_ID, seq2seq_arrays  # noqa: E402
from seqlstm.train import create_train_state, make_optimizer, make_train_step, split_model  # noqa: E402

BUCKETS = (8, 16, 32, 64)


def skewed_reversal(num: int, max_len: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Reversal pairs with log-uniform lengths in [2, max_len]."""
    rng = np.random.default_rng(seed)
    lengths = np.exp(rng.uniform(np.log(2), np.log(max_len + 1), size=num)).astype(int)
    lengths = np.clip(lengths, 2, max_len)
    sources = [(FIRST_ID + rng.integers(0, 10, size=n)).tolist() for n in lengths]
    src_v, tgt_v = vocab_sizes("reverse")
    return seq2seq_arrays(
        sources, [s[::-1] for s in sources], max_source_len=max_len, max_target_len=max_len + 1,
        source_vocab_size=src_v, target_vocab_size=tgt_v,
    )  # fmt: skip


def run(split, batch_size: int, hidden: int, buckets, epochs: int) -> dict:
    src_v, tgt_v = vocab_sizes("reverse")
    max_len = split["source"].shape[1]
    model = EncoderDecoder(
        source_vocab_size=src_v, target_vocab_size=tgt_v, hidden_size=hidden, embed_dim=32,
        bidirectional=True, attention="general", input_feeding=False,
        max_source_len=max_len, max_target_len=max_len + 1, rngs=nnx.Rngs(0),
    )  # fmt: skip
    tx = make_optimizer({"name": "adam", "learning_rate": 3e-3, "grad_clip_norm": 1.0})
    model_def, params = split_model(model)
    state = create_train_state(params, tx, 0)
    step = jax.jit(make_train_step(model_def, tx))

    def batches(epoch):
        if buckets:
            return bucketed_batches(split, batch_size, boundaries=buckets, seed=0, epoch=epoch)
        return train_batches(split, batch_size, seed=0, epoch=epoch)

    # Compile every shape once (one per bucket) on a throwaway state.
    start = time.perf_counter()
    seen = set()
    for _, batch in batches(0):
        shape = (batch["source"].shape, batch["targets"].shape)
        if shape not in seen:
            seen.add(shape)
            jax.block_until_ready(step(state, batch))
    compile_s = time.perf_counter() - start
    steps = steps_tokens = padded_tokens = 0
    curve = []  # (seconds so far, the epoch's token-mean training loss)
    elapsed = 0.0
    for epoch in range(epochs):
        loss_sum = tokens = 0.0
        start = time.perf_counter()
        for _, batch in batches(epoch):
            state, metrics = step(state, batch)
            steps += 1
            steps_tokens += int(batch["mask"].sum())
            padded_tokens += batch["mask"].size
            loss_sum += metrics["loss_sum"]
            tokens += metrics["tokens"]
        loss = float(loss_sum / tokens)  # waits for the epoch's last step
        elapsed += time.perf_counter() - start
        curve.append((elapsed, loss))
    return {
        "seconds": elapsed,
        "compile_seconds": compile_s,
        "steps": steps,
        "shapes": sorted(s[0][1] for s in seen),
        "useful": steps_tokens / padded_tokens,
        "curve": curve,
    }


def time_to(curve, loss: float) -> float:
    """Training seconds until an epoch's mean loss first reaches `loss`."""
    return next((t for t, v in curve if v <= loss), float("nan"))


def main() -> None:
    parser = cli.parser(__doc__, quick="tiny sizes (smoke check)", reps=None, rounds=None)
    args = parser.parse_args()
    num, hidden, epochs, max_len = (256, 8, 2, 16) if args.quick else (4000, 64, 8, 64)
    buckets = (4, 8, 16) if args.quick else BUCKETS
    split = skewed_reversal(num, max_len)
    lengths = split["source_lengths"]
    plain = run(split, 64, hidden, (), epochs)
    bucketed = run(split, 64, hidden, buckets, epochs)
    speedup = plain["seconds"] / bucketed["seconds"]
    # Both runs reach the worse of the two final losses; compare the training time it took.
    target = max(plain["curve"][-1][1], bucketed["curve"][-1][1])
    to_target = time_to(plain["curve"], target) / time_to(bucketed["curve"], target)
    rows = [
        "| batching | source widths | compile | steps | target steps not padding | "
        f"train time, {epochs} epochs | loss after each epoch | time to loss {target:.3f} |",
        "|---|---|---:|---:|---:|---:|---|---:|",
    ]
    for name, r in (("plain padding", plain), (f"bucketing {buckets}", bucketed)):
        losses = " ".join(f"{v:.2f}" for _, v in r["curve"])
        rows.append(
            f"| {name} | {r['shapes']} | {r['compile_seconds']:.1f} s | {r['steps']} | "
            f"{r['useful']:.0%} | {r['seconds']:.1f} s | {losses} | "
            f"{time_to(r['curve'], target):.1f} s |"
        )
    body = "\n".join(
        [
            "## Length bucketing (seq2seq training)",
            "",
            f"`python benchmarks/bucketing.py --write` on {machine()}: {num} reversal pairs with "
            f"log-uniform lengths 2..{max_len} (median {int(np.median(lengths))}, "
            f"{np.mean(lengths <= 8):.0%} at most 8, {np.mean(lengths > 32):.0%} above 32), "
            f"batch 64, {epochs} epochs of a bidirectional LSTM({hidden}) encoder-decoder with "
            "general attention (Adam 3e-3), through the train stack's jitted step; compilation "
            "excluded from the train time.",
            "",
            *rows,
            "",
            f"**Speed-up from bucketing: {speedup:.2f}x per epoch, {to_target:.2f}x in training "
            f"time to the same loss.** Per epoch the gain is the padded steps no longer computed. "
            "Toward a given loss it is smaller: a bucketed batch holds one length only, so the "
            "batches of short sequences (most of them) count as much per update as those of "
            "long ones, which hold most of the tokens, and the loss over all tokens falls more "
            "slowly per epoch than with mixed batches. Compilation grows with the number of "
            "buckets (one program each), paid once per run.",
        ]
    )
    print(body)
    if args.write and not args.quick:
        write_section("bucketing", body)


if __name__ == "__main__":
    main()
