"""Runs every speed and memory benchmark and rewrites benchmarks/README.md's tables.

    python -m benchmarks.run_all         # or: python benchmarks/run_all.py

Run it on an otherwise idle machine: the scripts time one framework at a time.
`accelerator.py` is not among them: it is the GPU check, run on its own (see its docstring).
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = [
    "lstm_layer",
    "profile_step",
    "xla_cpu_probes",
    "cpu_devices",
    "train_step",
    "cpu_split",
    "precision",
    "memory",
]

if __name__ == "__main__":
    for script in SCRIPTS:
        print(f"== {script}", flush=True)
        cmd = [sys.executable, "-m", f"benchmarks.{script}", "--write"]
        subprocess.run(cmd, check=True, cwd=ROOT)
