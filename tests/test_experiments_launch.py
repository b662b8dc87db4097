"""Tests for experiments/launch.py: any launcher ends an error in one line, with its exit code."""

import errno
import sys

import jax
import pytest
from smoke_runs import smoke

from experiments.launch import one_line_errors
from seqlstm.train import run, train_and_evaluate
from seqlstm.train.storage import WorkdirWriteError


def test_errors_python_can_only_print_stay_behind_the_one_line_error(capsys, monkeypatch):
    # A run that hit a full disk: orbax's asyncio callbacks failed again on the way down, and
    # Python printed their tracebacks ("Exception ignored in ...") above the one-line cause.
    from absl import logging as absl_logging

    class FailsOnDelete:
        def __del__(self):
            raise RuntimeError("Event loop is closed")

    def failing(argv):
        FailsOnDelete()  # dropped at once: its error can only be printed
        raise WorkdirWriteError("/run/metrics.jsonl", OSError(errno.ENOSPC, "No space left"))

    def fine(argv):
        FailsOnDelete()

    verbosity = absl_logging.get_verbosity()
    try:
        monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)
        with pytest.raises(SystemExit) as exit_:
            one_line_errors(failing)(["train"])
        assert exit_.value.code == 1
        err = capsys.readouterr().err
        assert err.startswith("error: disk full writing /run/metrics.jsonl"), err
        assert err.count("\n") == 1, err
        monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)
        one_line_errors(fine)(["train"])  # no error of its own: the held report is printed
        assert "RuntimeError: Event loop is closed" in capsys.readouterr().err
    finally:
        absl_logging.set_verbosity(verbosity)


def test_out_of_memory_is_one_line_saying_what_to_change(tmp_path, capsys, monkeypatch):
    # XLA reports a full device as a JaxRuntimeError; before, a 77-line traceback.
    def train_step(self, state):
        def out_of_memory(state, batch):
            raise jax.errors.JaxRuntimeError(
                "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 17179869184 bytes.\n"
                "BufferAssignment OOM Debugging."
            )

        return out_of_memory

    monkeypatch.setattr(run.Run, "train_step", train_step)
    with pytest.raises(SystemExit) as exit_:
        one_line_errors(lambda argv: train_and_evaluate(smoke(), str(tmp_path)))(["train"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (
        "error: out of memory (RESOURCE_EXHAUSTED: Out of memory while trying to allocate "
        "17179869184 bytes.). Lower --config.train.batch_size=32 (or --config.eval.batch_size=32, "
        "or the model's size), or use a device with more memory. No checkpoint was saved, so this "
        "--workdir takes the changed config.\n"
    )


@pytest.mark.parametrize(
    "error, code, line",
    [
        (KeyboardInterrupt(), 130, "error: interrupted (SIGINT); a training run's workdir keeps"),
        (
            jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 8 bytes."),
            2,
            "error: out of memory (RESOURCE_EXHAUSTED: Out of memory allocating 8 bytes.); lower "
            "the batch size",
        ),
    ],
    ids=["interrupt", "out_of_memory"],
)
def test_any_launcher_ends_an_interrupt_or_out_of_memory_in_one_line(capsys, error, code, line):
    # decode, sample, pronounce and the studies share the wrapper: before, both were tracebacks.
    from absl import logging as absl_logging

    def main(argv):
        raise error

    verbosity = absl_logging.get_verbosity()
    try:
        with pytest.raises(SystemExit) as exit_:
            one_line_errors(main)(["decode"])
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped the launcher: a traceback")
    finally:
        absl_logging.set_verbosity(verbosity)
    err = capsys.readouterr().err
    assert exit_.value.code == code and err.startswith(line) and err.count("\n") == 1, err


def test_the_old_import_paths_reexport_the_moved_names():
    # seqlstm.train.errors and seqlstm.train.faults, split by what they held, stay for one release.
    from experiments import launch
    from seqlstm.train import causes, errors, faults, nonfinite, signals, storage

    assert errors.one_line_errors is launch.one_line_errors
    assert (errors.USAGE_EXIT, errors.RUNTIME_EXIT) == (2, 1)
    assert errors.WorkdirWriteError is storage.WorkdirWriteError
    assert errors.OutOfMemoryError is causes.OutOfMemoryError
    assert errors.Interrupted is faults.Interrupted is signals.Interrupted
    assert faults.NonFiniteLossError is nonfinite.NonFiniteLossError
    assert faults.restore_latest_readable is storage.restore_latest_readable
    assert faults.STOP_DEADLINE_S == signals.STOP_DEADLINE_S == 60.0
    with pytest.raises(AttributeError, match="no attribute 'one_line_error'"):
        errors.one_line_error  # noqa: B018


def test_the_old_launcher_names_say_where_they_went_outside_a_clone(monkeypatch):
    import importlib

    from seqlstm.train import errors

    real = importlib.import_module

    def without_experiments(name, *args):
        if name.startswith("experiments"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", without_experiments)
    with pytest.raises(ImportError, match="moved to experiments/launch.py"):
        errors.one_line_errors  # noqa: B018
    assert "one_line_errors" not in errors.__all__  # a star import works without a clone
