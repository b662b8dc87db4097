"""Training: state, optimizer, jitted steps, the resumable loop, checkpoints and metrics."""

from seqlstm.train.checkpoint import Checkpointer, config_diff, prepare_workdir
from seqlstm.train.distributed import Cluster
from seqlstm.train.evaluate import evaluate
from seqlstm.train.loop import train_and_evaluate
from seqlstm.train.metrics import MetricSums, MetricWriter, summarize
from seqlstm.train.nonfinite import NonFiniteLossError, guard_nonfinite
from seqlstm.train.optim import OPTIMIZERS, make_optimizer
from seqlstm.train.parallel import DataParallel, SingleDevice
from seqlstm.train.run import Run, build, build_run, check_config
from seqlstm.train.state import ModelDef, TrainState, create_train_state, split_model
from seqlstm.train.steps import make_eval_step, make_train_step, masked_cross_entropy, masked_sums

__all__ = [
    "OPTIMIZERS",
    "Checkpointer",
    "Cluster",
    "DataParallel",
    "MetricSums",
    "MetricWriter",
    "ModelDef",
    "NonFiniteLossError",
    "Run",
    "SingleDevice",
    "TrainState",
    "build",
    "build_run",
    "check_config",
    "config_diff",
    "create_train_state",
    "evaluate",
    "guard_nonfinite",
    "make_eval_step",
    "make_optimizer",
    "make_train_step",
    "masked_cross_entropy",
    "masked_sums",
    "prepare_workdir",
    "split_model",
    "summarize",
    "train_and_evaluate",
]
