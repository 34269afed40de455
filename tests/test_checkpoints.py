"""Loading and saving weights: the release's TF1 checkpoints (written here with TF1's own Saver,
see release_files.py) and this project's format, against the independent TF1-graph
re-expression in tf1_reference.py."""

import os
import pickle

import h5py
import numpy as np
import pytest
import release_files as rf
import tensorflow as tf
import tf1_reference as ref

from text_objseg_tf2 import checkpoints as ck
from text_objseg_tf2 import vgg_params

LSTM_M, LSTM_B = rf.LSTM_SPELLINGS["release"]
MEAN = np.array([123.68, 116.779, 103.939], np.float32)


def assert_scores_close(got, want, rtol=1e-4):
    got = np.asarray(got, np.float64)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.max(np.abs(want)))


def _text(T, N, num_vocab, seed=1):
    return np.random.default_rng(seed).integers(0, num_vocab, (T, N)).astype(np.int32)


def _images(N, H, W, seed=2):
    rng = np.random.default_rng(seed)
    return (rng.uniform(0, 255, (N, H, W, 3)) - np.array([123.68, 116.779, 103.939])
            ).astype(np.float32)


@pytest.fixture(scope="module")
def highres_v2():
    """A high-res checkpoint, V2, TF >= 1.2 LSTM names (kernel / bias)."""
    return rf.cached_checkpoint("seg_highres", "v2", "tf1.2")


@pytest.fixture(scope="module")
def highres_net(highres_v2):
    net, kind = ck.load_pretrained(highres_v2[0])
    assert kind == "seg_highres"
    return net


# ---- names, kinds, sizes (no network) ----

@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("spelling", ["release", "tf1.0", "tf1.2"])
def test_reader_normalises_lstm_names_and_skips_training_state(tmp_path, version, spelling):
    params = {LSTM_M: np.arange(8, dtype=np.float32).reshape(2, 4),
              LSTM_B: np.ones(4, np.float32), "vgg_local/fc8/biases": np.zeros(3, np.float32)}
    path = rf.write_tf1_saver_checkpoint(params, tmp_path / "m.tfmodel", version, spelling,
                                         training_state=True)
    raw = tf.train.load_checkpoint(path).get_variable_to_shape_map()
    assert "Variable" in raw and f"{rf.LSTM_SPELLINGS[spelling][0]}/Momentum" in raw
    got = ck.read_tf1_checkpoint(path)
    assert set(got) == set(params)
    for name, value in params.items():
        np.testing.assert_array_equal(got[name], value)
    full = ck.read_tf1_checkpoint(path, include_training_state=True)
    assert f"{LSTM_M}/Momentum" in full and int(full["Variable"]) == 18000


def test_two_spellings_of_the_lstm_are_an_error(tmp_path):
    params = {LSTM_M: np.ones((2, 4), np.float32),
              rf.LSTM_SPELLINGS["tf1.2"][0]: np.ones((2, 4), np.float32)}
    path = rf.write_tf1_saver_checkpoint(params, tmp_path / "m", "v2")
    with pytest.raises(ValueError, match="twice"):
        ck.read_tf1_checkpoint(path)


@pytest.mark.parametrize("kind", ["det", "seg_lowres", "seg_highres"])
def test_detect_kind_and_infer_sizes(kind):
    sizes = dict(num_vocab=17, embed_dim=5, lstm_dim=7, mlp_hidden_dims=3)
    params = rf.make_params(kind, **sizes)
    assert ck.detect_kind(params) == kind
    assert ck.detect_kind(rf.respell(params, "tf1.0")) == kind
    assert ck.infer_sizes(rf.respell(params, "tf1.2")) == sizes
    assert {n: tuple(v.shape) for n, v in params.items()} == ck.expected_shapes(kind, sizes)
    with pytest.raises(ValueError, match="not a text_objseg model"):
        ck.detect_kind({"foo/weights": np.zeros(3)})


