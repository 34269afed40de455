"""Download the ImageNet VGG-16 parameters of the release (vgg_params.npz).

Replaces models/convert_caffemodel/params/download_vgg_params.sh.

    python datasets/download_vgg_params.py [--dry_run] [--url=<mirror URL of vgg_params.npz>]
"""

from absl import app, flags

from text_objseg_tf2 import download

download.define_download_flags("./models/convert_caffemodel/params/",
                               [download.VGG_PARAMS.name])
FLAGS = flags.FLAGS


def main(argv):
    del argv
    return download.run_download_script((download.VGG_PARAMS,), FLAGS)


if __name__ == "__main__":
    app.run(main)
