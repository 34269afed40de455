"""Initialise the low-resolution segmentation model from the trained detection model.

Port of the original exp-referit/init_referit_seg_lowres_from_det.py: every weight of the
region model, with fc6..fc8 and the classifier matrices reshaped into convolution kernels.
Same parameters (as flags) and defaults. The output format follows its name: `*.tfmodel` (the
default) -> a TF1 checkpoint with the release's names (single-file V1); `*.weights.h5` -> this
project's Keras weights file. Run from the repository root.
"""

from absl import app, flags

from text_objseg_tf2 import init_models


def define_flags(flag_values=None):
    fv = flag_values if flag_values is not None else flags.FLAGS
    flags.DEFINE_string("det_model", "./exp-referit/tfmodel/referit_fc8_det_iter_25000.tfmodel",
                        "Trained detection (region) model: a TF1 checkpoint of the release "
                        "(V1/V2, any LSTM names) or this project's weights file.", flag_values=fv)
    flags.DEFINE_string("seg_model", "./exp-referit/tfmodel/referit_fc8_seg_lowres_init.tfmodel",
                        "Output: the low-res segmentation model's initialisation.",
                        flag_values=fv)
    init_models.define_init_flags(fv)


def main(argv, flag_values=None):
    fv = flag_values if flag_values is not None else flags.FLAGS
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        fmt, path = init_models.init_seg_lowres_from_det(
            fv.det_model, fv.seg_model,
            expected_sizes=init_models.expected_sizes_from_flags(fv),
            tf1_format=fv.tf1_format, tf1_version=fv.tf1_version,
            lstm_spelling=fv.lstm_spelling)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    print(f"wrote the seg_lowres initialisation ({fmt}) to {path}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
