"""The Keras models against the independent TF1-graph re-expression in tf1_reference."""

import numpy as np
import pytest
import tensorflow as tf
import tf1_reference as ref

from text_objseg_tf2.models import text_objseg_model
from text_objseg_tf2.models.text_objseg_model import TextObjSegNet


def load_params(net, params, kind):
    """Assign TF1-named arrays to the net's variables (plain reshape for det fc matrices)."""
    variables = net.tf1_variables(kind)
    assert set(variables) == set(params)
    for name, var in variables.items():
        var.assign(params[name].reshape(var.shape))


def assert_scores_close(got, want, rtol=1e-4):
    got = np.asarray(got, np.float64)
    scale = np.max(np.abs(want))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale)


SMALL = dict(num_vocab=30, embed_dim=12, lstm_dim=10, mlp_hidden_dims=6)


@pytest.fixture(scope="module")
def small_net():
    return TextObjSegNet(**SMALL)


def _text(T, N, num_vocab, seed=1):
    return np.random.default_rng(seed).integers(0, num_vocab, (T, N)).astype(np.int32)


def _images(N, H, W, seed=2):
    rng = np.random.default_rng(seed)
    return (rng.uniform(0, 255, (N, H, W, 3)) - np.array([123.68, 116.779, 103.939])
            ).astype(np.float32)


def test_region_model_matches_tf1(small_net):
    params = ref.random_params("det", **SMALL, seed=3)
    load_params(small_net, params, "det")
    text = _text(5, 3, SMALL["num_vocab"])
    crops = _images(3, 224, 224)
    spatial = np.random.default_rng(4).uniform(-1, 1, (3, 8)).astype(np.float32)
    got = small_net.region_model(T=5)([text, crops, spatial])
    assert got.shape == (3, 1)
    assert_scores_close(got, ref.region_scores(params, text, crops, spatial))


