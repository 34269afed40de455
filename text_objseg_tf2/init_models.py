"""The two initialisation steps between the training stages (ports
exp-referit/init_referit_seg_lowres_from_det.py and init_referit_seg_highres_from_lowres.py).

* low-res from det: every weight of the trained region model, with fc6..fc8 and the classifier
  matrices reshaped into the kernels of the fully convolutional model (a plain reshape).
* high-res from low-res: every weight of the trained low-res model plus the bilinear
  `upsample32s` filter.

Both work on the arrays alone (no network is run). The output format follows the output name
(`checkpoints.output_format`): `*.weights.h5` is this project's format, any other name (the
original's `*.tfmodel`) a TF1 checkpoint with the release's variable names.
"""

from text_objseg_tf2 import checkpoints

_STEPS = {"seg_lowres": "det", "seg_highres": "seg_lowres"}


def _check_sizes(sizes, expected, source):
    if not expected:
        return
    clash = {k: (v, sizes[k]) for k, v in expected.items() if v is not None and v != sizes[k]}
    if clash:
        desc = ", ".join(f"{k}={v} but the weights have {w}" for k, (v, w) in clash.items())
        raise ValueError(f"{source} does not fit: {desc}")


def init_step(input_path, output_path, to_kind, expected_sizes=None, tf1_format=False,
              tf1_version="auto", lstm_spelling="release"):
    """Writes the initialisation of the `to_kind` model from the previous stage's weights.

    `to_kind` is "seg_lowres" (from a det model) or "seg_highres" (from a seg_lowres model);
    `expected_sizes` (dict, entries may be None) must agree with the weights' sizes.
    Returns `(format, path written)`.
    """
    if to_kind not in _STEPS:
        raise ValueError(f"no init step to {to_kind!r}; expected one of {tuple(_STEPS)}")
    from_kind = _STEPS[to_kind]
    info = checkpoints.inspect_weights(input_path, kind=from_kind)
    if info.kind != from_kind:
        raise ValueError(f"{info.path} holds a {info.kind} model; initialising {to_kind} "
                         f"needs a {from_kind} model")
    _check_sizes(info.sizes, expected_sizes, f"weights file {info.path}")
    params = checkpoints.read_values(info, as_tensors=True)
    params = checkpoints.convert_params(params, from_kind, to_kind)
    return checkpoints.write_params(params, to_kind, output_path,
                                    fmt="tf1" if tf1_format else "auto",
                                    tf1_version=tf1_version, lstm_spelling=lstm_spelling)


def init_seg_lowres_from_det(det_model, seg_model, **kwargs):
    """init_referit_seg_lowres_from_det: det weights -> low-res segmentation init."""
    return init_step(det_model, seg_model, "seg_lowres", **kwargs)


def init_seg_highres_from_lowres(lowres_model, highres_model, **kwargs):
    """init_referit_seg_highres_from_lowres: low-res weights + bilinear filter -> high-res
    init."""
    return init_step(lowres_model, highres_model, "seg_highres", **kwargs)


def define_init_flags(flag_values=None, **defaults):
    """The flags the two init scripts share (the original's model parameters plus output
    options). `defaults` gives the original's values of T, N and the sizes."""
    from absl import flags

    fv = flag_values if flag_values is not None else flags.FLAGS
    flags.DEFINE_integer("T", defaults.get("T", 20),
                         "Words per sentence (kept from the original; the weights do not "
                         "depend on it).", flag_values=fv)
    flags.DEFINE_integer("N", defaults.get("N", 1),
                         "Batch size (kept from the original; unused).", flag_values=fv)
    for name, default, help_text in (
            ("num_vocab", 8803, "Vocabulary size"), ("embed_dim", 1000, "Word embedding size"),
            ("lstm_dim", 1000, "LSTM hidden size"),
            ("mlp_hidden_dims", 500, "Classifier hidden size")):
        flags.DEFINE_integer(name, defaults.get(name, default),
                             f"{help_text}. The sizes are read from the weights; a value given "
                             "on the command line must agree with them.", flag_values=fv)
    flags.DEFINE_bool("tf1_format", False,
                      "Write a TF1 checkpoint with the release's variable names even when the "
                      "output is named *.weights.h5. Without it the output name decides: "
                      "*.weights.h5 -> this project's Keras weights file, anything else (the "
                      "default *.tfmodel) -> TF1 checkpoint.", flag_values=fv)
    flags.DEFINE_enum("tf1_version", "auto", ["auto", "v1", "v2"],
                      "TF1 checkpoint version: auto = single-file V1 (as the release) for a "
                      "*.tfmodel name, V2 otherwise.", flag_values=fv)
    flags.DEFINE_enum("lstm_spelling", "release", list(checkpoints.LSTM_SPELLINGS),
                      "LSTM variable names in a TF1 output: release (RNN/MultiRNNCell/..., "
                      "loaded by every version of the original code), tf1.0 or tf1.2.",
                      flag_values=fv)


def expected_sizes_from_flags(fv):
    """Sizes given explicitly on the command line (defaults are not checked)."""
    return {k: fv[k].value for k in checkpoints.SIZE_KEYS if fv[k].present}
