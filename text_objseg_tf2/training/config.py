"""The three training stages' settings as one table (the original's "Parameters" blocks).

`STAGES[stage]` holds exactly the parameters of the original script of that stage, with its
defaults; `EXTRA_DEFAULTS` the settings this port adds. `stage_config(stage, **overrides)` gives
a validated `TrainConfig`. `FIELDS` gives each setting's type and help text (for the flags).
"""

import dataclasses

STAGE_KINDS = ("det", "seg_lowres", "seg_highres")

_MODEL = dict(T=20, num_vocab=8803, embed_dim=1000, lstm_dim=1000, mlp_hidden_dims=500)
_SOLVER = dict(pos_loss_mult=1.0, neg_loss_mult=1.0, start_lr=0.01, lr_decay_step=10000,
               lr_decay_rate=0.1, weight_decay=0.0005, momentum=0.9)
_DROPOUT = dict(vgg_dropout=False, mlp_dropout=False, vgg_lr_mult=1.0)

# Parameters block of exp_train_referit_det.py / _seg_lowres.py / _seg_highres.py.
STAGES = {
    "det": dict(
        _MODEL, N=50,
        convnet_params="./models/convert_caffemodel/params/vgg_params.npz",
        mlp_l1_std=0.05, mlp_l2_std=0.1,
        **_SOLVER, max_iter=25000, fix_convnet=True, **_DROPOUT,
        data_folder="./exp-referit/data/train_batch_det/", data_prefix="referit_train_det",
        snapshot=5000, snapshot_file="./exp-referit/tfmodel/referit_fc8_det_iter_%d.tfmodel"),
    "seg_lowres": dict(
        _MODEL, N=10, input_H=512, input_W=512,
        pretrained_model="./exp-referit/tfmodel/referit_fc8_seg_lowres_init.tfmodel",
        **_SOLVER, max_iter=30000, fix_convnet=False, **_DROPOUT,
        data_folder="./exp-referit/data/train_batch_seg/", data_prefix="referit_train_seg",
        snapshot=5000,
        snapshot_file="./exp-referit/tfmodel/referit_fc8_seg_lowres_iter_%d.tfmodel"),
    "seg_highres": dict(
        _MODEL, N=10, input_H=512, input_W=512,
        pretrained_model="./exp-referit/tfmodel/referit_fc8_seg_highres_init.tfmodel",
        **dict(_SOLVER, neg_loss_mult=1.0 / 3, lr_decay_step=6000), max_iter=18000,
        fix_convnet=False, **_DROPOUT,
        data_folder="./exp-referit/data/train_batch_seg/", data_prefix="referit_train_seg",
        snapshot=6000,
        snapshot_file="./exp-referit/tfmodel/referit_fc8_seg_highres_iter_%d.tfmodel"),
}

# Settings this port adds (same for every stage).
EXTRA_DEFAULTS = dict(
    decay_lstm_matrix=True, train_vgg_conv=False, shuffle=True, seed=None, resume=False,
    strategy="none", mixed_precision=False, jit_compile=False, log_dir="", log_every=1,
    cache_features=False, feature_cache_mb=4096)

STRATEGIES = ("none", "mirrored", "multi_worker")

