"""Download the ReferIt images + masks and the EdgeBox top-100 proposals of the release.

Replaces exp-referit/referit-dataset/download_referit_dataset.sh: referitdata.tar.gz is
fetched into --output_dir and unpacked there (images/, mask/), referit_edgeboxes_top100.zip
into --proposal_dir (referit_edgeboxes_top100/). Resumable; run it again after a break.

    python datasets/download_referit_dataset.py [--dry_run]
    TEXT_OBJSEG_MIRROR=https://my.mirror/referit python datasets/download_referit_dataset.py
"""

from absl import app, flags

from text_objseg_tf2 import download

REMOTES = (download.REFERIT_DATASET, download.REFERIT_EDGEBOXES)

download.define_download_flags("./exp-referit/referit-dataset/", [r.name for r in REMOTES])
flags.DEFINE_string("proposal_dir", "./exp-referit/data/",
                    "Folder for referit_edgeboxes_top100.zip and its unpacked proposals.")
flags.DEFINE_boolean("keep_archive", True, "Keep the archives after unpacking them.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    return download.run_download_script(
        REMOTES, FLAGS, output_dirs={download.REFERIT_EDGEBOXES.name: FLAGS.proposal_dir},
        keep_archive=FLAGS.keep_archive)


if __name__ == "__main__":
    app.run(main)
