"""Initialise the high-resolution segmentation model from the trained low-resolution model.

Port of the original exp-referit/init_referit_seg_highres_from_lowres.py: every weight of the
low-res model plus the bilinear filter in `classifier/upsample32s/weights`. Same parameters (as
flags) and defaults. The output format follows its name: `*.tfmodel` (the default) -> a TF1
checkpoint with the release's names (single-file V1); `*.weights.h5` -> this project's Keras
weights file. Run from the repository root.
"""

from absl import app, flags

from text_objseg_tf2 import init_models


def define_flags(flag_values=None):
    fv = flag_values if flag_values is not None else flags.FLAGS
    flags.DEFINE_string("lowres_model",
                        "./exp-referit/tfmodel/referit_fc8_seg_lowres_iter_30000.tfmodel",
                        "Trained low-res segmentation model: a TF1 checkpoint of the release "
                        "(V1/V2, any LSTM names) or this project's weights file.", flag_values=fv)
    flags.DEFINE_string("highres_model",
                        "./exp-referit/tfmodel/referit_fc8_seg_highres_init.tfmodel",
                        "Output: the high-res segmentation model's initialisation.",
                        flag_values=fv)
    init_models.define_init_flags(fv)


def main(argv, flag_values=None):
    fv = flag_values if flag_values is not None else flags.FLAGS
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        fmt, path = init_models.init_seg_highres_from_lowres(
            fv.lowres_model, fv.highres_model,
            expected_sizes=init_models.expected_sizes_from_flags(fv),
            tf1_format=fv.tf1_format, tf1_version=fv.tf1_version,
            lstm_spelling=fv.lstm_spelling)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    print(f"wrote the seg_highres initialisation ({fmt}) to {path}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
