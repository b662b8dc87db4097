"""Runs every speed and memory benchmark and rewrites benchmarks/README.md's tables.

    python benchmarks/run_all.py

Run it on an otherwise idle machine: the scripts time one framework at a time.
`accelerator.py` is not among them: it is the GPU check, run on its own (see its docstring).
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = [
    "lstm_layer.py",
    "profile_step.py",
    "xla_cpu_probes.py",
    "cpu_devices.py",
    "train_step.py",
    "cpu_split.py",
    "precision.py",
    "memory.py",
]

if __name__ == "__main__":
    for script in SCRIPTS:
        print(f"== {script}", flush=True)
        subprocess.run([sys.executable, str(HERE / script), "--write"], check=True)
