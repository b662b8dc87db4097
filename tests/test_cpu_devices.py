"""Tests for seqlstm/train/cpu_devices.py: the split rule, the flag, and unchanged results."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
from launcher import xla_flags

from configs.chars import get_config as chars_config
from configs.g2p import get_config as g2p_config
from configs.reverse import get_config as reverse_config
from configs.seq2seq import get_config as seq2seq_config
from seqlstm.train import cpu_devices

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_with_the_native_kernel_one_device_takes_every_core(monkeypatch):
    # benchmarks/cpu_split.py: one device with the kernel beat the split for every config.
    from seqlstm.kernels import native

    monkeypatch.setattr(native, "native_available", lambda: True)
    for config in (chars_config(), g2p_config(), reverse_config()):
        assert cpu_devices.choose(config, 2) == (
            1,
            "the native LSTM kernel spreads each layer over every core already",
        )
    half = chars_config()
    half.model.dtype = "float16"  # the kernel runs float32 and bfloat16: the scan's rule decides
    assert cpu_devices.choose(half, 2)[0] == 2


def test_rule_splits_long_recurrences_with_enough_rows_per_device(monkeypatch):
    # Without the kernel (not built, or bfloat16): the scan's rule.
    from seqlstm.kernels import native

    monkeypatch.setattr(native, "native_available", lambda: False)
    assert cpu_devices.choose(chars_config(), 2)[0] == 2  # 64 rows, 512 steps per device
    assert cpu_devices.choose(reverse_config(), 2) == (
        1,
        f"16 rows per device is under {cpu_devices.MIN_ROWS}: splitting costs more",
    )
    assert cpu_devices.choose(seq2seq_config(), 2)[0] == 1  # 16 steps: dispatch-bound
    # G2P: words of up to 32 letters, pronunciations of up to 33 steps (the model's lengths).
    assert cpu_devices.choose(g2p_config(), 2) == (
        1,
        f"33 time steps a row is under {cpu_devices.MIN_STEPS}: splitting costs more",
    )
    assert cpu_devices.choose(chars_config(), 1) == (1, "one core")
    odd = chars_config()
    odd.train.batch_size = 129
    assert cpu_devices.choose(odd, 2) == (1, "train.batch_size=129 does not divide over 2 devices")


def test_flag_forces_a_count_and_falls_back_with_a_message():
    assert cpu_devices.parse_request("auto") is None and cpu_devices.parse_request("3") == 3
    for bad in ("0", "two", -1):
        with pytest.raises(ValueError, match="--cpu_devices must be 'auto' or a positive int"):
            cpu_devices.parse_request(bad)
    said = []
    config = reverse_config()
    config.train.batch_size = 33
    assert cpu_devices.configure(config, "2", cores=2, log=said.append) == 1
    assert said == [
        "--cpu_devices=2: train.batch_size=33 does not divide over 2 devices; training on one "
        "device"
    ]
    assert cpu_devices.configure(config, "1", cores=2, log=said.append) == 1
    config.parallel.mesh_shape = (4,)  # a mesh the user chose stays
    assert cpu_devices.configure(config, "2", cores=2, log=said.append) == 1 and len(said) == 1


SPLIT_EQUALS_ONE_DEVICE = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np
    from flax import nnx
    from configs.reverse import get_config
    from seqlstm.train import cpu_devices, train_and_evaluate
    from seqlstm.train.restore import load_model

    config = get_config("smoke")
    config.train.progress_bar = False
    assert cpu_devices.configure(config, "2", cores=2) == 2 and len(jax.devices()) == 2
    one = get_config("smoke")
    one.train.progress_bar = False
    out = {}
    for name, c in (("split", config), ("one", one)):
        res = train_and_evaluate(c, f"{sys.argv[1]}/{name}")
        _, model, _ = load_model(f"{sys.argv[1]}/{name}")
        leaves = jax.tree.leaves(nnx.state(model, nnx.Param))
        out[name] = {"test": res["test"], "val": res["val"],
                     "params": [np.asarray(x, np.float64).ravel().tolist() for x in leaves]}
    print(json.dumps(out))
    """
)


def test_split_over_two_cpu_devices_changes_nothing_but_rounding(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
    env["XLA_FLAGS"] = xla_flags()  # no device count from outside
    proc = subprocess.run(
        [sys.executable, "-c", SPLIT_EQUALS_ONE_DEVICE, str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Splitting each batch over 2 CPU devices" in proc.stdout
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    split, one = out["split"], out["one"]
    for key in ("loss", "token_accuracy"):
        assert split["val"][key] == pytest.approx(one["val"][key], rel=1e-5, abs=1e-6)
        assert split["test"][key] == pytest.approx(one["test"][key], rel=1e-5, abs=1e-6)
    for a, b in zip(split["params"], one["params"], strict=True):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6)
