"""The body of the three training scripts, which differ only in their stage's defaults."""

from absl import app, flags

from text_objseg_tf2 import flags as shared_flags
from text_objseg_tf2.training import config, environment


def define_flags(stage):
    """Defines the stage's flags (the original's Parameters block and this port's additions)."""
    shared_flags.define_train_flags(config.flag_defaults(stage))


def main_for(stage):
    """The absl `main` of the training script of `stage`."""

    def main(argv):
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {argv[1:]}")
        shared_flags.apply_gpu_flag(flags.FLAGS.gpu_id)  # before TensorFlow touches a device
        environment.prepare(stage)  # before TensorFlow is imported
        from text_objseg_tf2 import training

        try:
            training.train(stage, **shared_flags.train_settings(config.flag_defaults(stage)))
        except (FileNotFoundError, ValueError, RuntimeError,
                training.TrainingDivergedError) as e:
            raise SystemExit(f"error: {e}") from None

    return main
