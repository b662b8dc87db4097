"""cuDNN correctness for benchmarks/accelerator.py: `backend="cudnn"`, the scan and PyTorch's LSTM.

A stack of LSTM layers (one direction or two, one layer or two, lengths or full length) runs
through `seqlstm.scan.lstm_scan` with `backend="scan"` and `backend="cudnn"`, and through
`torch.nn.LSTM` given the same weights; outputs, final states, and the gradients of a random linear
function of both with respect to every weight and the input are compared pairwise (TF32 off).
See accelerator.py's docstring for the cases and tolerances.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

B, T, D, H = 6, 12, 10, 16
LENGTHS = [T, 0, 5, 1, T, 3]
CASES = [  # name, layers, bidirectional, reversed, lengths
    ("1 layer, lengths", 1, False, False, True),
    ("1 reversed layer, lengths", 1, False, True, True),
    ("bidirectional, lengths", 1, True, False, True),
    ("2 layers bidirectional, lengths", 2, True, False, True),
    ("2 layers, full length", 2, False, False, False),
]
QUICK_CASES = [CASES[1], CASES[3]]
TOL = {"outputs": 1e-5, "states": 1e-5, "gradients": 1e-4}  # rtol = atol


class Skip(Exception):
    """A row that cannot run here (reported as skipped, with the reason)."""


def torch_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def require_cudnn() -> None:
    from seqlstm.scan import choose_backend

    try:
        choose_backend("cudnn", jnp.float32)
    except ValueError as e:
        raise Skip(str(e)) from None


def stack_params(key, layers: int, dirs: int) -> list[list[dict]]:
    from seqlstm.cell import init_params

    params, d = [], D
    for _ in range(layers):
        layer = []
        for _ in range(dirs):
            key, k1, k2 = jax.random.split(key, 3)
            p = init_params(k1, d, H)
            p["bias"] = 0.3 * jax.random.normal(k2, (4 * H,))
            layer.append(p)
        params.append(layer)
        d = dirs * H
    return params


def seqlstm_loss(params, x, cot, lengths, reverse: bool, backend: str):
    """A random linear function of a stack's outputs and final states (torch's order of states:
    layer 0 forward, layer 0 backward, layer 1 forward, ...), with the outputs and states."""
    from seqlstm.scan import lstm_scan

    states = []
    for layer in params:
        ys = []
        for k, p in enumerate(layer):
            y, s = lstm_scan(p, x, seq_lengths=lengths, reverse=reverse or k == 1, backend=backend)
            ys.append(y)
            states.append(s)
        x = jnp.concatenate(ys, axis=-1)
    total = jnp.sum(x * cot["y"])
    for s, gh, gc in zip(states, cot["h"], cot["c"]):
        total = total + jnp.sum(s.h * gh) + jnp.sum(s.c * gc)
    return total, (x, jnp.stack([s.h for s in states]), jnp.stack([s.c for s in states]))


def run_seqlstm(params, x, cot, lengths, reverse, backend) -> dict:
    grad = jax.grad(seqlstm_loss, argnums=(0, 1), has_aux=True)
    fn = jax.jit(grad, static_argnames=("reverse", "backend"))
    (g_params, g_x), (y, h, c) = fn(params, x, cot, lengths, reverse=reverse, backend=backend)
    flat = [np.asarray(g[k]) for layer in g_params for g in layer for k in sorted(g)]
    return {
        "outputs": [np.asarray(y)],
        "states": [np.asarray(h), np.asarray(c)],
        "gradients": [*flat, np.asarray(g_x)],
    }


def run_torch(params, x, cot, lengths) -> tuple[dict, np.ndarray]:
    """PyTorch's nn.LSTM with `params`' weights on the rows of non-zero length.

    Returns:
      `(results like run_seqlstm's, the rows used)`.
    """
    import torch

    dev = torch_device()
    layers, dirs = len(params), len(params[0])
    m = torch.nn.LSTM(D, H, num_layers=layers, bidirectional=dirs == 2, batch_first=True)
    m = m.to(dev)
    t = lambda a: torch.tensor(np.asarray(a), device=dev)  # noqa: E731
    with torch.no_grad():
        for i, layer in enumerate(params):
            for k, p in enumerate(layer):
                sfx = f"l{i}" + ("_reverse" if k else "")
                getattr(m, f"weight_ih_{sfx}").copy_(t(p["kernel"].T))
                getattr(m, f"weight_hh_{sfx}").copy_(t(p["recurrent_kernel"].T))
                getattr(m, f"bias_ih_{sfx}").copy_(t(p["bias"]))
                getattr(m, f"bias_hh_{sfx}").zero_()
    lengths = np.asarray(lengths)
    keep = np.nonzero(lengths > 0)[0]
    xt = t(np.asarray(x)[keep]).requires_grad_(True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        xt, torch.tensor(lengths[keep]), batch_first=True, enforce_sorted=False
    )
    y, (h, c) = m(packed)
    y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=T)
    ch, cc = np.asarray(cot["h"])[:, keep], np.asarray(cot["c"])[:, keep]
    loss = (y * t(np.asarray(cot["y"])[keep])).sum() + (h * t(ch)).sum() + (c * t(cc)).sum()
    loss.backward()
    grads = []
    for i, layer in enumerate(params):
        for k in range(len(layer)):
            sfx = f"l{i}" + ("_reverse" if k else "")
            g = {
                "bias": getattr(m, f"bias_ih_{sfx}").grad,
                "kernel": getattr(m, f"weight_ih_{sfx}").grad.T,
                "recurrent_kernel": getattr(m, f"weight_hh_{sfx}").grad.T,
            }
            grads += [g[key].cpu().numpy() for key in sorted(g)]
    out = {
        "outputs": [y.detach().cpu().numpy()],
        "states": [h.detach().cpu().numpy(), c.detach().cpu().numpy()],
        "gradients": [*grads, xt.grad.cpu().numpy()],
    }
    return out, keep


def compare(got: dict, want: dict) -> dict:
    out = {}
    for part, tol in TOL.items():
        err = max(float(np.max(np.abs(a - b), initial=0.0)) for a, b in zip(got[part], want[part]))
        ok = all(np.allclose(a, b, rtol=tol, atol=tol) for a, b in zip(got[part], want[part]))
        out[part] = {"max_abs_diff": err, "ok": bool(ok)}
    return out


def rows_of(res: dict, keep) -> dict:
    """`res` restricted to the batch rows `keep` (outputs and input gradient: axis 0; states:
    axis 1; weight gradients whole: a length-0 row adds nothing to them)."""
    return {
        "outputs": [res["outputs"][0][keep]],
        "states": [s[:, keep] for s in res["states"]],
        "gradients": [*res["gradients"][:-1], res["gradients"][-1][keep]],
    }


def attempt(fn) -> dict:
    """`fn()`, or the reason it was skipped or the error it raised."""
    try:
        return fn()
    except Skip as e:
        return {"status": "skipped", "reason": str(e)}
    except Exception as e:  # noqa: BLE001 - reported; the other comparisons go on
        return {"status": "error", "error": f"{type(e).__name__}: {e}"}


def check_case(name: str, layers: int, bidirectional: bool, reverse: bool, with_lengths: bool):
    """One row of the correctness section: cudnn, scan and PyTorch compared pairwise."""
    dirs = 2 if bidirectional else 1
    params = stack_params(jax.random.key(0), layers, dirs)
    x = jax.random.normal(jax.random.key(1), (B, T, D))
    lengths = jnp.array(LENGTHS if with_lengths else [T] * B, jnp.int32)
    ks = jax.random.split(jax.random.key(2), 3)
    cot = {
        "y": jax.random.normal(ks[0], (B, T, dirs * H)),
        "h": jax.random.normal(ks[1], (layers * dirs, B, H)),
        "c": jax.random.normal(ks[2], (layers * dirs, B, H)),
    }
    results = {}

    def ours(backend):
        if backend == "cudnn":
            require_cudnn()
        with jax.default_matmul_precision("highest"):  # TF32 off, cuDNN's too
            results[backend] = run_seqlstm(params, x, cot, lengths, reverse, backend)
        return results[backend]

    def theirs():
        if reverse and not bidirectional:
            raise Skip("torch.nn.LSTM has no unidirectional reversed layer")
        import torch

        cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
        saved = cudnn.allow_tf32, matmul.allow_tf32
        cudnn.allow_tf32 = matmul.allow_tf32 = False
        try:
            results["torch"], results["keep"] = run_torch(params, x, cot, lengths)
        finally:
            cudnn.allow_tf32, matmul.allow_tf32 = saved
        return results["torch"]

    def cudnn_vs_torch():
        if "cudnn" not in results or "torch" not in results:
            raise Skip("needs both the cudnn and the PyTorch results")
        return compare(results["torch"], rows_of(results["cudnn"], results["keep"]))

    ours("scan")
    return {
        "case": name,
        "cudnn vs scan": attempt(lambda: compare(ours("cudnn"), results["scan"])),
        f"PyTorch ({torch_device()}) vs scan": attempt(
            lambda: compare(theirs(), rows_of(results["scan"], results["keep"]))
        ),
        "cudnn vs PyTorch": attempt(cudnn_vs_torch),
    }


def correctness(cases) -> list[dict]:
    rows = []
    for case in cases:
        rows.append(check_case(*case))
        print(f"  {rows[-1]}", flush=True)
    return rows


def stand_in_cudnn() -> None:
    """Makes `backend="cudnn"` run `jax.experimental.rnn.lstm_ref` on CPU (as tests/test_cudnn.py
    does), so that the cuDNN rows of this script can be exercised without a GPU."""
    from jax.experimental import rnn

    import seqlstm.cudnn
    import seqlstm.kernels.backends

    def kernel(x, h0, c0, weights, lengths, input_size, hidden_size):
        w = rnn.unpack_lstm_weights(weights, input_size, hidden_size, 1, False)
        return rnn.lstm_ref(x, h0, c0, *w, lengths, input_size, hidden_size, 1, 0.0, False)

    seqlstm.kernels.backends.has_cudnn = lambda: True
    seqlstm.cudnn._kernel = kernel
