"""Training of the three stages (det, seg_lowres, seg_highres) as the original scripts did.

    from text_objseg_tf2 import training
    result = training.train("seg_lowres", max_iter=200, data_folder=..., snapshot_file=...)

See `loop.train` for the entry point, `config.STAGES` for the defaults, `trainer.Trainer` for
the step and `optimizer.TF1Momentum` for the solver. TensorFlow is imported on first use of the
entry points, so `training.config` (the flags' defaults) stays light.
"""

import importlib

_LAZY = {
    "STAGES": "config", "TrainConfig": "config", "flag_defaults": "config",
    "stage_config": "config", "TrainingDivergedError": "loop", "TrainResult": "loop",
    "run": "loop", "train": "loop",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
