"""Download the release's ReferIt annotation files (exp-referit/data of the repository).

referit_query_*.json, referit_bbox.json, referit_imcrop.json, referit_imsize.json,
referit_*_imlist.txt and vocabulary_referit.txt, fetched from the GitHub repository
ronghanghu/text_objseg at the release commit and checked against their known sizes and
SHA-256 digests.

    python datasets/download_referit_annotations.py [--dry_run] [--files=vocabulary_referit.txt]
"""

from absl import app, flags

from text_objseg_tf2 import download

download.define_download_flags("./exp-referit/data/",
                               [r.name for r in download.ANNOTATION_FILES])
FLAGS = flags.FLAGS


def main(argv):
    del argv
    return download.run_download_script(download.ANNOTATION_FILES, FLAGS)


if __name__ == "__main__":
    app.run(main)
