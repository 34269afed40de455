"""Train the high-resolution segmentation model from the low-res weights.

Port of the original exp-referit/exp_train_referit_seg_highres.py: its Parameters block as flags
with the same names and defaults, plus --gpu_id (the original's positional GPU argument) and
this port's additions (--resume, --strategy, --log_dir, ...). Run from the repository root.
The three training scripts differ only in their defaults (text_objseg_tf2/training/config.py).
"""

from absl import app, flags

from text_objseg_tf2 import flags as shared_flags
from text_objseg_tf2.training import config, environment

STAGE = "seg_highres"
DEFAULTS = config.flag_defaults(STAGE)
shared_flags.define_train_flags(DEFAULTS)
flags.adopt_module_key_flags(shared_flags)
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    shared_flags.apply_gpu_flag(FLAGS.gpu_id)  # before TensorFlow touches a device
    environment.prepare(STAGE)  # before TensorFlow is imported
    from text_objseg_tf2 import training

    try:
        training.train(STAGE, **shared_flags.train_settings(DEFAULTS))
    except (FileNotFoundError, ValueError, RuntimeError, training.TrainingDivergedError) as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    app.run(main)
