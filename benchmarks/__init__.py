"""Side-by-side speed and memory benchmarks of seqlstm, with their results in README.md.

A package, so the scripts import each other as `benchmarks.<name>`; run one from the repository
root as `python -m benchmarks.lstm_layer` (or `python benchmarks/lstm_layer.py`). Their shared
command line is `benchmarks.cli.parser`, their timing and README helpers `benchmarks.common`.
"""