@pytest.mark.parametrize("H,W", [(64, 64), (96, 64)])
def test_lowres_and_highres_match_tf1(small_net, H, W):
    params = ref.random_params("seg_highres", **SMALL, seed=5)
    load_params(small_net, params, "seg_highres")
    text = _text(6, 2, SMALL["num_vocab"], seed=6)
    images = _images(2, H, W, seed=7)
    low = small_net.lowres_model(H, W, T=6)([text, images])
    assert low.shape == (2, H // 32, W // 32, 1)
    assert_scores_close(low, ref.lowres_scores(params, text, images))
    high = small_net.highres_model(H, W, T=6)([text, images])
    assert high.shape == (2, H, W, 1)
    assert_scores_close(high, ref.highres_scores(params, text, images))


def test_models_share_one_set_of_layers(small_net):
    low = small_net.lowres_model(64, 64, T=4)
    high = small_net.highres_model(64, 64, T=4)
    region = small_net.region_model(T=4)
    low_ids = {id(v) for v in low.weights}
    high_ids = {id(v) for v in high.weights}
    assert low_ids < high_ids
    assert high_ids - low_ids == {id(small_net.upsample32s.kernel)}
    assert low_ids == {id(v) for v in region.weights}


def test_encoder_and_head_compose_to_full_model(small_net):
    params = ref.random_params("seg_highres", **SMALL, seed=8)
    load_params(small_net, params, "seg_highres")
    text = _text(5, 3, SMALL["num_vocab"], seed=9)
    image = _images(1, 64, 96, seed=10)
    full = small_net.highres_model(64, 96, T=5)([text, np.repeat(image, 3, axis=0)])
    lang = small_net.text_encoder_model(T=5)(text)
    vis = small_net.image_encoder_model(64, 96)(image)
    head = small_net.seg_head_model(2, 3, upsample=True)
    split = head([lang, tf.repeat(vis, 3, axis=0)])
    np.testing.assert_allclose(split, full, rtol=1e-5, atol=1e-5 * np.max(np.abs(full)))
    # Region head on the crop encoder.
    region_params = ref.random_params("det", **SMALL, seed=11)
    load_params(small_net, region_params, "det")
    crops = _images(2, 224, 224, seed=12)
    spatial = np.zeros((2, 8), np.float32)
    text2 = text[:, :2]
    full_r = small_net.region_model(T=5)([text2, crops, spatial])
    split_r = small_net.region_head_model()(
        [small_net.text_encoder_model(T=5)(text2), small_net.crop_encoder_model()(crops), spatial])
    np.testing.assert_allclose(split_r, full_r, rtol=1e-5, atol=1e-6)


def test_encoder_is_basic_lstm_cell_with_leading_pads(small_net):
    params = ref.random_params("seg_lowres", **SMALL, seed=13)
    load_params(small_net, params, "seg_lowres")
    text = np.zeros((20, 4), np.int32)  # id 0 is <pad>
    text[19, :] = [3, 4, 5, 6]  # one word after 19 leading pads
    text[10:, 1] = np.arange(10) + 1
    got = small_net.text_encoder_model(T=20)(text).numpy()
    want = ref.lstm_last_hidden(params, text)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_bilinear_upsampling_puts_cell_i_at_pixel_32i_plus_16():
    net = TextObjSegNet(**SMALL)
    scores = np.zeros((1, 4, 4, 1), np.float32)
    scores[0, 1, 2, 0] = 1.0
    up = net.upsample32s(tf.constant(scores)).numpy()[0, :, :, 0]
    assert up.shape == (128, 128)
    assert np.unravel_index(np.argmax(up), up.shape) == (32 * 1 + 16, 32 * 2 + 16)
    assert up.max() == pytest.approx(1.0)
    # A constant map upsamples to the same constant away from the border.
    const = net.upsample32s(tf.ones((1, 4, 4, 1))).numpy()[0, :, :, 0]
    np.testing.assert_allclose(const[16:112, 16:112], 1.0, rtol=1e-6)


@pytest.mark.parametrize("H,W", [(100, 64), (64, 0), (31, 32)])
def test_input_size_must_be_multiple_of_32(small_net, H, W):
    with pytest.raises(ValueError, match="multiple of 32"):
        small_net.lowres_model(H, W)


def test_bad_input_dtype_and_rank_are_clear_errors(small_net):
    model = small_net.highres_model(64, 64, T=4)
    text = _text(4, 1, SMALL["num_vocab"])
    image = _images(1, 64, 64)
    with pytest.raises(ValueError, match="floating point.*channel_mean"):
        model([text, image.astype(np.uint8)])
    with pytest.raises(ValueError, match="integer word ids"):
        model([text.astype(np.float32), image])
    with pytest.raises(ValueError, match="rank 4"):
        model([text, image[0]])
    with pytest.raises(ValueError, match="shape"):
        model([text, _images(1, 96, 64)])
    with pytest.raises(ValueError, match="2 inputs"):
        model([text])
    with pytest.raises(ValueError, match="unknown model kind"):
        small_net.model("seg_superres")


def test_tf1_variable_names_and_shapes():
    net = TextObjSegNet(num_vocab=8803, embed_dim=1000, lstm_dim=1000, mlp_hidden_dims=500)
    names = net.tf1_variables("seg_highres")
    lstm = "lstm_lang/RNN/MultiRNNCell/Cell0/BasicLSTMCell/Linear"
    assert tuple(names[f"{lstm}/Matrix"].shape) == (2000, 4000)
    assert tuple(names[f"{lstm}/Bias"].shape) == (4000,)
    assert tuple(names["word_embedding/embedding"].shape) == (8803, 1000)
    assert tuple(names["vgg_local/fc6/weights"].shape) == (7, 7, 512, 4096)
    assert tuple(names["classifier/mlp_l1/weights"].shape) == (1, 1, 2008, 500)
    assert tuple(names["classifier/upsample32s/weights"].shape) == (64, 64, 1, 1)
    assert len(names) == 2 * 16 + 1 + 2 + 4 + 1
    assert "classifier/upsample32s/weights" not in net.tf1_variables("seg_lowres")
    assert text_objseg_model.fc_layout_shape((7, 7, 512, 4096)) == (25088, 4096)
    # The deconvolution starts as the release's bilinear filter.
    f = np.concatenate([np.arange(32), np.arange(32, 0, -1)]) / 32
    np.testing.assert_array_equal(names["classifier/upsample32s/weights"].numpy()[:, :, 0, 0],
                                  np.outer(f, f).astype(np.float32))


@pytest.mark.slow
def test_highres_model_at_paper_sizes_matches_tf1():
    sizes = dict(num_vocab=8803, embed_dim=1000, lstm_dim=1000, mlp_hidden_dims=500)
    net = TextObjSegNet(**sizes)
    params = ref.random_params("seg_highres", **sizes, seed=21)
    load_params(net, params, "seg_highres")
    text = _text(20, 1, 8803, seed=22)
    text[:12, 0] = 0  # leading pads
    image = _images(1, 512, 512, seed=23)
    got = net.highres_model(512, 512, T=20)([text, image])
    assert got.shape == (1, 512, 512, 1)
    assert_scores_close(got, ref.highres_scores(params, text, image))
