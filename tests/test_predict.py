"""predict: one image and one query -> scores and mask, as the release's demo and evaluation
computed them, against the independent TF1-graph re-expression."""

import os
import subprocess
import sys

import numpy as np
import pytest
import release_files as rf
import skimage
import tf1_reference as ref
from PIL import Image

from text_objseg_tf2 import predict
from text_objseg_tf2.util import im_processing, text_processing

MEAN = np.array([123.68, 116.779, 103.939])
QUERY = "sky above the bridge"


def bilinear_filter():
    f = np.concatenate([np.arange(32), np.arange(32, 0, -1)]) / 32
    return np.outer(f, f).astype(np.float32)[:, :, None, None]


def expected_scores(params, vocab_dict, image, query, H, W, T=20):
    """The TF1 graph on the original evaluation's preprocessing, written out here."""
    processed = skimage.img_as_ubyte(im_processing.resize_and_pad(image, H, W))
    if processed.ndim == 2:
        processed = np.tile(processed[:, :, None], (1, 1, 3))
    imcrop = (processed.astype(np.float32) - MEAN.astype(np.float32))[None]
    text = np.array(text_processing.preprocess_sentence(query, vocab_dict, T), np.int32)[:, None]
    return ref.highres_scores(params, text, imcrop)[0, :, :, 0]


def assert_scores_close(got, want, rtol=1e-4):
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.max(np.abs(want)))


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
    path = rf.write_vocab(tmp_path_factory.mktemp("vocab") / "vocab.txt", 30)
    return path, text_processing.load_vocab_dict_from_file(path)


@pytest.fixture(scope="module")
def lowres_net(vocab):
    """The low-res checkpoint loaded by predict: run as high-res with the bilinear filter."""
    path, params = rf.cached_checkpoint("seg_lowres", "v2", "release")
    net = predict.load_segmentation_net(path, vocab[1], vocab[0])
    return net, params


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (70, 100, 3), dtype=np.uint8)


def test_lowres_checkpoint_predicts_as_tf1_with_bilinear_upsampling(lowres_net, vocab, image):
    net, params = lowres_net
    np.testing.assert_array_equal(net.upsample32s.kernel.numpy(), bilinear_filter())
    scores, mask = predict.predict(net, vocab[1], image, QUERY, input_H=64, input_W=64)
    with_filter = dict(params, **{"classifier/upsample32s/weights": bilinear_filter()})
    assert_scores_close(scores, expected_scores(with_filter, vocab[1], image, QUERY, 64, 64))
    # The mask is the evaluation's: threshold, resize_and_crop to the image, non-zero.
    assert mask.shape == (70, 100) and mask.dtype == bool
    back = im_processing.resize_and_crop((scores >= 1e-9).astype(np.float32), 70, 100)
    np.testing.assert_array_equal(mask, back != 0)
    # The low-res model (all variables but the filter) on the same input.
    text = np.array(text_processing.preprocess_sentence(QUERY, vocab[1], 20), np.int32)[:, None]
    imcrop = (predict.preprocess_image(image, 64, 64) - MEAN.astype(np.float32))[None]
    low = net.lowres_model(64, 64, T=20)([text, imcrop]).numpy()
    assert_scores_close(low, ref.lowres_scores(params, text, imcrop))


def test_predict_takes_a_built_model_and_grey_images(lowres_net, vocab, image):
    net, _ = lowres_net
    grey = image[:, :, 0]
    want, want_mask = predict.predict(net, vocab[1], grey, "man", input_H=64, input_W=96, T=5)
    model = net.highres_model(64, 96, T=5)
    got, mask = predict.predict(model, vocab[1], grey, "man")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(mask, want_mask)
    assert got.shape == (64, 96)
    with pytest.raises(ValueError, match="high-res model"):
        predict.predict(net.lowres_model(64, 64, T=5), vocab[1], grey, "man")


def test_scores_to_mask_thresholds_at_1e_9():
    scores = np.full((64, 64), -1.0, np.float32)
    scores[:32, :] = 1e-9  # >= threshold: in
    scores[32:, :32] = 0.99e-9  # below: out
    mask = predict.scores_to_mask(scores, (64, 64))
    assert mask[:32].all() and not mask[33:].any()
    wide = predict.scores_to_mask(np.ones((64, 64), np.float32), (10, 40))
    assert wide.shape == (10, 40) and wide.all()


def test_vocabulary_of_another_size_is_refused(lowres_net, vocab, tmp_path, image):
    net, _ = lowres_net
    other = text_processing.load_vocab_dict_from_file(rf.write_vocab(tmp_path / "v.txt", 31))
    with pytest.raises(ValueError, match="31 words but the model's word embedding has 30 rows"):
        predict.predict(net, other, image, QUERY, input_H=64, input_W=64)
    path, _ = rf.cached_checkpoint("seg_lowres", "v2", "release")
    with pytest.raises(ValueError, match="v.txt has 31 words"):
        predict.load_segmentation_net(path, other, str(tmp_path / "v.txt"))


def test_det_checkpoint_is_refused():
    path, _ = rf.cached_checkpoint("det", "v2", "tf1.0")
    with pytest.raises(ValueError, match="det \\(region\\) model; predict needs a segmentation"):
        predict.load_segmentation_net(path)


def _write_image(path, array):
    Image.fromarray(array).save(path)
    return path


