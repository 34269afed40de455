"""Convert model weights between the release's TF1 checkpoints and this project's format.

    python -m text_objseg_tf2.convert --input=referit_fc8_seg_highres_iter_18000.tfmodel \\
        --output=referit_seg_highres.weights.h5 --to=keras
    python -m text_objseg_tf2.convert --input=referit_seg_highres.weights.h5 \\
        --output=referit_seg_highres.tfmodel --to=tf1 [--tf1_version=v1|v2]

The input may be any supported file (TF1 V1/V2 with any LSTM names, or this project's weights
file); `--model` names the model where the input alone does not say (a plain Keras weights file
of det or seg_lowres) or asks for an init step (det -> seg_lowres, seg_lowres -> seg_highres).
Values are copied bit for bit.
"""

from absl import app, flags

from text_objseg_tf2 import checkpoints
from text_objseg_tf2.models.text_objseg_model import MODEL_KINDS


def convert(input_path, output_path, to, model=None, tf1_version="auto",
            lstm_spelling="release"):
    """Converts `input_path` to `output_path`; `to` is "tf1" or "keras".

    Returns `(kind, path written)`.
    """
    if to not in ("tf1", "keras"):
        raise ValueError(f"--to must be tf1 or keras, got {to!r}")
    info = checkpoints.inspect_weights(input_path, kind=model)
    kind = model or info.kind
    try:
        checkpoints.check_conversion(info.kind, kind)
    except ValueError as e:
        raise ValueError(f"{info.path}: {e}") from None
    if to == "keras" and not str(output_path).endswith(".weights.h5"):
        raise ValueError(f"--to=keras writes a Keras weights file, whose name must end with "
                         f"'.weights.h5': {output_path}")
    params = checkpoints.convert_params(checkpoints.read_values(info, as_tensors=True),
                                        info.kind, kind)
    _, path = checkpoints.write_params(params, kind, output_path, fmt=to,
                                       tf1_version=tf1_version, lstm_spelling=lstm_spelling)
    return kind, path


def define_flags(flag_values=None):
    fv = flag_values if flag_values is not None else flags.FLAGS
    flags.DEFINE_string("input", None, "Weights to read: a TF1 checkpoint (V1 file, V2 prefix) "
                        "or this project's *.weights.h5 file.", flag_values=fv)
    flags.DEFINE_string("output", None, "Path to write (V2: the prefix; keras: must end with "
                        ".weights.h5).", flag_values=fv)
    flags.DEFINE_enum("to", None, ["tf1", "keras"], "Output format.", flag_values=fv)
    flags.DEFINE_enum("model", None, list(MODEL_KINDS),
                      "Model kind, where the input does not say it (a plain Keras weights file "
                      "of det or seg_lowres), or an init step to apply (det -> seg_lowres, "
                      "seg_lowres -> seg_highres).", flag_values=fv)
    flags.DEFINE_enum("tf1_version", "auto", ["auto", "v1", "v2"],
                      "TF1 checkpoint version: auto = single-file V1 (as the release) for a "
                      "*.tfmodel output, V2 otherwise.", flag_values=fv)
    flags.DEFINE_enum("lstm_spelling", "release", list(checkpoints.LSTM_SPELLINGS),
                      "LSTM variable names in a TF1 output (release: RNN/MultiRNNCell/..., "
                      "which every version of the original code loads).", flag_values=fv)
    for name in ("input", "output", "to"):
        flags.mark_flag_as_required(name, flag_values=fv)


def main(argv, flag_values=None):
    fv = flag_values if flag_values is not None else flags.FLAGS
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        kind, path = convert(fv.input, fv.output, fv.to, model=fv.model,
                             tf1_version=fv.tf1_version, lstm_spelling=fv.lstm_spelling)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    print(f"wrote the {kind} model ({fv.to}) to {path}")


def run():
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
