"""Build the segmentation training batches `<data_folder>/<data_prefix>_<n>.npz`.

Port of the original exp-referit/build_training_batches_seg.py: same parameters (as flags),
same samples, order and file contents. Run from the repository root.
"""

from absl import app, flags

from text_objseg_tf2 import batch_builders

flags.DEFINE_string("image_dir", "./exp-referit/referit-dataset/images/", "ReferIt images.")
flags.DEFINE_string("mask_dir", "./exp-referit/referit-dataset/mask/",
                    "ReferIt ground-truth masks (<region>.mat, key segimg_t).")
flags.DEFINE_string("query_file", "./exp-referit/data/referit_query_trainval.json",
                    "Region -> referring expressions (JSON).")
flags.DEFINE_string("imsize_file", "./exp-referit/data/referit_imsize.json",
                    "Image sizes; read by the original but unused, kept for compatibility.")
flags.DEFINE_string("vocab_file", "./exp-referit/data/vocabulary_referit.txt", "Vocabulary.")
flags.DEFINE_string("data_folder", "./exp-referit/data/train_batch_seg/",
                    "Output folder of the batch files.")
flags.DEFINE_string("data_prefix", "referit_train_seg", "Batch file name prefix.")
flags.DEFINE_integer("T", 20, "Words per expression (truncate / left-pad).")
flags.DEFINE_integer("N", 10, "Samples per batch.")
flags.DEFINE_integer("input_H", 512, "Input image height (a multiple of 32).")
flags.DEFINE_integer("input_W", 512, "Input image width (a multiple of 32).")
flags.DEFINE_integer("num_workers", 1,
                     "Processes building batches in parallel (output identical to 1).")
flags.DEFINE_bool("skip_bad_samples", False,
                  "Check every image and mask first and leave out the samples whose files are "
                  "missing or corrupt (listed at the end) instead of stopping with an error.")

FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        report = batch_builders.build_batches(
            "seg", image_dir=FLAGS.image_dir, mask_dir=FLAGS.mask_dir,
            query_file=FLAGS.query_file, vocab_file=FLAGS.vocab_file,
            data_folder=FLAGS.data_folder, data_prefix=FLAGS.data_prefix, T=FLAGS.T, N=FLAGS.N,
            input_H=FLAGS.input_H, input_W=FLAGS.input_W, num_workers=FLAGS.num_workers,
            skip_bad_samples=FLAGS.skip_bad_samples)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    print("\n".join(report.summary_lines()))


if __name__ == "__main__":
    app.run(main)