def test_check_params_lists_every_problem_on_one_line():
    params = dict(rf.make_params("det", **rf.SMALL))
    del params["vgg_local/conv1_1/biases"]
    params["vgg_local/fc7/weights"] = np.zeros((3, 3), np.float32)
    params["classifier/mlp_l2/biases"] = np.zeros(1, np.int32)
    params["extra/weights"] = np.zeros(1, np.float32)
    with pytest.raises(ValueError) as info:
        ck.check_params(params, "det")
    msg = str(info.value)
    assert "\n" not in msg
    assert "missing: vgg_local/conv1_1/biases" in msg
    assert "unexpected: extra/weights" in msg
    assert "vgg_local/fc7/weights [3, 3] (expected [4096, 4096])" in msg
    assert "not floating point: classifier/mlp_l2/biases (int32)" in msg


def test_expected_shapes_and_keras_table_match_the_net(highres_net):
    sizes = {k: getattr(highres_net, k) for k in ck.SIZE_KEYS}
    for kind in ("seg_lowres", "seg_highres"):
        want = {n: tuple(v.shape) for n, v in highres_net.tf1_variables(kind).items()}
        assert ck.expected_shapes(kind, sizes) == want
    det = ck.expected_shapes("det", sizes)
    assert det["vgg_local/fc6/weights"] == (25088, 4096)
    assert det["classifier/mlp_l1/weights"] == (1018, 6)
    layer_of = {}
    for layer in (*highres_net.vgg.layers.values(), highres_net.embedding, highres_net.lstm,
                  highres_net.mlp_l1, highres_net.mlp_l2, highres_net.upsample32s):
        for i, w in enumerate(layer.weights):
            layer_of[id(w)] = (layer.name, i)
    for name, var in highres_net.tf1_variables("seg_highres").items():
        layer, i = layer_of[id(var)]
        assert ck._KERAS_LAYER_VARIABLES[layer][i] == name


# ---- loading release checkpoints, against the TF1 re-expression ----

def test_v2_new_names_highres_matches_tf1(highres_v2, highres_net):
    _, params = highres_v2  # the arrays the Saver wrote
    assert set(highres_net.tf1_variables("seg_highres")) == set(params)
    text = _text(5, 2, rf.SMALL["num_vocab"])
    images = _images(2, 64, 96)
    got = highres_net.highres_model(64, 96, T=5)([text, images])
    assert_scores_close(got, ref.highres_scores(params, text, images))


@pytest.fixture(scope="module")
def det_v2():
    """A det checkpoint, V2, TF 1.0-1.1 LSTM names (weights / biases)."""
    return rf.cached_checkpoint("det", "v2", "tf1.0")


@pytest.fixture(scope="module")
def det_net(det_v2):
    net, kind = ck.load_pretrained(det_v2[0])
    assert kind == "det"
    return net


def test_det_checkpoint_runs_the_region_model(det_v2, det_net):
    _, params = det_v2
    assert params["vgg_local/fc6/weights"].shape == (25088, 4096)
    text = _text(6, 2, rf.SMALL["num_vocab"], seed=3)
    crops = _images(2, 224, 224, seed=4)
    spatial = np.random.default_rng(5).uniform(-1, 1, (2, 8)).astype(np.float32)
    got = det_net.region_model(T=6)([text, crops, spatial])
    assert_scores_close(got, ref.region_scores(params, text, crops, spatial))
    # As seg_lowres: the release's init script's plain reshape.
    as_lowres = ck.convert_params(params, "det", "seg_lowres")
    assert as_lowres["vgg_local/fc6/weights"].shape == (7, 7, 512, 4096)
    assert as_lowres["classifier/mlp_l1/weights"].shape == (1, 1, 1018, 6)
    for name in ("classifier/mlp_l1/weights", "classifier/mlp_l2/weights"):
        np.testing.assert_array_equal(as_lowres[name][0, 0], params[name])


def test_checkpoint_of_another_model_is_refused(highres_v2):
    with pytest.raises(ValueError, match="seg_highres model cannot be used as a det model"):
        ck.load_pretrained(highres_v2[0], kind="det")
    with pytest.raises(ValueError, match="seg_highres model cannot be used as a seg_lowres"):
        ck.load_pretrained(highres_v2[0], kind="seg_lowres")
    with pytest.raises(ValueError, match="num_vocab=31 but the weights have 30"):
        ck.load_pretrained(highres_v2[0], num_vocab=31)


