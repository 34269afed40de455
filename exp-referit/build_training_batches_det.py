"""Build the detection (region) training batches `<data_folder>/<data_prefix>_<n>.npz`.

Port of the original exp-referit/build_training_batches_det.py: same parameters (as flags),
same samples, negative subsampling, order and file contents. Run from the repository root.
"""

from absl import app, flags

from text_objseg_tf2 import batch_builders

flags.DEFINE_string("image_dir", "./exp-referit/referit-dataset/images/", "ReferIt images.")
flags.DEFINE_string("bbox_proposal_dir", "./exp-referit/data/referit_edgeboxes_top100/",
                    "EdgeBox proposals, <image>.txt with one 'xmin ymin xmax ymax' per line.")
flags.DEFINE_string("query_file", "./exp-referit/data/referit_query_trainval.json",
                    "Region -> referring expressions (JSON).")
flags.DEFINE_string("bbox_file", "./exp-referit/data/referit_bbox.json",
                    "Region -> ground-truth box (JSON).")
flags.DEFINE_string("imcrop_file", "./exp-referit/data/referit_imcrop.json",
                    "Image -> its regions (JSON).")
flags.DEFINE_string("imsize_file", "./exp-referit/data/referit_imsize.json",
                    "Image -> [width, height] (JSON).")
flags.DEFINE_string("vocab_file", "./exp-referit/data/vocabulary_referit.txt", "Vocabulary.")
flags.DEFINE_string("data_folder", "./exp-referit/data/train_batch_det/",
                    "Output folder of the batch files.")
flags.DEFINE_string("data_prefix", "referit_train_det", "Batch file name prefix.")
flags.DEFINE_float("pos_iou", .7, "Proposals with IoU >= pos_iou to the ground truth are "
                   "positives (with the ground-truth box itself).")
flags.DEFINE_float("neg_iou", 1e-6, "Proposals with IoU < neg_iou are negatives.")
flags.DEFINE_float("neg_to_pos_ratio", 1.0, "Negatives kept per positive (subsampled).")
flags.DEFINE_integer("N", 50, "Samples per batch.")
flags.DEFINE_integer("T", 20, "Words per expression (truncate / left-pad).")
flags.DEFINE_integer("num_workers", 1,
                     "Processes building batches in parallel (output identical to 1).")
flags.DEFINE_bool("skip_bad_samples", False,
                  "Check every image (and proposal file) first and leave out the samples whose "
                  "files are missing or corrupt (listed at the end) instead of stopping with an "
                  "error.")

FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        report = batch_builders.build_batches(
            "det", image_dir=FLAGS.image_dir, bbox_proposal_dir=FLAGS.bbox_proposal_dir,
            query_file=FLAGS.query_file, bbox_file=FLAGS.bbox_file,
            imcrop_file=FLAGS.imcrop_file, imsize_file=FLAGS.imsize_file,
            vocab_file=FLAGS.vocab_file, data_folder=FLAGS.data_folder,
            data_prefix=FLAGS.data_prefix, pos_iou=FLAGS.pos_iou, neg_iou=FLAGS.neg_iou,
            neg_to_pos_ratio=FLAGS.neg_to_pos_ratio, N=FLAGS.N, T=FLAGS.T,
            num_workers=FLAGS.num_workers, skip_bad_samples=FLAGS.skip_bad_samples)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    print("\n".join(report.summary_lines()))


if __name__ == "__main__":
    app.run(main)
