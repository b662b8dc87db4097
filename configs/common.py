"""What every config shares (not a config itself): the optimizer, train, eval and parallel
sections with their defaults, and preset arguments `configs/x.py:key=value,flag`.

A config starts from `base_config()`, sets its data and model, overrides the few fields that
differ, and computes fields derived from others once, after its presets. Loading a config imports
nothing from the training stack (no orbax).
"""

from __future__ import annotations

import ml_collections


def parse_presets(arg: str | None, keys: tuple[str, ...]) -> dict[str, str]:
    """`"smoke,len=8"` -> `{"smoke": "", "len": "8"}`.

    Raises:
      ValueError: for a key not in `keys`.
    """
    out = {}
    for part in filter(None, (arg or "").split(",")):
        key, _, value = part.partition("=")
        key = key.strip()
        if key not in keys:
            raise ValueError(f"unknown preset {key!r} in {arg!r}; expected keys {keys}")
        out[key] = value.strip()
    return out


def parallel_config() -> ml_collections.ConfigDict:
    """The `config.parallel` section: one device, no mesh (`seqlstm.train.parallel`)."""
    c = ml_collections.ConfigDict()
    c.mesh_shape = ()  # (): one device. (8,) or (-1,): data parallel; (4, 2): data x model
    c.axis_names = ("data", "model")  # names of the mesh axes, in the order of mesh_shape
    c.data_axis = "data"  # batches are split over this axis
    c.param_axis = "model"  # parameters are split over this axis if the mesh has it
    c.min_param_size = 2**16  # smaller parameter arrays stay replicated
    return c


def base_config() -> ml_collections.ConfigDict:
    """Seed, empty `data` and `model` sections, and the shared sections with their defaults."""
    config = ml_collections.ConfigDict()
    config.seed = 0  # parameters, batch order and dropout
    config.data = ml_collections.ConfigDict()  # `name` and the task function's keyword arguments
    config.model = ml_collections.ConfigDict()  # `name` and the model class's keyword arguments

    config.optim = ml_collections.ConfigDict()  # Keras's Adam defaults
    config.optim.name = "adam"
    config.optim.learning_rate = 1e-3
    config.optim.b1 = 0.9
    config.optim.b2 = 0.999
    config.optim.eps = 1e-7
    config.optim.grad_clip_norm = 0.0

    config.train = ml_collections.ConfigDict()
    t = config.train
    t.batch_size = 32  # Keras's fit default
    t.num_epochs = 0
    t.num_steps = 0  # > 0: train this many steps instead of num_epochs
    t.patience = 0  # evaluations without improvement of val loss; 0: no early stop
    t.min_delta = 0.0
    t.log_every_steps = 0  # 0: log at every evaluation only
    t.checkpoint_every_epochs = 0  # checkpoints also at the end and on SIGINT/SIGTERM
    t.checkpoint_every_steps = 0
    t.max_to_keep = 2
    t.stop_after_steps = 0  # > 0: checkpoint and stop here (preemption drill)
    t.progress_bar = True
    t.on_nan = "stop"  # or "skip": a step with a NaN or Inf loss changes nothing (a run
    # whose every step is skipped still fails at its end)
    t.label_smoothing = 0.0  # > 0: train on label-smoothed targets (seqlstm.train.losses)
    t.buckets = ()  # e.g. (8, 16, 32, 64): length bucketing (seqlstm.data.bucketing)
    # 1: one malloc arena for every thread, so a step's blocks above 64 MiB are kept for the next
    # step (the launcher applies it before JAX starts; seqlstm/train/host_memory.py); 0: glibc's.
    t.malloc_arenas = 0

    config.eval = ml_collections.ConfigDict()
    config.eval.batch_size = 256
    config.eval.every_steps = 0  # 0: every epoch

    config.parallel = parallel_config()  # one device; mesh_shape=(-1,) splits batches over all
    return config