def test_mis_shaped_missing_and_unexpected_variables_are_listed(tmp_path, highres_net):
    full = rf.make_params("seg_lowres", **rf.SMALL)
    part = {n: full[n] for n in ("word_embedding/embedding", LSTM_M, LSTM_B,
                                 "classifier/mlp_l1/weights", "vgg_local/conv1_1/biases")}
    part["vgg_local/fc6/weights"] = np.zeros((1, 1, 1, 1), np.float32)
    part["classifier/mlp_l1/biases"] = np.zeros(7, np.float32)
    part["classifier/mlp_l3/weights"] = np.zeros((1, 1, 6, 1), np.float32)
    path = rf.write_tf1_saver_checkpoint(part, tmp_path / "bad", "v2", "tf1.2")
    with pytest.raises(ValueError) as info:
        ck.load_pretrained(path)
    msg = str(info.value)
    assert str(path) in msg and "\n" not in msg
    assert "missing: classifier/mlp_l2/biases, classifier/mlp_l2/weights, vgg_local/conv1_1/" \
           "weights" in msg and "vgg_local/fc8/biases" in msg
    assert "unexpected: classifier/mlp_l3/weights" in msg
    assert "classifier/mlp_l1/biases [7] (expected [6])" in msg
    assert "vgg_local/fc6/weights [1, 1, 1, 1] (expected [7, 7, 512, 4096])" in msg
    # assign_params checks everything before assigning anything: no partial restore.
    before = highres_net.vgg.layers["conv1_1"].kernel.numpy()
    bad = dict(full)
    del bad["vgg_local/conv3_2/biases"]
    bad["vgg_local/conv1_1/weights"] = np.zeros((3, 3, 3, 64), np.float32)
    with pytest.raises(ValueError, match="missing: vgg_local/conv3_2/biases"):
        ck.assign_params(highres_net, bad, "seg_lowres")
    np.testing.assert_array_equal(highres_net.vgg.layers["conv1_1"].kernel.numpy(), before)


def _truncate(path, keep=0.5):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(int(size * keep))


