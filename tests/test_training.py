"""Training (text_objseg_tf2.training) against an independent re-expression of the TF1 solver.

Only the gradient of the classification loss comes from TensorFlow: a GradientTape on the
trainer's model at its weights before each step (the models are tested against tf1_reference
elsewhere), with the loss written out here. The trainable and decayed sets, the weight-decay
gradient, the learning-rate multiplier, the staircase schedule, the momentum update and the
embedding's sparse rows are re-expressed in numpy and tracked on the reference's own weights.
VGG-16 is full size, so the sizes are small elsewhere: 64x64 images, N=2, T=4, tiny text dims.
"""

import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
import tf1_reference as ref
from absl import flags

from text_objseg_tf2 import checkpoints
from text_objseg_tf2 import flags as shared_flags
from text_objseg_tf2.training import config as config_lib
from text_objseg_tf2.training import environment, snapshots, train
from text_objseg_tf2.training.loop import TrainingDivergedError
from text_objseg_tf2.training.trainer import Trainer
from text_objseg_tf2.training.variables import select_variables

SMALL = dict(num_vocab=30, embed_dim=12, lstm_dim=10, mlp_hidden_dims=6)
MEAN = np.array([123.68, 116.779, 103.939], np.float32)
LSTM_M = ref.LSTM_MATRIX
LSTM_B = ref.LSTM_BIAS
EMB = "word_embedding/embedding"
CONVS = ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
         "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3"]
FCS = ["fc6", "fc7", "fc8"]
CLASSIFIER = ["classifier/mlp_l1/weights", "classifier/mlp_l1/biases",
              "classifier/mlp_l2/weights", "classifier/mlp_l2/biases"]
LABEL_KEY = {"det": "label_batch", "seg_lowres": "label_coarse_batch",
             "seg_highres": "label_fine_batch"}


# ---------------------------------------------------------------------------------------------
# fixtures and helpers
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def seg_params():
    return ref.random_params("seg_highres", **SMALL, seed=11)


@pytest.fixture(scope="module")
def shared_net(seg_params):
    """One net for the in-process tests (VGG-16 is 0.55 GB); `reset_net` before each use."""
    return make_net(seg_params, "seg_highres")


def make_net(params, kind):
    values = {n: v for n, v in params.items()
              if kind == "seg_highres" or n != "classifier/upsample32s/weights"}
    return checkpoints.new_net(values, SMALL)


def reset_net(net, params):
    for name, var in net.tf1_variables("seg_highres").items():
        var.assign(params[name].reshape(tuple(var.shape)))
    return net


