"""absl flag definers shared by the experiment scripts.

Nothing is defined at import time: each script calls the definers it needs, with the defaults
of the original script's "Parameters" block.
"""

import os

from absl import flags


def define_gpu_flag(flag_values=flags.FLAGS):
    """`--gpu_id`, the original scripts' positional GPU argument (see `apply_gpu_flag`)."""
    flags.DEFINE_string("gpu_id", None,
                        "GPU to use (sets CUDA_VISIBLE_DEVICES); the original scripts took it "
                        "as their first argument. Default: leave the environment as it is.",
                        flag_values=flag_values)


def apply_gpu_flag(gpu_id):
    """Sets CUDA_VISIBLE_DEVICES from `--gpu_id` (call before TensorFlow touches a device)."""
    if gpu_id is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu_id)


def define_model_size_flags(T=20, num_vocab=8803, embed_dim=1000, lstm_dim=1000,
                            mlp_hidden_dims=500):
    """The original's model-size parameters (read from the weights where a checkpoint is given)."""
    flags.DEFINE_integer("T", T, "Number of words per sentence (left-padded / truncated).")
    flags.DEFINE_integer("num_vocab", num_vocab, "Vocabulary size.")
    flags.DEFINE_integer("embed_dim", embed_dim, "Word embedding size.")
    flags.DEFINE_integer("lstm_dim", lstm_dim, "LSTM hidden size.")
    flags.DEFINE_integer("mlp_hidden_dims", mlp_hidden_dims, "Classifier hidden size.")


def define_train_flags(defaults, flag_values=flags.FLAGS):
    """The flags of a training script: every setting in `defaults` (from
    `training.config.flag_defaults(stage)`: the original's Parameters block with its defaults,
    then this port's additions), plus `--gpu_id`. Types and help come from
    `training.config.FIELDS`.

    `--log_dir` (TensorBoard) is absl.logging's own flag of that name when absl defined it
    (absl writes log files there only if asked to; by default it logs to stderr).
    """
    from text_objseg_tf2.training.config import FIELDS, STRATEGIES

    define_gpu_flag(flag_values)
    for name, default in defaults.items():
        kind, help_text = FIELDS[name]
        if name == "log_dir" and name in flag_values:
            continue
        if name == "strategy":
            flags.DEFINE_enum(name, default, STRATEGIES, help_text, flag_values=flag_values)
        elif kind is bool:
            flags.DEFINE_bool(name, default, help_text, flag_values=flag_values)
        elif kind is int or kind == "int?":
            flags.DEFINE_integer(name, default, help_text, flag_values=flag_values)
        elif kind is float:
            flags.DEFINE_float(name, default, help_text, flag_values=flag_values)
        else:
            flags.DEFINE_string(name, default, help_text, flag_values=flag_values)


def train_settings(defaults, flag_values=flags.FLAGS):
    """`{name: value}` of the parsed training flags named in `defaults` (for `training.train`)."""
    return {name: flag_values[name].value for name in defaults}