# name: (type, help). Types: bool, int, float, str; "int?" is an optional integer.
FIELDS = {
    "T": (int, "Number of words per sentence (left-padded / truncated)."),
    "N": (int, "Batch size (must match the batch files)."),
    "input_H": (int, "Input image height (a multiple of 32; must match the batch files)."),
    "input_W": (int, "Input image width (a multiple of 32; must match the batch files)."),
    "num_vocab": (int, "Vocabulary size (read from the weights when a model is loaded)."),
    "embed_dim": (int, "Word embedding size (read from the weights when a model is loaded)."),
    "lstm_dim": (int, "LSTM hidden size (read from the weights when a model is loaded)."),
    "mlp_hidden_dims": (int, "Classifier hidden size (read from the weights when loaded)."),
    "convnet_params": (str, "VGG-16 weights (vgg_params.npz) the det stage starts from; empty "
                            "keeps a random VGG (only for synthetic smoke runs)."),
    "mlp_l1_std": (float, "Std of the normal init of classifier/mlp_l1/weights (det)."),
    "mlp_l2_std": (float, "Std of the normal init of classifier/mlp_l2/weights (det)."),
    "pretrained_model": (str, "Weights the stage starts from: a release TF1 checkpoint (V1/V2) or "
                              "this project's weights file; empty keeps random weights (only "
                              "for smoke runs)."),
    "pos_loss_mult": (float, "Loss weight of positive labels."),
    "neg_loss_mult": (float, "Loss weight of negative labels."),
    "start_lr": (float, "Initial learning rate."),
    "lr_decay_step": (int, "Iterations between learning-rate drops (staircase)."),
    "lr_decay_rate": (float, "Learning-rate factor at each drop."),
    "weight_decay": (float, "L2 weight decay wd * sum(w^2) / 2 on the trained weights."),
    "momentum": (float, "Momentum (TF1 form: accum = m * accum + g; w -= lr * accum)."),
    "max_iter": (int, "Number of training iterations."),
    "fix_convnet": (bool, "Train all but vgg_local/* (true) or all but vgg_local/conv* (false)."),
    "vgg_dropout": (bool, "Dropout 0.5 after fc6 and fc7."),
    "mlp_dropout": (bool, "Dropout 0.5 after mlp_l1."),
    "vgg_lr_mult": (float, "Gradient multiplier of the trained vgg_local/* variables."),
    "data_folder": (str, "Folder of the training batch files."),
    "data_prefix": (str, "Batch file prefix (<data_folder>/<data_prefix>_<n>.npz)."),
    "snapshot": (int, "Save a snapshot every this many iterations (and at max_iter)."),
    "snapshot_file": (str, "Snapshot path pattern with one %d for the iteration; this project's "
                           "weights format, plus <path>.state.npz with the training state."),
    "decay_lstm_matrix": (bool, "Weight-decay the LSTM matrix, as when the released models were "
                                "trained (false: the repository code on TF >= 1.2, whose "
                                "renamed matrix escaped the decay filter)."),
    "train_vgg_conv": (bool, "Also train the VGG convolutions (not in the original; for small "
                             "synthetic runs)."),
    "shuffle": (bool, "Read the batches in a new random order every epoch (the original); "
                      "false reads them 0, 1, 2, ..."),
    "seed": ("int?", "Seed of the batch order and of the initialisation (default: random; the "
                     "drawn seed is kept in the snapshots)."),
    "resume": (bool, "Continue from the latest snapshot of snapshot_file (with its .state.npz); "
                     "starts from scratch when there is none."),
    "strategy": (str, "tf.distribute strategy: none | mirrored (all local GPUs) | multi_worker "
                      "(machines listed in TF_CONFIG)."),
    "mixed_precision": (bool, "mixed_float16 compute with dynamic loss scaling (GPU); variables "
                              "and the loss stay float32."),
    "jit_compile": (bool, "Compile the training step with XLA."),
    "log_dir": (str, "TensorBoard log folder (empty: no TensorBoard logs)."),
    "log_every": (int, "Log (and write TensorBoard scalars) every this many iterations."),
    "cache_features": (bool, "Compute each batch's VGG features once and reuse them in later "
                             "epochs (needs --fix_convnet; refused with --train_vgg_conv, "
                             "--vgg_dropout, --strategy or --mixed_precision). The same update "
                             "up to float rounding, far cheaper steps."),
    "feature_cache_mb": (int, "Memory for --cache_features, in MB (fc8 takes H*W/1024*4 kB per "
                              "image; batches beyond it are recomputed)."),
}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Every setting of one training run; see `FIELDS` for their meaning."""

    stage: str
    T: int
    N: int
    num_vocab: int
    embed_dim: int
    lstm_dim: int
    mlp_hidden_dims: int
    pos_loss_mult: float
    neg_loss_mult: float
    start_lr: float
    lr_decay_step: int
    lr_decay_rate: float
    weight_decay: float
    momentum: float
    max_iter: int
    fix_convnet: bool
    vgg_dropout: bool
    mlp_dropout: bool
    vgg_lr_mult: float
    data_folder: str
    data_prefix: str
    snapshot: int
    snapshot_file: str
    input_H: int = 512
    input_W: int = 512
    convnet_params: str = ""
    mlp_l1_std: float = 0.05
    mlp_l2_std: float = 0.1
    pretrained_model: str = ""
    decay_lstm_matrix: bool = True
    train_vgg_conv: bool = False
    shuffle: bool = True
    seed: int | None = None
    resume: bool = False
    strategy: str = "none"
    mixed_precision: bool = False
    jit_compile: bool = False
    log_dir: str = ""
    log_every: int = 1
    cache_features: bool = False
    feature_cache_mb: int = 4096

    def __post_init__(self):
        _validate(self)

    @property
    def kind(self):
        """The model kind (`det`, `seg_lowres` or `seg_highres`), the stage's name."""
        return self.stage

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def flag_defaults(stage):
    """The flags of `stage`'s script with their defaults (original parameters, then extras)."""
    _check_stage(stage)
    return dict(STAGES[stage], **EXTRA_DEFAULTS)


