"""Train the high-resolution segmentation model from the low-res weights.

Port of the original exp-referit/exp_train_referit_seg_highres.py: its Parameters block as flags
with the same names and defaults, plus --gpu_id (the original's positional GPU argument) and
this port's additions (--resume, --strategy, --log_dir, ...). Run from the repository root.
The three training scripts differ only in their defaults (text_objseg_tf2/training/config.py).
"""

from absl import app, flags

from text_objseg_tf2 import flags as shared_flags
from text_objseg_tf2.training import cli

STAGE = "seg_highres"
cli.define_flags(STAGE)
flags.adopt_module_key_flags(shared_flags)  # list them in --help

if __name__ == "__main__":
    app.run(cli.main_for(STAGE))