def test_truncated_and_corrupt_files_are_one_line_errors(tmp_path):
    small = {LSTM_M: np.ones((40, 8), np.float32), "vgg_local/fc8/biases": np.ones(1000)}
    v1 = rf.write_tf1_saver_checkpoint(small, tmp_path / "a.tfmodel", "v1")
    _truncate(v1)
    v2 = rf.write_tf1_saver_checkpoint(small, tmp_path / "b", "v2")
    _truncate(v2 + ".data-00000-of-00001")
    h5 = tmp_path / "c.weights.h5"
    with h5py.File(h5, "w") as f:
        f.create_dataset("layers/x/vars/0", data=np.ones(100000))
    _truncate(h5)
    garbage = tmp_path / "d.tfmodel"
    garbage.write_bytes(b"not a checkpoint at all" * 10)
    for path in (v1, v2, str(h5), str(garbage)):
        with pytest.raises(ValueError) as info:
            ck.read_weights(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ck.load_pretrained(tmp_path / "nowhere.tfmodel")


# ---- this project's format, round trips ----

def test_round_trip_tf1_own_tf1_is_bit_identical(tmp_path, highres_v2, highres_net,
                                                  zero_net_and_filter):
    path, original = highres_v2
    own = tmp_path / "m.weights.h5"
    ck.save_weights(highres_net, "seg_highres", own)
    with h5py.File(own, "r") as f:
        assert f.attrs["format"] == ck.FORMAT_NAME and f.attrs["kind"] == "seg_highres"
        assert int(f.attrs["num_vocab"]) == 30 and int(f.attrs["lstm_dim"]) == 10
        compressed = []
        f.visititems(lambda n, o: compressed.append(n) if getattr(o, "compression", None)
                     else None)
        assert compressed == []  # dense weights are stored as they are
    params, kind, sizes = ck.read_weights(own)
    assert kind == "seg_highres" and sizes == rf.SMALL
    assert set(params) == set(original)
    for name in original:
        assert params[name].dtype == np.float32
        assert np.array_equal(params[name], original[name]), name
    # Back to a TF1 checkpoint (V2 here; V1 in test_write_v1_as_the_release).
    out = ck.write_tf1_checkpoint(params, tmp_path / "back", "v2", lstm_spelling="tf1.0")
    del params
    back = rf.read_with_tf(out)
    assert set(back) == set(original)
    for name in original:
        assert back[name].dtype == np.float32
        assert np.array_equal(back[name], original[name]), name
    stored = tf.train.load_checkpoint(out).get_variable_to_shape_map()
    assert rf.LSTM_SPELLINGS["tf1.0"][0] in stored
    # A plain Keras load_weights reads the file into a model of the same kind.
    zero_net, _ = zero_net_and_filter
    checked = {"word_embedding/embedding": zero_net.embedding.embedding,
               LSTM_M: zero_net.lstm.matrix, "classifier/mlp_l2/weights": zero_net.mlp_l2.kernel,
               "vgg_local/fc6/weights": zero_net.vgg.fc6.kernel,
               "classifier/upsample32s/weights": zero_net.upsample32s.kernel}
    for var in checked.values():
        var.assign(tf.zeros_like(var))
    zero_net.highres_model(64, 64, T=3).load_weights(own)
    for name, var in checked.items():
        assert np.array_equal(var.numpy(), original[name]), name


def test_mostly_zero_weights_are_stored_deflated(tmp_path, zero_net_and_filter):
    """The colour stand-in VGG (all but a few weights 0): a small file, the same values, and
    still a file that a plain Keras load_weights reads."""
    zero_net, _ = zero_net_and_filter
    vgg_params.assign_vgg(zero_net, *vgg_params.colour_vgg_params())
    zero_net.embedding.embedding.assign(
        np.random.default_rng(1).standard_normal(zero_net.embedding.embedding.shape))
    want = {n: v.numpy() for n, v in zero_net.tf1_variables("seg_lowres").items()}
    own = tmp_path / "colour.weights.h5"
    ck.save_weights(zero_net, "seg_lowres", own)
    assert os.path.getsize(own) < 8 * 2**20  # 553 MB as dense float32
    with h5py.File(own, "r") as f:
        assert f.attrs["kind"] == "seg_lowres"
        gzip = []
        f.visititems(lambda n, o: gzip.append(n) if getattr(o, "compression", None) else None)
    assert len(gzip) == 14  # VGG kernels from conv2_1 on; small or dense arrays as they are
    params, kind, _ = ck.read_weights(own)
    assert kind == "seg_lowres"
    for name, value in want.items():
        assert np.array_equal(params[name], value.reshape(params[name].shape)), name
    for var in (zero_net.vgg.fc6.kernel, zero_net.embedding.embedding):
        var.assign(tf.ones_like(var))
    zero_net.lowres_model(64, 64, T=3).load_weights(own)
    assert np.array_equal(zero_net.vgg.fc6.kernel.numpy(), want["vgg_local/fc6/weights"])
    assert np.array_equal(zero_net.embedding.embedding.numpy(),
                          want["word_embedding/embedding"])


@pytest.mark.parametrize("spelling", ["release", "tf1.0", "tf1.2"])
def test_write_v1_as_the_release(tmp_path, spelling):
    params = {LSTM_M: np.random.default_rng(0).standard_normal((6, 8)).astype(np.float32),
              LSTM_B: np.arange(8, dtype=np.float32), "vgg_local/fc8/biases": np.ones(3)}
    out = ck.write_tf1_checkpoint(params, tmp_path / "m.tfmodel", "v1", lstm_spelling=spelling)
    assert out == str(tmp_path / "m.tfmodel") and os.listdir(tmp_path) == ["m.tfmodel"]
    stored = tf.train.load_checkpoint(out).get_variable_to_shape_map()
    assert set(stored) == {*rf.LSTM_SPELLINGS[spelling], "vgg_local/fc8/biases"}
    back = rf.read_with_tf(out)
    for name, value in params.items():
        assert back[name].dtype == value.dtype and np.array_equal(back[name], value)


def test_det_round_trip_keeps_the_fc_layout(tmp_path, det_v2, det_net):
    original = det_v2[1]
    own = tmp_path / "det.weights.h5"
    ck.save_weights(det_net, "det", own)
    params, kind, _ = ck.read_weights(own)
    assert kind == "det" and params["vgg_local/fc6/weights"].shape == (25088, 4096)
    assert set(params) == set(original)
    assert all(np.array_equal(params[n], original[n]) for n in original)
    del params
    # Without the kind attribute (a plain model.save_weights) det / seg_lowres is ambiguous.
    with h5py.File(own, "a") as f:
        for key in list(f.attrs):
            del f.attrs[key]
    with pytest.raises(ValueError, match="say which"):
        ck.inspect_weights(own)
    assert ck.inspect_weights(own, kind="det").kind == "det"
    assert ck.inspect_weights(own, kind="det").shapes["vgg_local/fc6/weights"] == (25088, 4096)
    assert ck.inspect_weights(own, kind="seg_highres").kind == "seg_lowres"


def test_save_weights_needs_the_keras_suffix(tmp_path, highres_net):
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        ck.save_weights(highres_net, "seg_highres", tmp_path / "m.h5")


# ---- VGG initialisation ----

@pytest.fixture(scope="module")
def zero_net_and_filter():
    """A net made from zeros (seg_lowres variables only) and its upsample32s kernel as made."""
    zeros = {n: np.zeros(s, np.float32)
             for n, s in ck.expected_shapes("seg_lowres", rf.SMALL).items()}
    net = ck.new_net(zeros, rf.SMALL)
    return net, net.upsample32s.kernel.numpy()


def test_new_net_keeps_the_initialiser_of_variables_not_given(zero_net_and_filter):
    f = np.concatenate([np.arange(32), np.arange(32, 0, -1)]) / 32
    np.testing.assert_array_equal(zero_net_and_filter[1][:, :, 0, 0],
                                  np.outer(f, f).astype(np.float32))


def test_vgg_params_npz_as_the_release_wrote_it(tmp_path, zero_net_and_filter):
    zero_net, _ = zero_net_and_filter
    weights, biases = rf.vgg_from_params(rf.vgg_arrays())
    assert weights["fc6"].shape == (25088, 4096)
    path = rf.write_vgg_params_npz(tmp_path / "vgg_params.npz", weights, biases)
    layers = zero_net.vgg.layers
    for name in ("conv1_1", "fc6", "fc8"):  # whatever an earlier test left there
        layers[name].kernel.assign(tf.zeros(layers[name].kernel.shape))
    ck.init_vgg_from_npz(zero_net, path)
    for name, layer in layers.items():
        np.testing.assert_array_equal(layer.kernel.numpy(),
                                      rf.vgg_arrays()[f"vgg_local/{name}/weights"])
        np.testing.assert_array_equal(layer.bias.numpy(), biases[name])


def test_colour_stand_in_vgg_gives_each_cells_colour_extremes(tmp_path, zero_net_and_filter):
    """The synthetic runs' hand-set VGG, through its release-layout npz: fc8 of each 32x32
    cell = per-channel maxima of relu(+-(pixel - mean) / 128), then zeros."""
    zero_net, _ = zero_net_and_filter
    path = vgg_params.save_vgg_params_npz(tmp_path / "colour.npz",
                                          *vgg_params.colour_vgg_params(), compressed=True)
    weights, _ = vgg_params.load_vgg_params_npz(path)
    assert weights["fc6"].shape == (25088, 4096)
    ck.init_vgg_from_npz(zero_net, path)
    image = np.random.default_rng(3).integers(0, 256, (1, 64, 96, 3)).astype(np.float32)
    x = image[0] - MEAN
    fc8 = zero_net.image_encoder_model(64, 96)(image - MEAN).numpy()[0]
    signed = np.maximum(np.concatenate([x, -x], axis=-1) / 128, 0)  # [64, 96, 6]
    want = np.zeros((2, 3, 1000), np.float32)
    want[:, :, :6] = signed.reshape(2, 32, 3, 32, 6).max(axis=(1, 3))
    np.testing.assert_allclose(fc8, want, rtol=1e-6, atol=1e-7)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/text_objseg_pwned",))


def test_vgg_params_npz_refuses_anything_else(tmp_path):
    tiny_w = {"conv1_1": np.zeros((3, 3, 3, 64), np.float32)}
    cases = {
        "extra_key": dict(processed_W=tiny_w, processed_B={}, other=np.zeros(2)),
        "array_not_dict": dict(processed_W=np.zeros(3), processed_B=np.zeros(3)),
        "evil": dict(processed_W=np.array(_Evil(), dtype=object), processed_B={}),
        "not_arrays": dict(processed_W={"conv1_1": "weights"}, processed_B={}),
        "missing_and_bad_shape": dict(processed_W={"fc7": np.zeros((10, 10), np.float32)},
                                      processed_B={"conv1_1": np.zeros(64, np.float32)}),
    }
    messages = {}
    for name, arrays in cases.items():
        path = tmp_path / f"{name}.npz"
        np.savez(path, **arrays)
        with pytest.raises(ValueError) as info:
            ck.load_vgg_params_npz(path)
        messages[name] = str(info.value)
        assert str(path) in messages[name] and "\n" not in messages[name]
    assert not os.path.exists("/tmp/text_objseg_pwned")
    assert "refusing to load" in messages["evil"]
    assert "expected ['processed_B.npy', 'processed_W.npy']" in messages["extra_key"]
    assert "must be a pickled dict" in messages["array_not_dict"]
    assert "missing weights: conv1_1, conv1_2" in messages["missing_and_bad_shape"]
    assert "fc7 weights [10, 10] (expected [4096, 4096])" in messages["missing_and_bad_shape"]
    with pytest.raises(FileNotFoundError):
        ck.load_vgg_params_npz(tmp_path / "absent.npz")


def test_vgg_params_npz_reads_python2_pickles(tmp_path):
    """The release's file was written by Python 2 (pickle protocol 2, str keys as bytes)."""
    import zipfile

    path = tmp_path / "py2.npz"
    value = {b"conv1_1": np.arange(6, dtype=np.float32)}
    with zipfile.ZipFile(path, "w") as zf:
        with zf.open("processed_W.npy", "w") as f:
            np.lib.format.write_array_header_1_0(
                f, {"descr": "|O", "fortran_order": False, "shape": ()})
            pickle.dump(np.array(value, dtype=object), f, protocol=2)
    with zipfile.ZipFile(path) as zf:
        got = vgg_params._read_npz_dict(zf, "processed_W", str(path))
    assert list(got) == ["conv1_1"]
    np.testing.assert_array_equal(got["conv1_1"], np.arange(6, dtype=np.float32))


def test_keras_applications_vgg16_weights_give_the_same_fc8(tmp_path, zero_net_and_filter):
    zero_net, _ = zero_net_and_filter
    import keras

    kvgg = keras.applications.VGG16(weights=None, classifier_activation=None)
    rng = np.random.default_rng(0)
    for layer in kvgg.layers:
        if layer.weights:
            layer.bias.assign(rng.standard_normal(layer.bias.shape).astype(np.float32) * 0.1)
    path = rf.write_keras_legacy_h5(tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels.h5",
                                    kvgg)
    ck.init_vgg_from_keras_h5(zero_net, path)
    rgb = rng.uniform(0, 255, (1, 224, 224, 3)).astype(np.float32)
    ours = zero_net.crop_encoder_model()(rgb - np.float32([123.68, 116.779, 103.939]))
    # keras' VGG16 takes Caffe's BGR order minus the BGR mean.
    theirs = kvgg(rgb[..., ::-1] - np.float32([103.939, 116.779, 123.68]))
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * np.max(np.abs(theirs)))


def test_keras3_weights_layout_is_read(tmp_path):
    path = tmp_path / "k3.weights.h5"
    with h5py.File(path, "w") as f:
        for key, name in (("conv2d", "block1_conv1"), ("dense", "fc1")):
            group = f.create_group(f"layers/{key}/vars")
            group.attrs["name"] = name
            group.create_dataset("0", data=np.ones((2, 3), np.float32))
            group.create_dataset("1", data=np.zeros(3, np.float32))
    with h5py.File(path, "r") as f:
        layers = vgg_params._h5_layer_weights(f, str(path))
    assert set(layers) == {"block1_conv1", "fc1"} and layers["fc1"][0].shape == (2, 3)
    with pytest.raises(ValueError, match="missing block1_conv2"):
        vgg_params.load_keras_vgg16_h5(path)