def stage_config(stage, **overrides):
    """`TrainConfig` of `stage` with the original's defaults, changed by `overrides`."""
    _check_stage(stage)
    names = {f.name for f in dataclasses.fields(TrainConfig)} - {"stage"}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown training settings {unknown}; known: {sorted(names)}")
    return TrainConfig(stage=stage, **dict(flag_defaults(stage), **overrides))


def _check_stage(stage):
    if stage not in STAGE_KINDS:
        raise ValueError(f"unknown stage {stage!r}; expected one of {STAGE_KINDS}")


def _validate(c):
    _check_stage(c.stage)
    for name in ("T", "N", "num_vocab", "embed_dim", "lstm_dim", "mlp_hidden_dims",
                 "lr_decay_step", "max_iter", "snapshot", "log_every"):
        if int(getattr(c, name)) <= 0:
            raise ValueError(f"{name} must be positive, got {getattr(c, name)}")
    if c.stage != "det":
        for name in ("input_H", "input_W"):
            v = int(getattr(c, name))
            if v <= 0 or v % 32:
                raise ValueError(f"{name} must be a positive multiple of 32, got {v}")
    if c.strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {c.strategy!r}")
    if c.snapshot_file.count("%d") != 1 or c.snapshot_file.replace("%d", "").count("%"):
        raise ValueError(f"snapshot_file must contain exactly one %d (and no other %), got "
                         f"{c.snapshot_file!r}")
    if c.cache_features:
        conflicts = [why for bad, why in (
            (not c.fix_convnet, "fix_convnet=False (fc6-fc8 trained)"),
            (c.train_vgg_conv, "train_vgg_conv"), (c.vgg_dropout, "vgg_dropout"),
            (c.strategy != "none", f"strategy={c.strategy}"),
            (c.mixed_precision, "mixed_precision")) if bad]
        if conflicts:
            raise ValueError(f"cache_features needs a fixed, deterministic VGG on one device "
                             f"(fix_convnet, no train_vgg_conv, vgg_dropout, strategy or "
                             f"mixed_precision); got {', '.join(conflicts)}")
    if c.feature_cache_mb < 0:
        raise ValueError(f"feature_cache_mb must be >= 0, got {c.feature_cache_mb}")
    if c.momentum < 0:
        raise ValueError(f"momentum must be >= 0, got {c.momentum}")
