"""Export the high-res segmentation model as a SavedModel that serves raw images and text.

The SavedModel needs nothing but TensorFlow: tokenisation (with the vocabulary stored in it),
resize-and-pad, mean subtraction, the threshold and the resize back to the image's size run in
the graph, as the release's test loop (exp_test_referit_seg.py) did them in numpy. Its
signatures (see text_objseg_tf2/export.py):

  serving_default           image uint8 [H, W, 3|1], query string [Q]
                            -> mask uint8 0/1 [Q, H, W], scores float32 [Q, input_H, input_W]
  serving_image_bytes       image_bytes (encoded JPEG/PNG) string [], query string [Q] -> same
  scores_from_preprocessed  text_seq_batch int32 [T, N], imcrop_batch float32
                            [N, input_H, input_W, 3] (minus the channel mean) -> scores
  tokenize                  query string [Q] -> text_seq_batch int32 [T, Q]

    python exp-referit/export_saved_model.py \\
        --pretrained_model=./exp-referit/tfmodel/referit_fc8_seg_highres_iter_18000.tfmodel \\
        --vocab_file=./exp-referit/data/vocabulary_referit.txt \\
        --export_dir=./exp-referit/saved_model/referit_seg_highres/1

Run from the repository root. TensorFlow Serving wants a numbered version folder (the `/1`).
"""

import os

from absl import app, flags

from text_objseg_tf2 import flags as shared_flags

DEFAULT_MODEL = "./exp-referit/tfmodel/referit_fc8_seg_highres_iter_18000.tfmodel"
DEFAULT_VOCAB = "./exp-referit/data/vocabulary_referit.txt"
DEFAULT_EXPORT_DIR = "./exp-referit/saved_model/referit_seg_highres/1"


def define_flags(flag_values=None):
    fv = flag_values if flag_values is not None else flags.FLAGS
    flags.DEFINE_string("pretrained_model", DEFAULT_MODEL,
                        "Segmentation weights: a TF1 checkpoint of the release (V1/V2, any "
                        "LSTM names) or this project's weights file (seg_highres; a seg_lowres "
                        "model is exported with the bilinear upsampling filter).",
                        flag_values=fv)
    flags.DEFINE_string("vocab_file", DEFAULT_VOCAB,
                        "Vocabulary (one word per line), stored in the SavedModel.",
                        flag_values=fv)
    flags.DEFINE_string("export_dir", DEFAULT_EXPORT_DIR,
                        "Output SavedModel folder (replaced if it exists).", flag_values=fv)
    flags.DEFINE_integer("T", 20, "Words per sentence (first T kept, left-padded).",
                         flag_values=fv)
    flags.DEFINE_integer("input_H", 512, "Network input height (a multiple of 32).",
                         flag_values=fv)
    flags.DEFINE_integer("input_W", 512, "Network input width (a multiple of 32).",
                         flag_values=fv)
    flags.DEFINE_float("score_thresh", 1e-9, "Pixels with scores >= this are in the mask.",
                       flag_values=fv)
    flags.DEFINE_enum("jit_compile", "auto", ["auto", "true", "false"],
                      "Compile the network part with XLA (the string ops never are). 'auto' "
                      "= true. Use false for TensorFlow Serving on CPU unless it runs with "
                      "--xla_cpu_compilation_enabled=true.", flag_values=fv)
    shared_flags.define_gpu_flag(fv)
    flags.adopt_module_key_flags(shared_flags, flag_values=fv)  # list it in --help


def _folder_size(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path)
               for f in files)


def main(argv, flag_values=None):
    fv = flag_values if flag_values is not None else flags.FLAGS
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    shared_flags.apply_gpu_flag(fv.gpu_id)
    from text_objseg_tf2 import export, predict
    from text_objseg_tf2.util import text_processing

    try:
        vocab_dict = text_processing.load_vocab_dict_from_file(fv.vocab_file)
        net = predict.load_segmentation_net(fv.pretrained_model, vocab_dict, fv.vocab_file)
        path = export.export_saved_model(
            net, vocab_dict, fv.export_dir, input_H=fv.input_H, input_W=fv.input_W, T=fv.T,
            score_thresh=fv.score_thresh, jit_compile=fv.jit_compile)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    print(f"wrote the SavedModel ({_folder_size(path) / 2**20:.0f} MiB) to {path}\n"
          f"signatures: {', '.join(export.SIGNATURES)}; input {fv.input_H}x{fv.input_W}, "
          f"T={fv.T}, score_thresh={fv.score_thresh:g}, "
          f"XLA={export.resolve_jit_compile(fv.jit_compile)}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