def test_cli_writes_mask_scores_and_overlay(tmp_path, vocab, image):
    path, _ = rf.cached_checkpoint("seg_lowres", "v2", "release")
    img = _write_image(tmp_path / "im.png", image)
    out = {k: tmp_path / f"{k}.{ext}" for k, ext in
           (("mask", "png"), ("scores", "npy"), ("overlay", "png"))}
    rf.run_absl_main(predict.define_flags, predict.main, [
        f"--pretrained_model={path}", f"--vocab_file={vocab[0]}", f"--image={img}",
        f"--query={QUERY}", "--input_H=64", "--input_W=64", f"--output_mask={out['mask']}",
        f"--output_scores={out['scores']}", f"--output_overlay={out['overlay']}"])
    scores = np.load(out["scores"])
    assert scores.shape == (64, 64) and scores.dtype == np.float32
    mask = np.asarray(Image.open(out["mask"]))
    assert mask.shape == (70, 100) and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 255}
    want = im_processing.resize_and_crop((scores >= 1e-9).astype(np.float32), 70, 100) != 0
    np.testing.assert_array_equal(mask == 255, want)
    over = np.asarray(Image.open(out["overlay"]))
    assert over.shape == (70, 100, 3) and over.dtype == np.uint8
    np.testing.assert_array_equal(over[~want], image[~want])
    if want.any():
        assert not np.array_equal(over[want], image[want])


@pytest.mark.parametrize("args,message", [
    (["--query=  "], "query is empty"),
    (["--image=/nonexistent/im.jpg"], "image file not found: /nonexistent/im.jpg"),
    (["--vocab_file=VOCAB31"], "has 31 words but the model's word embedding has 30 rows"),
    (["--pretrained_model=/nonexistent/m.tfmodel"], "not found: /nonexistent/m.tfmodel"),
])
def test_cli_bad_input_is_a_one_line_error(tmp_path, vocab, image, args, message):
    path, _ = rf.cached_checkpoint("seg_lowres", "v2", "release")
    img = _write_image(tmp_path / "im.png", image)
    vocab31 = rf.write_vocab(tmp_path / "v31.txt", 31)
    base = {"--pretrained_model": path, "--vocab_file": vocab[0], "--image": img,
            "--query": QUERY}
    for arg in args:
        key, value = arg.split("=", 1)
        base[key] = value.replace("VOCAB31", str(vocab31))
    with pytest.raises(SystemExit) as info:
        rf.run_absl_main(predict.define_flags, predict.main,
                         [f"{k}={v}" for k, v in base.items()])
    assert message in str(info.value) and "\n" not in str(info.value)


def test_console_entry_point_runs_as_a_program(tmp_path, vocab):
    """`python -m text_objseg_tf2.predict` (what the text_objseg_predict script runs): flags,
    then a clear error and exit status 1 for a missing image."""
    path, _ = rf.cached_checkpoint("seg_lowres", "v2", "release")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, "-m", "text_objseg_tf2.predict", f"--pretrained_model={path}",
         f"--vocab_file={vocab[0]}", f"--image={tmp_path / 'absent.jpg'}", f"--query={QUERY}"],
        capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1
    assert f"error: image file not found: {tmp_path / 'absent.jpg'}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_demo_image(demo_image_path, vocab, tmp_path):
    """The release's demo image (38100.jpg) through the whole command at 512 x 512."""
    path, _ = rf.cached_checkpoint("seg_lowres", "v2", "release")
    out = {k: tmp_path / f"{k}.{ext}" for k, ext in
           (("mask", "png"), ("scores", "npy"), ("overlay", "png"))}
    rf.run_absl_main(predict.define_flags, predict.main, [
        f"--pretrained_model={path}", f"--vocab_file={vocab[0]}", f"--image={demo_image_path}",
        f"--query={QUERY}", f"--output_overlay={out['overlay']}",
        f"--output_scores={out['scores']}", f"--output_mask={out['mask']}"])
    im = np.asarray(Image.open(demo_image_path))
    assert np.asarray(Image.open(out["overlay"])).shape == im.shape[:2] + (3,)
    scores = np.load(out["scores"])
    assert scores.shape == (512, 512)
    want = im_processing.resize_and_crop((scores >= 1e-9).astype(np.float32), *im.shape[:2])
    np.testing.assert_array_equal(np.asarray(Image.open(out["mask"])) == 255, want != 0)


@pytest.mark.slow
def test_release_size_v1_highres_checkpoint_predicts_as_tf1(tmp_path):
    """A full-size high-res checkpoint as the release shipped it (single-file V1, the LSTM
    under RNN/MultiRNNCell/...), vocabulary 8803, on a 512 x 512 input."""
    params = rf.make_params("seg_highres", **rf.PAPER, seed=5)
    path = rf.write_tf1_saver_checkpoint(params, tmp_path / "referit_fc8_seg_highres.tfmodel",
                                         "v1", "release")
    assert os.path.isfile(path)
    vocab_path = rf.write_vocab(tmp_path / "vocabulary_referit.txt", 8803)
    vocab_dict = text_processing.load_vocab_dict_from_file(vocab_path)
    net = predict.load_segmentation_net(path, vocab_dict, vocab_path)
    image = np.random.default_rng(3).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    query = "the bridge on the left above the water"
    scores, mask = predict.predict(net, vocab_dict, image, query)
    assert scores.shape == (512, 512) and mask.shape == (512, 512)
    assert_scores_close(scores, expected_scores(params, vocab_dict, image, query, 512, 512))
