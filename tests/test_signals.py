"""Tests for seqlstm/train/signals.py: SIGTERM and SIGINT stop a run cleanly, and are never
swallowed, with real signals on real subprocesses."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from launcher import stopped_step, wait_for_metrics
from smoke_runs import EPOCHS, assert_same_params, copy_of, read_rows, smoke

from experiments.launch import one_line_errors
from seqlstm.train import Checkpointer, loop, run, train_and_evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, JAX_PLATFORMS="cpu")


def test_sigterm_checkpoints_exits_cleanly_and_resumes_exactly(reference, tmp_path):
    workdir = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "experiments.train",
            "--config=configs/reverse.py:smoke",
            "--config.train.num_epochs=500",  # far more than the test waits for
            "--config.train.progress_bar=False",
            f"--workdir={workdir}",
        ],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_metrics(workdir)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    step = stopped_step(out)
    assert str(step) in os.listdir(workdir / "checkpoints")

    # Resume and finish; compare with an uninterrupted run of the same length.
    epochs = EPOCHS
    if step >= 4 * EPOCHS - 4:  # the signal came late (a loaded machine): a longer reference
        epochs, reference = step // 4 + 2, tmp_path / "reference"
        train_and_evaluate(smoke(num_epochs=epochs), str(reference))
    train_and_evaluate(smoke(num_epochs=epochs), str(workdir))
    assert_same_params(workdir, reference)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "steps_per_sec"} for r in rows]
    assert strip(read_rows(workdir)) == strip(read_rows(reference))


STALL_SECOND_SAVE = textwrap.dedent(
    """
    import sys, time
    from orbax.checkpoint._src.handlers import json_checkpoint_handler as handler
    from configs.reverse import get_config
    from seqlstm.train import train_and_evaluate

    save, saves = handler.JsonCheckpointHandler.async_save, []

    async def stalling_save(self, directory, *args, **kwargs):
        out = await save(self, directory, *args, **kwargs)
        saves.append(directory)
        if len(saves) == 2:  # step 8: meta written, the rest not yet
            print("STALLED", directory, flush=True)
            time.sleep(120)
        return out

    handler.JsonCheckpointHandler.async_save = stalling_save
    config = get_config("smoke")
    config.train.progress_bar = False
    config.train.checkpoint_every_steps = 4
    train_and_evaluate(config, sys.argv[1])
    """
)


STALL_SAVE_THEN_IGNORE_SIGTERM = STALL_SECOND_SAVE.replace(
    "from seqlstm.train import train_and_evaluate",
    "from seqlstm.train import signals, train_and_evaluate\nsignals.STOP_DEADLINE_S = 2.0",
)


def test_sigterm_ends_a_run_stuck_mid_save_and_the_last_complete_checkpoint_resumes(
    reference, tmp_path, capsys
):
    # The main thread is stuck in a checkpoint save (step 8: its metadata written, its arrays
    # not). Before, SIGTERM's handler only noted the signal and the run went on as if none had
    # come; now the watchdog ends the process within its deadline with os._exit, which, like
    # kill -9, runs no cleanup: the half-written checkpoint stays as the crash left it.
    proc = subprocess.Popen(
        [sys.executable, "-c", STALL_SAVE_THEN_IGNORE_SIGTERM, str(tmp_path)],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        assert line.startswith("STALLED"), line
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        proc.kill()
    assert "no clean stop within 2 s of SIGTERM" in proc.stderr.read()
    names = sorted(os.listdir(tmp_path / "checkpoints"))
    assert names == ["4", "8.orbax-checkpoint-tmp"], names  # 8 half-written, never renamed
    assert Checkpointer(str(tmp_path)).latest_step() == 4

    capsys.readouterr()
    train_and_evaluate(smoke(num_epochs=EPOCHS, checkpoint_every_steps=4), str(tmp_path))
    assert "Resuming" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["32", "36", "40"]
    assert_same_params(tmp_path, reference)


def test_a_second_sigint_stops_the_run_at_once_in_one_line(tmp_path, capsys, monkeypatch):
    # Ctrl-C twice: before, the second SIGINT's KeyboardInterrupt reached the launcher as a
    # traceback of a hundred lines (through orbax, wherever the main thread was).
    make_step = run.Run.train_step

    def twice_at_step_3(self, state):
        step = make_step(self, state)

        def signalled(state, batch):
            new, metrics = step(state, batch)
            if int(new.step) == 3:  # each handler runs as os.kill returns: the first requests a
                os.kill(os.getpid(), signal.SIGINT)  # stop, the second interrupts
                os.kill(os.getpid(), signal.SIGINT)
            return new, metrics

        return signalled

    monkeypatch.setattr(run.Run, "train_step", twice_at_step_3)
    main = lambda argv: train_and_evaluate(smoke(checkpoint_every_steps=2), str(tmp_path))
    try:
        with pytest.raises(SystemExit) as exit_:
            one_line_errors(main)(["train"])
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped the launcher: a traceback")
    assert exit_.value.code == 130
    assert capsys.readouterr().err == (
        "error: SIGINT again: stopped at once after step 2; the last complete checkpoint, "
        "step 2, is kept: run again to resume from it\n"
    )
    assert os.listdir(tmp_path / "checkpoints") == ["2"]


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_the_final_evaluation_is_one_line(reference, tmp_path, capsys, sig, code):
    # Before: SIGINT printed a KeyboardInterrupt traceback; SIGTERM ended the run silently.
    workdir = copy_of(reference, tmp_path)  # finished: running it again only evaluates it
    evaluate = loop.evaluate

    def signalled_on_test(*args, **kwargs):
        if kwargs["split_name"] == "test":
            os.kill(os.getpid(), sig)
        return evaluate(*args, **kwargs)

    def unhandled(signum, frame):  # what SIGTERM's default would do: end pytest itself
        raise AssertionError("the signal reached the handler from before the run")

    monkeypatch = pytest.MonkeyPatch()
    previous = signal.signal(signal.SIGTERM, unhandled)
    try:
        with monkeypatch.context() as m, pytest.raises(SystemExit) as exit_:
            m.setattr(loop, "evaluate", signalled_on_test)
            main = lambda argv: train_and_evaluate(smoke(num_epochs=EPOCHS), str(workdir))
            one_line_errors(main)(["train"])
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped the launcher: a traceback")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert exit_.value.code == code
    err = capsys.readouterr().err
    name = signal.Signals(sig).name
    assert err == (
        f"error: {name} during the final evaluation; training is done and checkpointed (step "
        f"40) in {workdir}: run again to evaluate it\n"
    )
    assert not (workdir / "results.json.tmp").exists()
