"""Download the three models released with the TF1 code (det, seg low-res, seg high-res).

Replaces exp-referit/tfmodel/download_trained_models.sh; the files are TF1 V1 checkpoints
(*.tfmodel) that --pretrained_model of the experiment scripts accepts as they are.

    python datasets/download_trained_models.py [--dry_run]
    python datasets/download_trained_models.py --files=referit_fc8_seg_highres_iter_18000.tfmodel
"""

from absl import app, flags

from text_objseg_tf2 import download

download.define_download_flags("./exp-referit/tfmodel/",
                               [r.name for r in download.TRAINED_MODELS])
FLAGS = flags.FLAGS


def main(argv):
    del argv
    return download.run_download_script(download.TRAINED_MODELS, FLAGS)


if __name__ == "__main__":
    app.run(main)
