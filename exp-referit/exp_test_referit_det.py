"""Detection test on ReferIt: recall@1, @10, @100 of the region model on EdgeBox proposals.

Port of the original exp-referit/exp_test_referit_det.py: its parameters are flags with the
same names and defaults, and the results are printed in its format. Run from the repository
root, e.g.

    python exp-referit/exp_test_referit_det.py --gpu_id=0 \
        --pretrained_model=./exp-referit/tfmodel/referit_fc8_det_iter_25000.tfmodel

--use_nms works here (the original's NMS branch referred to an undefined name and crashed).
"""

from absl import app, flags

from text_objseg_tf2 import flags as tos_flags

flags.DEFINE_string("image_dir", "./exp-referit/referit-dataset/images/", "ReferIt images.")
flags.DEFINE_string("bbox_proposal_dir", "./exp-referit/data/referit_edgeboxes_top100/",
                    "EdgeBox proposals, <image id>.txt with one 'xmin ymin xmax ymax' a line.")
flags.DEFINE_string("query_file", "./exp-referit/data/referit_query_test.json",
                    "Region -> referring expressions (JSON).")
flags.DEFINE_string("bbox_file", "./exp-referit/data/referit_bbox.json", "Region boxes (JSON).")
flags.DEFINE_string("imcrop_file", "./exp-referit/data/referit_imcrop.json",
                    "Image -> its regions (JSON).")
flags.DEFINE_string("imsize_file", "./exp-referit/data/referit_imsize.json",
                    "Image sizes (JSON), used for the proposals' spatial features.")
flags.DEFINE_string("vocab_file", "./exp-referit/data/vocabulary_referit.txt", "Vocabulary.")
flags.DEFINE_string("pretrained_model", "./exp-referit/tfmodel/referit_fc8_det_iter_25000.tfmodel",
                    "Weights: a release TF1 checkpoint (V1/V2) or this project's .weights.h5.")
tos_flags.define_model_size_flags()
flags.DEFINE_integer("N", 100, "Most proposals per image (the original's batch).")
flags.DEFINE_integer("D_im", 1000, "Visual feature size (fc8); kept for compatibility.")
flags.DEFINE_integer("D_text", 1000, "Text feature size (= lstm_dim); kept for compatibility.")
flags.DEFINE_float("correct_iou_thresh", 0.5, "A proposal is correct when its IoU is >= this.")
flags.DEFINE_bool("use_nms", False, "Rank the proposals after non-maximum suppression.")
flags.DEFINE_float("nms_thresh", 0.3, "NMS overlap threshold.")
tos_flags.define_gpu_flag()
flags.adopt_module_key_flags(tos_flags)  # list them in --help
flags.DEFINE_bool("batch_queries", True,
                  "An image's queries through the region classifier --query_batch_size at a "
                  "time (false: one at a time, the original's loop; the crops' VGG features "
                  "are computed once per image either way, as the original).")
flags.DEFINE_integer("query_batch_size", 1,
                     "Queries per classifier call in the batched path. 1 keeps every prediction "
                     "bit-identical to --batch_queries=false; more is faster on a GPU but "
                     "rounds differently (may flip near-threshold pixels or near-tie ranks).")
flags.DEFINE_bool("jit_compile", True, "XLA-compile the crop encoder (VGG).")
flags.DEFINE_bool("allow_tf32", False,
                  "Allow TensorFloat-32 matmuls/convs on Ampere+ GPUs (faster; the release's "
                  "numbers were computed in float32).")
flags.DEFINE_integer("max_images", None, "Evaluate only the first N images.")
flags.DEFINE_string("visualize_dir", None,
                    "Write PNG panels (image, ground-truth box, top proposal, query) here.")
flags.DEFINE_integer("visualize_num", 10, "Number of queries to draw with --visualize_dir.")
flags.DEFINE_bool("skip_bad_samples", False,
                  "Leave out images whose image or proposal file is missing or unreadable "
                  "(counted) instead of stopping with an error.")
flags.DEFINE_string("results_json", None, "Write the figures to this JSON file.")
flags.DEFINE_string("per_query_csv", None, "Write per-query hits and top-1 box to this CSV.")
flags.DEFINE_integer("num_workers", None,
                     "Threads for image loading and cropping (default min(4, CPUs)).")

FLAGS = flags.FLAGS
# Sizes come from the weights; these flags are kept for the original's interface.
SIZE_FLAGS = ("num_vocab", "embed_dim", "lstm_dim", "mlp_hidden_dims", "D_text", "D_im")


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
        results = evaluation.evaluate_det(
            FLAGS.pretrained_model, expected_sizes={n: _given(n) for n in SIZE_FLAGS},
            image_dir=FLAGS.image_dir,
            bbox_proposal_dir=FLAGS.bbox_proposal_dir, query_file=FLAGS.query_file,
            bbox_file=FLAGS.bbox_file, imcrop_file=FLAGS.imcrop_file,
            imsize_file=FLAGS.imsize_file, vocab_file=FLAGS.vocab_file, T=FLAGS.T, N=FLAGS.N,
            correct_iou_thresh=FLAGS.correct_iou_thresh, use_nms=FLAGS.use_nms,
            nms_thresh=FLAGS.nms_thresh, batch_queries=FLAGS.batch_queries,
            query_batch_size=FLAGS.query_batch_size, jit_compile=FLAGS.jit_compile,
            max_images=FLAGS.max_images, visualize_dir=FLAGS.visualize_dir,
            visualize_num=FLAGS.visualize_num, skip_bad_samples=FLAGS.skip_bad_samples,
            results_json=FLAGS.results_json, per_query_csv=FLAGS.per_query_csv,
            num_workers=FLAGS.num_workers)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    print("Final results on the whole test set")
    print(evaluation.format_det_results(results))
    if results["num_skipped"]:
        print(f"skipped {results['num_skipped']} queries with bad input (--skip_bad_samples)")


if __name__ == "__main__":
    app.run(main)
