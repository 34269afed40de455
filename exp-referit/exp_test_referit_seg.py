"""Segmentation test on ReferIt: precision@0.5..0.9 and overall IoU of the high-res model.

Port of the original exp-referit/exp_test_referit_seg.py: its parameters are flags with the
same names and defaults, and the results are printed in its format. Run from the repository
root, e.g.

    python exp-referit/exp_test_referit_seg.py --gpu_id=0 \
        --pretrained_model=./exp-referit/tfmodel/referit_fc8_seg_highres_iter_18000.tfmodel

By default VGG runs once per image and the image's queries go through the rest of the network
(same predictions, bit for bit); --batch_queries=false runs the original's per-query loop.
"""

from absl import app, flags

from text_objseg_tf2 import flags as tos_flags

flags.DEFINE_string("image_dir", "./exp-referit/referit-dataset/images/", "ReferIt images.")
flags.DEFINE_string("mask_dir", "./exp-referit/referit-dataset/mask/",
                    "ReferIt ground-truth masks (<region>.mat, key segimg_t).")
flags.DEFINE_string("query_file", "./exp-referit/data/referit_query_test.json",
                    "Region -> referring expressions (JSON).")
flags.DEFINE_string("bbox_file", "./exp-referit/data/referit_bbox.json", "Region boxes (JSON).")
flags.DEFINE_string("imcrop_file", "./exp-referit/data/referit_imcrop.json",
                    "Image -> its regions (JSON).")
flags.DEFINE_string("imsize_file", "./exp-referit/data/referit_imsize.json",
                    "Image sizes (JSON); an image that disagrees gets a warning.")
flags.DEFINE_string("vocab_file", "./exp-referit/data/vocabulary_referit.txt", "Vocabulary.")
flags.DEFINE_string("pretrained_model",
                    "./exp-referit/tfmodel/referit_fc8_seg_highres_iter_18000.tfmodel",
                    "Weights: a release TF1 checkpoint (V1/V2) or this project's .weights.h5 "
                    "(a low-res model is evaluated with the bilinear upsampling filter).")
tos_flags.define_model_size_flags()
flags.DEFINE_integer("N", 1, "The original's batch size (one query); kept for compatibility.")
flags.DEFINE_integer("input_H", 512, "Network input height (a multiple of 32).")
flags.DEFINE_integer("input_W", 512, "Network input width (a multiple of 32).")
flags.DEFINE_float("score_thresh", 1e-9, "A pixel is predicted when its score is >= this.")
tos_flags.define_gpu_flag()
flags.adopt_module_key_flags(tos_flags)  # list them in --help
flags.DEFINE_bool("batch_queries", True,
                  "VGG once per image, then the image's queries through the classifier and "
                  "upsampling, --query_batch_size at a time (false: the original's loop, VGG "
                  "per query). Same predictions, bit for bit; ~5x faster.")
flags.DEFINE_integer("query_batch_size", 1,
                     "Queries per classifier call in the batched path. 1 keeps every prediction "
                     "bit-identical to --batch_queries=false; more is faster on a GPU but "
                     "rounds differently (may flip near-threshold pixels or near-tie ranks).")
flags.DEFINE_bool("jit_compile", True, "XLA-compile the image encoder (VGG).")
flags.DEFINE_bool("allow_tf32", False,
                  "Allow TensorFloat-32 matmuls/convs on Ampere+ GPUs (faster; the release's "
                  "numbers were computed in float32).")
flags.DEFINE_integer("max_images", None, "Evaluate only the first N images.")
flags.DEFINE_string("visualize_dir", None,
                    "Write PNG panels (image, ground truth, prediction, query) here.")
flags.DEFINE_integer("visualize_num", 10, "Number of queries to draw with --visualize_dir.")
flags.DEFINE_bool("skip_bad_samples", False,
                  "Leave out queries whose image or mask is missing or unreadable (counted) "
                  "instead of stopping with an error.")
flags.DEFINE_string("results_json", None, "Write the figures to this JSON file.")
flags.DEFINE_string("per_query_csv", None, "Write per-query I, U, IoU to this CSV file.")
flags.DEFINE_integer("num_workers", None,
                     "Threads for image loading and post-processing (default min(4, CPUs)).")

FLAGS = flags.FLAGS
# Sizes come from the weights; these flags are kept for the original's interface.
SIZE_FLAGS = ("num_vocab", "embed_dim", "lstm_dim", "mlp_hidden_dims")


def _given(name):
    return FLAGS[name].value if FLAGS[name].present else None


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    tos_flags.apply_gpu_flag(FLAGS.gpu_id)
    import tensorflow as tf

    from text_objseg_tf2 import evaluation

    tf.config.experimental.enable_tensor_float_32_execution(FLAGS.allow_tf32)
    try:
        results = evaluation.evaluate_seg(
            FLAGS.pretrained_model, expected_sizes={n: _given(n) for n in SIZE_FLAGS},
            image_dir=FLAGS.image_dir,
            mask_dir=FLAGS.mask_dir, query_file=FLAGS.query_file, bbox_file=FLAGS.bbox_file,
            imcrop_file=FLAGS.imcrop_file, imsize_file=FLAGS.imsize_file,
            vocab_file=FLAGS.vocab_file, T=FLAGS.T, input_H=FLAGS.input_H,
            input_W=FLAGS.input_W, score_thresh=FLAGS.score_thresh,
            batch_queries=FLAGS.batch_queries, query_batch_size=FLAGS.query_batch_size,
            jit_compile=FLAGS.jit_compile, max_images=FLAGS.max_images,
            visualize_dir=FLAGS.visualize_dir, visualize_num=FLAGS.visualize_num,
            skip_bad_samples=FLAGS.skip_bad_samples, results_json=FLAGS.results_json,
            per_query_csv=FLAGS.per_query_csv, num_workers=FLAGS.num_workers)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    print("Final results on the whole test set")
    print(evaluation.format_seg_results(results))
    if results["num_skipped"]:
        print(f"skipped {results['num_skipped']} queries with bad input (--skip_bad_samples)")


if __name__ == "__main__":
    app.run(main)