def make_batch(kind, T, N, H, W, seed, vocab_lo=0, vocab_hi=30):
    rng = np.random.default_rng(seed)
    text = rng.integers(vocab_lo, vocab_hi, (T, N)).astype(np.int32)
    text[0, :] = vocab_lo  # a repeated id (like <pad>) in every sentence
    if kind == "det":
        H = W = 224
    batch = {"text_seq_batch": text,
             "imcrop_batch": rng.integers(0, 256, (N, H, W, 3)).astype(np.uint8)}
    if kind == "det":
        batch["spatial_batch"] = rng.uniform(-1, 1, (N, 8)).astype(np.float32)
        batch["label_batch"] = np.array([[True], [False]] * (N // 2))
    elif kind == "seg_lowres":
        batch["label_coarse_batch"] = rng.random((N, H // 32, W // 32, 1)) < 0.5
    else:
        batch["label_fine_batch"] = rng.random((N, H, W, 1)) < 0.3
    return batch


def write_batches(folder, prefix, kind, count, T=4, N=2, H=64, W=64):
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        np.savez(os.path.join(folder, f"{prefix}_{i}.npz"),
                 **make_batch(kind, T, N, H, W, seed=100 + i, vocab_lo=3 * i))


def expected_sets(kind, fix_convnet, decay_lstm_matrix=True, train_vgg_conv=False):
    """The original scripts' filters, written out for the test."""
    names = ([f"vgg_local/{c}/{p}" for c in CONVS + FCS for p in ("weights", "biases")]
             + [EMB, LSTM_M, LSTM_B] + CLASSIFIER)
    if kind == "seg_highres":
        names.append("classifier/upsample32s/weights")
    if train_vgg_conv:
        train_set = set(names)
    elif fix_convnet:
        train_set = {n for n in names if not n.startswith("vgg_local")}
    else:
        train_set = {n for n in names if not any(n.startswith(f"vgg_local/{c}/") for c in CONVS)}
    decay = {n for n in train_set if n.split("/")[-1] == "weights"}
    if decay_lstm_matrix:
        decay.add(LSTM_M)
    return train_set, decay


def sigmoid_ce(scores, labels):
    return (tf.maximum(scores, 0.0) - scores * labels
            + tf.math.log(1.0 + tf.exp(-tf.abs(scores))))


def cls_grads(model, variables, kind, batch, names, pos, neg):
    """d(weighted mean sigmoid CE)/d(variables) on the model, as dense float64 arrays."""
    image = batch["imcrop_batch"].astype(np.float32) - MEAN
    inputs = [batch["text_seq_batch"], image]
    if kind == "det":
        inputs.append(batch["spatial_batch"])
    labels = tf.constant(batch[LABEL_KEY[kind]].astype(np.float32))
    sources = [variables[n].value for n in names]
    # Watch only the trained variables: eager backprop would otherwise go through all of VGG.
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(sources)
        scores = model(inputs)
        weights = labels * pos + (1.0 - labels) * neg
        loss = tf.reduce_mean(sigmoid_ce(scores, labels) * weights)
    grads = tape.gradient(loss, sources)
    return {n: part(tf.convert_to_tensor(g)) for n, g in zip(names, grads, strict=True)}


def part(x):
    """The compared part of an array, variable or tensor: all of it, or for VGG's fc kernels
    (up to 103M values) the first 16 output channels (sliced before copying)."""
    if not isinstance(x, tf.Variable) and isinstance(getattr(x, "value", None), tf.Variable):
        x = x.value  # a Keras variable
    x = tf.convert_to_tensor(x)
    if int(np.prod(x.shape)) > 10**6:
        x = x[..., :16]
    return np.asarray(x, np.float64)


def run_with_reference(trainer, kind, batches, c, train_set, decay_set, lr_mult):
    """Steps `trainer` through `batches` beside TF1's solver re-expressed in numpy.

    Before each step the classification-loss gradient is taken on the trainer's model at its
    current weights; the reference then applies TF1's update to its own copy of the weights.
    Returns the reference (weights, accumulators) by TF1 name (big kernels: `part`) and lrs.
    """
    variables = trainer.net.tf1_variables(kind)
    # The gradient of the whole model on the images (the trainer's own model may be fed
    # cached VGG features instead).
    whole_model = trainer.net.model(kind, c["input_H"], c["input_W"], c["T"])
    names = sorted(train_set)
    W = {n: part(variables[n]) for n in names}
    A = {n: np.zeros_like(W[n]) for n in names}
    lrs = []
    for it, batch in enumerate(batches):
        lr = c["start_lr"] * c["lr_decay_rate"] ** (it // c["lr_decay_step"])
        g_cls = cls_grads(whole_model, variables, kind, batch, names, c["pos_loss_mult"],
                          c["neg_loss_mult"])
        lrs.append(trainer.step(it, batch)["lr"])
        for n in names:
            g = g_cls[n]
            if n in decay_set:  # d/dw of wd * sum(w^2) / 2
                g = g + c["weight_decay"] * W[n]
            g = g * lr_mult[n]
            if n == EMB:  # sparse: only the rows of words in the batch, duplicates summed
                rows = np.unique(batch["text_seq_batch"])
                A[n][rows] = c["momentum"] * A[n][rows] + g[rows]
                W[n][rows] = W[n][rows] - lr * A[n][rows]
            else:
                A[n] = c["momentum"] * A[n] + g
                W[n] = W[n] - lr * A[n]
    return W, A, lrs


def assert_close(got, want, name):
    got = part(got)
    scale = max(1.0, float(np.max(np.abs(want))))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * scale, err_msg=name)


# ---------------------------------------------------------------------------------------------
# variable selection
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind,fix_convnet,decay_lstm,train_conv", [
    ("det", True, True, False), ("det", False, True, False), ("seg_lowres", False, True, False),
    ("seg_highres", False, True, False), ("seg_highres", False, False, False),
    ("det", True, False, False), ("seg_lowres", False, True, True)])
def test_trained_and_decayed_sets(shared_net, kind, fix_convnet, decay_lstm, train_conv):
    sel = select_variables(shared_net, kind, fix_convnet, decay_lstm, vgg_lr_mult=3.0,
                           train_vgg_conv=train_conv)
    want_train, want_decay = expected_sets(kind, fix_convnet, decay_lstm, train_conv)
    assert set(sel.train) == want_train
    assert set(sel.decay) == want_decay
    assert EMB in sel.train and EMB not in sel.decay
    assert {n for n, m in sel.lr_mult.items() if m == 3.0} == {
        n for n in want_train if n.startswith("vgg_local")}


# ---------------------------------------------------------------------------------------------
# K steps against the re-expressed TF1 update
# ---------------------------------------------------------------------------------------------

SOLVER = dict(start_lr=0.01, lr_decay_rate=0.1, weight_decay=0.02, momentum=0.9,
              pos_loss_mult=1.0, neg_loss_mult=1.0 / 3)


@pytest.mark.parametrize("kind,fix_convnet,vgg_lr_mult,steps,decay_step,cache", [
    ("seg_highres", True, 1.0, 3, 2, False),  # momentum over 3 steps across the lr drop
    ("seg_lowres", False, 2.0, 1, 1, False),  # fc6..fc8 trained, with the lr multiplier
    ("det", True, 1.0, 2, 1, False),          # region model: crops + spatial features
    ("seg_highres", True, 1.0, 3, 2, True),   # cached VGG features (3rd step: a cache hit)
    ("det", True, 1.0, 3, 1, True)])
def test_k_steps_match_tf1_update(shared_net, seg_params, kind, fix_convnet, vgg_lr_mult, steps,
                                  decay_step, cache):
    c = dict(SOLVER, T=4, N=2, input_H=64, input_W=64, fix_convnet=fix_convnet,
             vgg_lr_mult=vgg_lr_mult, lr_decay_step=decay_step, **SMALL)
    batches = [make_batch(kind, 4, 2, 64, 64, seed=20 + i, vocab_lo=4 * i, vocab_hi=4 * i + 9)
               for i in range(steps)]
    if cache:  # the third batch: the first one's images with other words and labels
        batches[2]["imcrop_batch"] = batches[0]["imcrop_batch"]
    train_set, decay_set = expected_sets(kind, fix_convnet)
    lr_mult = {n: (vgg_lr_mult if n.startswith("vgg_local") else 1.0) for n in train_set}

    net = reset_net(shared_net, seg_params)
    trainer = Trainer(config_lib.stage_config(kind, cache_features=cache, **c), net=net)
    variables = net.tf1_variables(kind)
    frozen = {n: part(variables[n]) for n in variables
              if n not in train_set and n.startswith("vgg_local/")}
    W, A, lrs = run_with_reference(trainer, kind, batches, c, train_set, decay_set, lr_mult)
    if cache:
        assert (trainer.feature_cache.misses, trainer.feature_cache.hits) == (2, 1)
    np.testing.assert_allclose(
        lrs, [0.01 * 0.1 ** (i // decay_step) for i in range(steps)], rtol=1e-6)
    assert steps == 1 or lrs[-1] < lrs[0]
    for n in sorted(train_set):
        assert_close(variables[n], W[n], n)
        assert_close(trainer.optimizer.accumulators[n], A[n], n + " (accum)")
    # Embedding rows of words in no batch: value and accumulator untouched.
    used = np.unique(np.concatenate([b["text_seq_batch"].ravel() for b in batches]))
    unused = np.setdiff1d(np.arange(SMALL["num_vocab"]), used)
    assert unused.size
    np.testing.assert_array_equal(variables[EMB].numpy()[unused], seg_params[EMB][unused])
    np.testing.assert_array_equal(trainer.optimizer.accumulators[EMB].numpy()[unused], 0)
    for n, v in frozen.items():
        np.testing.assert_array_equal(part(variables[n]), v, err_msg=n)


# ---------------------------------------------------------------------------------------------
# the loop: resume, NaN guard, flags and scripts
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def seg_run_files(tmp_path_factory, seg_params):
    root = tmp_path_factory.mktemp("train")
    pretrained = str(root / "lowres_init.weights.h5")
    checkpoints.save_weights(make_net(seg_params, "seg_lowres"), "seg_lowres", pretrained)
    write_batches(str(root / "batches"), "b", "seg_lowres", count=3)
    return root, pretrained


def _seg_settings(root, pretrained, **kw):
    return dict(dict(T=4, N=2, input_H=64, input_W=64, pretrained_model=pretrained,
                     data_folder=str(root / "batches"), data_prefix="b", fix_convnet=True,
                     lr_decay_step=3), **kw)


def test_resume_equals_uninterrupted_run(seg_run_files, tmp_path):
    """Stopped at k=2 (its snapshot copied alone into a fresh folder) and resumed == the run
    that went on; 4 iterations over 3 batch files cross an epoch (a new shuffle)."""
    root, pretrained = seg_run_files
    common = _seg_settings(root, pretrained, mlp_dropout=True, shuffle=True, seed=7, snapshot=2,
                           max_iter=4)
    full = train("seg_lowres", snapshot_file=str(tmp_path / "a" / "s_%d.h5"), **common)
    os.makedirs(tmp_path / "b")
    for name in ("s_2.h5", "s_2.h5" + snapshots.STATE_SUFFIX):
        shutil.copy(tmp_path / "a" / name, tmp_path / "b" / name)
    pattern = str(tmp_path / "b" / "s_%d.h5")
    resumed = train("seg_lowres", snapshot_file=pattern, resume=True, **common)
    assert snapshots.list_snapshots(pattern).keys() == {2, 4}
    w_full, _, _ = checkpoints.read_weights(full.snapshot)
    w_res, _, _ = checkpoints.read_weights(resumed.snapshot)
    assert w_full.keys() == w_res.keys()
    for n in w_full:
        np.testing.assert_array_equal(w_full[n], w_res[n], err_msg=n)
    acc_full, meta_full, arr_full = snapshots.read_state(full.snapshot)
    acc_res, meta_res, arr_res = snapshots.read_state(resumed.snapshot)
    for n in acc_full:
        # Weights match bit for bit; in full test runs, multi-threaded CPU reductions have
        # been seen to move a few accumulator entries by ~1e-10 (below the weights' ulp).
        scale = float(np.max(np.abs(acc_full[n]))) or 1.0
        np.testing.assert_allclose(acc_full[n], acc_res[n], rtol=1e-5, atol=1e-6 * scale,
                                   err_msg=n)
    for n in arr_full:
        np.testing.assert_array_equal(arr_full[n], arr_res[n], err_msg=n)
    assert meta_full["averages"] == pytest.approx(meta_res["averages"], rel=1e-6)
    assert meta_full["reader"] == meta_res["reader"]
    assert full.last == pytest.approx(resumed.last, rel=1e-6)


def test_nan_loss_stops_and_keeps_last_good_snapshot(seg_run_files, tmp_path):
    root, pretrained = seg_run_files
    pattern = str(tmp_path / "s_%d.h5")
    # lr = 0.01 for iterations 0-1, then inf: the weights blow up and the loss turns NaN.
    settings = _seg_settings(root, pretrained, lr_decay_step=2, lr_decay_rate=float("inf"),
                             snapshot=2, shuffle=False)
    with pytest.raises(TrainingDivergedError, match="last good snapshot"):
        train("seg_lowres", max_iter=6, snapshot_file=pattern, **settings)
    assert list(snapshots.list_snapshots(pattern)) == [2]
    weights, _, _ = checkpoints.read_weights(pattern % 2)
    assert all(np.all(np.isfinite(v)) for v in weights.values())


def test_weights_finite_check(shared_net, seg_params):
    cfg = config_lib.stage_config("seg_lowres", T=4, N=2, input_H=64, input_W=64,
                                  fix_convnet=True, **SMALL)
    trainer = Trainer(cfg, net=reset_net(shared_net, seg_params))
    assert trainer.weights_finite()
    trainer.net.mlp_l2.bias.assign([np.nan])
    assert not trainer.weights_finite()


def test_mixed_precision_and_jit_compile_follow_float32(shared_net, seg_params,
                                                        seg_run_files):
    root, pretrained = seg_run_files
    settings = dict(T=4, N=2, input_H=64, input_W=64, fix_convnet=True, **SMALL)
    batches = [make_batch("seg_lowres", 4, 2, 64, 64, seed=60 + i) for i in range(2)]
    base = Trainer(config_lib.stage_config("seg_lowres", **settings),
                   net=reset_net(shared_net, seg_params))
    want = [base.step(i, b)["cls_loss"] for i, b in enumerate(batches)]
    jit = Trainer(config_lib.stage_config("seg_lowres", jit_compile=True, **settings),
                  net=reset_net(shared_net, seg_params))
    np.testing.assert_allclose([jit.step(i, b)["cls_loss"] for i, b in enumerate(batches)],
                               want, rtol=1e-5)
    # float16 compute (CPU: only that the path runs), float32 variables, float32 loss.
    mixed = Trainer(config_lib.stage_config("seg_lowres", mixed_precision=True,
                                            pretrained_model=pretrained, **settings))
    assert mixed.net.mlp_l1.compute_dtype == "float16"
    assert mixed.net.seg_fusion.compute_dtype == "float32"
    assert all(v.dtype == "float32" for v in mixed.selection.train.values())
    got = [mixed.step(i, b)["cls_loss"] for i, b in enumerate(batches)]
    np.testing.assert_allclose(got, want, rtol=2e-3)
    assert float(mixed.loss_scale.scale.numpy()) == 2.0**15


def test_onednn_deconvolution_bug_guard(monkeypatch):
    monkeypatch.setattr(environment, "onednn_enabled", lambda: True)
    with pytest.raises(RuntimeError, match="TF_ENABLE_ONEDNN_OPTS=0"):
        environment.check_deconv_backprop("seg_highres", 512, 512, 10, on_gpu=False)
    with pytest.raises(RuntimeError, match="TF_ENABLE_ONEDNN_OPTS=0"):
        environment.check_deconv_backprop("seg_highres", 192, 192, 2, on_gpu=False)
    environment.check_deconv_backprop("seg_highres", 128, 128, 10, on_gpu=False)
    environment.check_deconv_backprop("seg_highres", 512, 512, 1, on_gpu=False)
    environment.check_deconv_backprop("seg_highres", 512, 512, 10, on_gpu=True)
    environment.check_deconv_backprop("seg_lowres", 512, 512, 10, on_gpu=False)
    monkeypatch.delenv(environment.ONEDNN_ENV, raising=False)
    environment.prepare("seg_lowres")
    assert environment.ONEDNN_ENV not in os.environ
    environment.prepare("seg_highres")
    assert os.environ[environment.ONEDNN_ENV] == "0"


ORIGINAL_PARAMETERS = {  # the Parameters blocks of the three original scripts
    "det": dict(T=20, N=50, num_vocab=8803, embed_dim=1000, lstm_dim=1000, mlp_hidden_dims=500,
                convnet_params="./models/convert_caffemodel/params/vgg_params.npz",
                mlp_l1_std=0.05, mlp_l2_std=0.1, pos_loss_mult=1.0, neg_loss_mult=1.0,
                start_lr=0.01, lr_decay_step=10000, lr_decay_rate=0.1, weight_decay=0.0005,
                momentum=0.9, max_iter=25000, fix_convnet=True, vgg_dropout=False,
                mlp_dropout=False, vgg_lr_mult=1.0,
                data_folder="./exp-referit/data/train_batch_det/",
                data_prefix="referit_train_det", snapshot=5000,
                snapshot_file="./exp-referit/tfmodel/referit_fc8_det_iter_%d.tfmodel"),
    "seg_lowres": dict(T=20, N=10, input_H=512, input_W=512, num_vocab=8803, embed_dim=1000,
                       lstm_dim=1000, mlp_hidden_dims=500,
                       pretrained_model="./exp-referit/tfmodel/referit_fc8_seg_lowres_init"
                                        ".tfmodel",
                       pos_loss_mult=1.0, neg_loss_mult=1.0, start_lr=0.01, lr_decay_step=10000,
                       lr_decay_rate=0.1, weight_decay=0.0005, momentum=0.9, max_iter=30000,
                       fix_convnet=False, vgg_dropout=False, mlp_dropout=False, vgg_lr_mult=1.0,
                       data_folder="./exp-referit/data/train_batch_seg/",
                       data_prefix="referit_train_seg", snapshot=5000,
                       snapshot_file="./exp-referit/tfmodel/referit_fc8_seg_lowres_iter_%d"
                                     ".tfmodel"),
}
ORIGINAL_PARAMETERS["seg_highres"] = dict(
    ORIGINAL_PARAMETERS["seg_lowres"],
    pretrained_model="./exp-referit/tfmodel/referit_fc8_seg_highres_init.tfmodel",
    neg_loss_mult=1.0 / 3, lr_decay_step=6000, max_iter=18000, snapshot=6000,
    snapshot_file="./exp-referit/tfmodel/referit_fc8_seg_highres_iter_%d.tfmodel")


@pytest.mark.parametrize("stage", ["det", "seg_lowres", "seg_highres"])
def test_flags_have_the_original_names_and_defaults(stage):
    fv = flags.FlagValues()
    defaults = config_lib.flag_defaults(stage)
    shared_flags.define_train_flags(defaults, flag_values=fv)
    fv(["prog"])
    settings = shared_flags.train_settings(defaults, flag_values=fv)
    for name, value in ORIGINAL_PARAMETERS[stage].items():
        assert settings[name] == value, name
    extras = set(settings) - set(ORIGINAL_PARAMETERS[stage])
    assert extras == {"decay_lstm_matrix", "train_vgg_conv", "shuffle", "seed", "resume",
                      "strategy", "mixed_precision", "jit_compile", "log_dir", "log_every",
                      "cache_features", "feature_cache_mb"}
    assert "gpu_id" in fv
    fv(["prog", "--strategy=mirrored", "--noshuffle", "--seed=3", "--max_iter=7"])
    assert (fv.strategy, fv.shuffle, fv.seed, fv.max_iter) == ("mirrored", False, 3, 7)
    config_lib.stage_config(stage, **shared_flags.train_settings(defaults, flag_values=fv))


def test_cache_features_needs_a_frozen_deterministic_vgg():
    for bad, match in ((dict(fix_convnet=False), "got fix_convnet=False"),
                       (dict(train_vgg_conv=True), "got train_vgg_conv"),
                       (dict(vgg_dropout=True), "got vgg_dropout"),
                       (dict(strategy="mirrored"), "got strategy=mirrored"),
                       (dict(mixed_precision=True), "got mixed_precision")):
        settings = dict(dict(fix_convnet=True, cache_features=True), **bad)
        with pytest.raises(ValueError, match=match):
            config_lib.stage_config("seg_lowres", **settings)


def test_feature_cache_keeps_entries_within_its_budget():
    from text_objseg_tf2.training.feature_cache import FeatureCache

    cache = FeatureCache(max_bytes=1000)
    images = np.zeros((2, 8, 8, 3), np.uint8)
    key = cache.key("vgg-a", images)
    assert key != cache.key("vgg-b", images)  # other VGG weights
    assert key != cache.key("vgg-a", images + 1)  # other images
    calls = []

    def compute(n):
        return lambda: calls.append(n) or np.full(100, n, np.float32)  # 400 bytes

    for n in (0, 1, 0, 2, 2):
        got = cache.get_or_compute(cache.key("vgg-a", images + n), compute(n))
        np.testing.assert_array_equal(got, np.full(100, n, np.float32))
    assert calls == [0, 1, 2, 2]  # the third array did not fit in 1000 bytes
    assert (len(cache), cache.nbytes, cache.hits, cache.misses) == (2, 800, 1, 4)


def test_config_rejects_bad_settings():
    with pytest.raises(ValueError, match="unknown training settings"):
        config_lib.stage_config("det", learning_rate=0.1)
    with pytest.raises(ValueError, match="%d"):
        config_lib.stage_config("det", snapshot_file="x.tfmodel")
    with pytest.raises(ValueError, match="multiple of 32"):
        config_lib.stage_config("seg_lowres", input_H=100)
    with pytest.raises(ValueError, match="unknown stage"):
        config_lib.stage_config("seg")


def test_script_runs_two_iterations(seg_run_files, tmp_path, repo_root):
    root, pretrained = seg_run_files
    tb = tmp_path / "tb"
    args = [sys.executable, str(repo_root / "exp-referit" / "exp_train_referit_seg_lowres.py"),
            "--T=4", "--N=2", "--input_H=64", "--input_W=64", "--fix_convnet",
            f"--pretrained_model={pretrained}", f"--data_folder={root / 'batches'}",
            "--data_prefix=b", "--max_iter=2", "--snapshot=5", "--seed=1",
            f"--snapshot_file={tmp_path / 'snap_%d.tfmodel'}", f"--log_dir={tb}"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run(args, cwd=repo_root, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "iter = 1, cls_loss (cur) = " in out.stderr
    assert "Optimization done." in out.stderr
    weights, kind, _ = checkpoints.read_weights(str(tmp_path / "snap_2.tfmodel"))
    assert kind == "seg_lowres"
    assert os.path.isfile(str(tmp_path / "snap_2.tfmodel") + snapshots.STATE_SUFFIX)
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(tb))
    bad = subprocess.run(args + ["--data_prefix=missing"], cwd=repo_root, env=env,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "error: no batches under" in bad.stderr


# ---------------------------------------------------------------------------------------------
# distribution: MirroredStrategy over 2 logical CPUs == one device (own process)
# ---------------------------------------------------------------------------------------------

MIRRORED_CHECK = textwrap.dedent("""
    import os, sys
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import test_training as tt
    from text_objseg_tf2 import checkpoints
    from text_objseg_tf2.training import config as config_lib
    from text_objseg_tf2.training.trainer import Trainer

    params, _, _ = checkpoints.read_weights(sys.argv[1])
    cfg = config_lib.stage_config("seg_lowres", T=4, N=2, input_H=64, input_W=64,
                                  lr_decay_step=1, weight_decay=0.02, fix_convnet=True,
                                  seed=1, **tt.SMALL)
    single = Trainer(cfg, net=tt.make_net(params, "seg_lowres"))
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        net = tt.make_net(params, "seg_lowres")
    multi = Trainer(cfg.replace(strategy="mirrored"), net=net, strategy=strategy)
    assert multi.strategy.num_replicas_in_sync == 2
    worst = 0.0
    for i in range(2):
        batch = tt.make_batch("seg_lowres", 4, 2, 64, 64, seed=40 + i, vocab_hi=6)
        a, b = single.step(i, batch), multi.step(i, batch)
        for key in a:
            assert abs(a[key] - b[key]) <= 1e-5 * max(1.0, abs(a[key])), (key, a, b)
    for name, var in single.selection.train.items():
        for got, want in ((multi.selection.train[name].value.values[1], var),
                          (multi.optimizer.accumulators[name].values[1],
                           single.optimizer.accumulators[name])):
            got, want = np.asarray(got), np.asarray(want)
            scale = max(1.0, float(np.max(np.abs(want))))
            worst = max(worst, float(np.max(np.abs(got - want))) / scale)
    print("MAXDIFF", worst)
""")


def test_mirrored_two_devices_equal_one_device(seg_run_files, repo_root):
    _, pretrained = seg_run_files
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(repo_root / "tests"), str(repo_root), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", MIRRORED_CHECK, pretrained], cwd=repo_root,
                         env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    worst = float(out.stdout.split("MAXDIFF")[-1])
    assert worst < 1e-5
