"""The SavedModel export: in-graph preprocessing against the numpy path (util, predict), and the
exported model served in a fresh process that imports nothing but TensorFlow
(tests/export_check_fresh_process.py).

One export with the full VGG-16 (its size is fixed; the text part is small) is made once per
module by exp-referit/export_saved_model.py and served once by the helper process, which runs
every job; the tests below check its outputs. The network input is 320x320 rather than the
default 512x512 (every size is the same code; VGG at 512 costs 2.5x more per image and the
module's ~16 forward passes would not fit the time budget of the test suite).
"""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import types

import numpy as np
import pytest
import tensorflow as tf
import tf1_reference as ref
from absl import flags

from text_objseg_tf2 import checkpoints, export, predict
from text_objseg_tf2.models import processing_tools, vgg_net
from text_objseg_tf2.synthetic_referit import make_synthetic_referit
from text_objseg_tf2.util import io, text_processing

TESTS_DIR = pathlib.Path(__file__).resolve().parent
HELPER = TESTS_DIR / "export_check_fresh_process.py"
SCRIPT = TESTS_DIR.parent / "exp-referit" / "export_saved_model.py"
T = 20
INPUT = 320  # network input size of the test export (a multiple of 32)
SIZES = dict(embed_dim=8, lstm_dim=8, mlp_hidden_dims=8)

# Valid queries whose ids must equal preprocess_sentence's.
EDGE_QUERIES = [
    "  Hello,  World. ", "right .", "end.", "end..", "..a", "a_b-c d'e", "UPPER lower MiXeD",
    "rocks on left, next", "tab\tsep\nnewline\r", "x\u00a0y\u2003z\u3000w", "\u3000lead",
    "caf\u00e9 na\u00efve \u00c9T\u00c9", "a\u0130b \u212a \u212a", "sky\u2122",
    "\u2620 face \u2620", "\x00a", "x\x1cy", "\u00ff\u0178", "??", "'", "w " * 40, "one",
    "left-most 2nd guy!!!", "The RED Circle, on the LEFT.", "big blue square ,", "\u0130 \u212a",
]
# Invalid input -> (job name, substring of the InvalidArgumentError message).
BAD_QUERIES = {"empty": ("", "empty or blank"), "blank": (" \t\u3000", "empty or blank"),
               "only_dot": (" . ", "has no words")}


def _iou(a, b):
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else np.logical_and(a, b).sum() / union


# ---------------------------------------------------------------------------------------------
# In-process: the graph preprocessing is the numpy path's, value for value
# ---------------------------------------------------------------------------------------------

IMAGE_SIZES = [(1, 1, 3), (5, 700, 3), (700, 5, 1), (512, 512, 3), (333, 517, 3),
               (37, 64, 1), (480, 360, 3), (2, 1024, 3), (1000, 750, 3), (96, 200, 1)]


def test_preprocess_image_graph_equals_numpy_path():
    # Dynamic shapes, as in the serving signature (grappler sees no constant sizes).
    fn = tf.function(lambda im: export.preprocess_image_graph(im, 512, 512),
                     input_signature=[tf.TensorSpec([None, None, None], tf.uint8)])
    rng = np.random.default_rng(0)
    for shape in IMAGE_SIZES:
        image = rng.integers(0, 256, shape).astype(np.uint8)
        want = predict.preprocess_image(image, 512, 512) - vgg_net.channel_mean
        got = fn(image).numpy()
        assert got.dtype == np.float32 and got.shape == (512, 512, 3)
        np.testing.assert_array_equal(got, want, err_msg=f"image shape {shape}")


def test_resize_2016_graph_is_bit_exact_at_static_shapes():
    # Static shapes let grappler fold the weights; the result must not change.
    rng = np.random.default_rng(1)
    image = rng.uniform(0, 1, (37, 64, 3))
    from text_objseg_tf2.util import im_processing

    for out in [(280, 512), (16, 700), (37, 64)]:
        got = tf.function(lambda x, out=out: export.resize_2016_graph(x, *out))(image).numpy()
        np.testing.assert_array_equal(got, im_processing.resize_2016(image, out))


def test_masks_from_scores_graph_equals_numpy_path():
    fn = tf.function(lambda s, h, w: export.masks_from_scores_graph(s, h, w, 1e-9),
                     input_signature=[tf.TensorSpec([None, 512, 512], tf.float32),
                                      tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32)])
    rng = np.random.default_rng(2)
    noise = rng.standard_normal((2, 512, 512, 1)).astype(np.float32)
    scores = tf.nn.avg_pool2d(noise, 41, 1, "SAME").numpy()[..., 0]
    scores[1] = np.where(np.arange(512)[None, :] < 200, 1e-9, -1e-9)  # ties at the threshold
    for h, w in [(1, 1), (5, 700), (700, 5), (333, 517), (37, 64), (480, 360), (96, 200)]:
        got = fn(scores, h, w).numpy()
        assert got.dtype == np.uint8 and got.shape == (2, h, w)
        want = np.stack([predict.scores_to_mask(s, (h, w)) for s in scores])
        np.testing.assert_array_equal(got, want.astype(np.uint8), err_msg=f"size {h}x{w}")


def test_decode_image_graph_reads_files_as_load_image(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(3)
    for mode, shape, fmt in [("RGB", (9, 7, 3), "JPEG"), ("L", (9, 7), "JPEG"),
                             ("RGBA", (5, 7, 4), "PNG"), ("LA", (5, 7, 2), "PNG"),
                             ("L", (5, 7), "PNG"), ("RGB", (5, 7, 3), "BMP")]:
        path = tmp_path / f"im_{mode}.{fmt.lower()}"
        Image.fromarray(rng.integers(0, 256, shape).astype(np.uint8), mode=mode).save(
            path, format=fmt)
        want = io.load_image(path)
        got = export.decode_image_graph(tf.constant(path.read_bytes())).numpy()
        if want.ndim == 2:
            want = want[:, :, np.newaxis]
        np.testing.assert_array_equal(got, want, err_msg=f"{mode} {fmt}")


def test_resolve_jit_compile():
    assert export.resolve_jit_compile("auto") is True
    assert export.resolve_jit_compile("false") is False
    assert export.resolve_jit_compile(False) is False
    with pytest.raises(ValueError, match="jit_compile"):
        export.resolve_jit_compile("maybe")


def _load_script():
    spec = importlib.util.spec_from_file_location("export_saved_model_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_export_script_missing_files_are_one_line_errors(tmp_path):
    script = _load_script()
    fv = flags.FlagValues()
    script.define_flags(fv)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("<pad>\n<unk>\nsky\n")
    fv(["prog", f"--pretrained_model={tmp_path / 'missing.tfmodel'}", f"--vocab_file={vocab}",
        f"--export_dir={tmp_path / 'sm'}"])
    with pytest.raises(SystemExit, match="error: .*missing.tfmodel"):
        script.main(["prog"], fv)
    fv.vocab_file = str(tmp_path / "no_vocab.txt")
    with pytest.raises(SystemExit, match="error: .*no_vocab.txt"):
        script.main(["prog"], fv)
    assert not (tmp_path / "sm").exists()


# ---------------------------------------------------------------------------------------------
# One export, served in a fresh process
# ---------------------------------------------------------------------------------------------


def _random_net(num_vocab):
    """Random weights with a small text part; bilinear upsampling so masks are blobs."""
    sizes = dict(num_vocab=num_vocab, **SIZES)
    params = ref.random_params("seg_highres", **sizes, seed=3)
    params["classifier/upsample32s/weights"] = processing_tools.generate_bilinear_filter(
        32).astype(np.float32)
    return checkpoints.new_net(params, sizes)


def _calibrate_bias(net, vocab, images, queries):
    """Sets mlp_l2's bias so that ~40% of the cells score >= 0 (non-trivial masks).

    Measured on 128x128 inputs (cheap; VGG is fully convolutional)."""
    encoder = net.image_encoder_model(128, 128)
    head = net.seg_head_model(4, 4, upsample=False)
    text = net.text_encoder_model(T)
    ids = np.array([text_processing.preprocess_sentence(q, vocab, T) for q in queries],
                   np.int32).T
    feat_lang = text(ids)
    scores = []
    for image in images:
        im = predict.preprocess_image(image, 128, 128) - vgg_net.channel_mean
        feat_vis = encoder(im[np.newaxis])
        scores.append(head([feat_lang, tf.repeat(feat_vis, len(queries), axis=0)]).numpy())
    bias = net.mlp_l2.bias
    bias.assign(bias.numpy() - np.quantile(np.concatenate(scores).ravel(), 0.6))


def _optional_fixture(request, name):
    """A conftest fixture's value, or None where it would skip (data not available)."""
    try:
        return request.getfixturevalue(name)
    except pytest.skip.Exception:
        return None


def _npy(path, array):
    np.save(path, array)
    return {"npy": str(path)}


@pytest.fixture(scope="module")
def served(tmp_path_factory, request):
    tmp = tmp_path_factory.mktemp("export")
    data = make_synthetic_referit(tmp / "data", num_train_images=2, num_test_images=3, seed=7,
                                  progress=False)
    vocab = text_processing.load_vocab_dict_from_file(data["vocab_file"])
    test_queries = io.load_json(data["test_query_file"])
    imnames = sorted({c.split("_")[0] for c in test_queries})
    cases = []  # (image name, uint8 image as loaded, queries)
    for k, imname in enumerate(imnames):
        image = io.load_image(os.path.join(data["image_dir"], imname + ".jpg"))
        queries = [qs[0] for c, qs in test_queries.items() if c.split("_")[0] == imname]
        cases.append((imname, image, queries[:2] if k == 0 else queries[:1]))
    assert any(image.ndim == 2 for _, image, _ in cases), "expected a greyscale test image"
    demo = None
    demo_path = _optional_fixture(request, "demo_image_path")
    if demo_path is not None:
        demo = ("demo", io.load_image(demo_path), ["the red circle on the left",
                                                   "bottom right shape"])
        cases.append(demo)

    net = _random_net(len(vocab))
    _calibrate_bias(net, vocab, [c[1] for c in cases[:2]], [q for c in cases for q in c[2]])
    weights = tmp / "seg_highres.weights.h5"
    checkpoints.save_weights(net, "seg_highres", weights)
    export_dir = tmp / "saved_model" / "1"
    script = _load_script()
    fv = flags.FlagValues()
    script.define_flags(fv)
    fv(["prog", f"--pretrained_model={weights}", f"--vocab_file={data['vocab_file']}",
        f"--export_dir={export_dir}", f"--input_H={INPUT}", f"--input_W={INPUT}"])
    script.main(["prog"], fv)
    assert (export_dir / "saved_model.pb").exists()
    os.remove(weights)

    # The numpy path: predict() per query, as the release's test loop.
    expected = {}
    for name, image, queries in cases:
        expected[name] = [predict.predict(net, vocab, image, q, input_H=INPUT, input_W=INPUT)
                          for q in queries]

    jobs, models = [], {"full": str(export_dir)}
    for name, image, queries in cases:
        image3 = image[:, :, np.newaxis] if image.ndim == 2 else image
        jobs.append({"name": f"serve_{name}", "model": "full", "signature": "serving_default",
                     "inputs": {"image": _npy(tmp / f"{name}.npy", image3),
                                "query": {"strings": queries}}})
    if demo is not None:
        jobs.append({"name": "serve_bytes_demo", "model": "full",
                     "signature": "serving_image_bytes",
                     "inputs": {"image_bytes": {"bytes_file": str(demo_path)},
                                "query": {"strings": demo[2]}}})
    # scores_from_preprocessed on the numpy path's inputs of two cases (N=2).
    pre_text = np.array([text_processing.preprocess_sentence(c[2][0], vocab, T)
                         for c in cases[:2]], np.int32).T
    pre_images = np.stack([predict.preprocess_image(c[1], INPUT, INPUT) - vgg_net.channel_mean
                           for c in cases[:2]])
    pre_expected = [expected[c[0]][0][0] for c in cases[:2]]
    jobs.append({"name": "preprocessed", "model": "full", "signature": "scores_from_preprocessed",
                 "inputs": {"text_seq_batch": _npy(tmp / "pre_text.npy", pre_text),
                            "imcrop_batch": _npy(tmp / "pre_images.npy", pre_images)}})
    jobs.append({"name": "tok_edge", "model": "full", "signature": "tokenize",
                 "inputs": {"query": {"strings": EDGE_QUERIES}}})

    small = _npy(tmp / "small.npy", np.zeros((4, 6, 3), np.uint8))
    bad = {
        "no_query": ({"image": small, "query": {"strings": []}}, "at least one string"),
        "bad_utf8": ({"image": small, "query": {"strings_hex": ["6f6b", "6f6bff"]}},
                     "not valid UTF-8"),
        "rgba": ({"image": _npy(tmp / "rgba.npy", np.zeros((4, 6, 4), np.uint8)),
                  "query": {"strings": ["sky"]}}, "1 (grey) or 3 (RGB) channels"),
        "two_channels": ({"image": _npy(tmp / "la.npy", np.zeros((4, 6, 2), np.uint8)),
                          "query": {"strings": ["sky"]}}, "1 (grey) or 3 (RGB) channels"),
        "zero_size": ({"image": _npy(tmp / "empty.npy", np.zeros((0, 6, 3), np.uint8)),
                       "query": {"strings": ["sky"]}}, "image is empty"),
        "elongated": ({"image": _npy(tmp / "thin.npy", np.zeros((1, 2000, 3), np.uint8)),
                       "query": {"strings": ["sky"]}}, "too elongated"),
        "float_image": ({"image": dict(small, cast="float32"), "query": {"strings": ["sky"]}},
                        "uint8"),
    }
    for key, (query, message) in BAD_QUERIES.items():
        bad[key] = ({"image": small, "query": {"strings": ["sky", query]}}, message)
    for key, (inputs, _) in bad.items():
        jobs.append({"name": f"bad_{key}", "model": "full", "signature": "serving_default",
                     "inputs": inputs})
    bad_pre = {
        "pre_mismatched_n": ({"text_seq_batch": _npy(tmp / "t1.npy", pre_text[:, :1]),
                              "imcrop_batch": _npy(tmp / "i2.npy", pre_images)}, "same N"),
        "pre_id_range": ({"text_seq_batch": _npy(tmp / "tbig.npy", pre_text[:, :1] + 10**6),
                          "imcrop_batch": _npy(tmp / "i1.npy", pre_images[:1])}, "must lie in"),
    }
    for key, (inputs, _) in bad_pre.items():
        jobs.append({"name": f"bad_{key}", "model": "full",
                     "signature": "scores_from_preprocessed", "inputs": inputs})
    jobs.append({"name": "bad_not_an_image", "model": "full", "signature": "serving_image_bytes",
                 "inputs": {"image_bytes": {"strings": ["not an image"], "scalar": True},
                            "query": {"strings": ["sky"]}}})
    messages = {f"bad_{k}": m for k, (_, m) in {**bad, **bad_pre}.items()}
    messages["bad_not_an_image"] = "image"

    referit = None
    referit_dir = _optional_fixture(request, "referit_data_dir")
    if referit_dir is not None:
        rvocab = text_processing.load_vocab_dict_from_file(
            referit_dir / "vocabulary_referit.txt")
        all_queries = [q for qs in io.load_json(referit_dir / "referit_query_all.json").values()
                       for q in qs]
        export.save_module(export.TokenizerModule(rvocab, T), tmp / "tokenizer")
        models["tokenizer"] = str(tmp / "tokenizer")
        with open(tmp / "all_queries.json", "w", encoding="utf-8") as f:
            json.dump(all_queries, f)
        jobs.append({"name": "tok_edge_referit", "model": "tokenizer", "signature": "tokenize",
                     "inputs": {"query": {"strings": EDGE_QUERIES}}})
        jobs.append({"name": "tok_referit", "model": "tokenizer", "signature": "tokenize",
                     "inputs": {"query": {"strings_file": str(tmp / "all_queries.json")}},
                     "batch": 20000})
        want = np.array([text_processing.preprocess_sentence(q, rvocab, T)
                         for q in all_queries], np.int32).T
        referit = (all_queries, want, rvocab)

    jobs_file = tmp / "jobs.json"
    with open(jobs_file, "w", encoding="utf-8") as f:
        json.dump({"models": models, "jobs": jobs}, f)
    out_dir = tmp / "out"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([sys.executable, str(HELPER), str(jobs_file), str(out_dir)],
                         cwd=tmp, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    with open(out_dir / "results.json", encoding="utf-8") as f:
        results = json.load(f)

    def outputs(name):
        record = results[name]
        assert record["ok"], f"{name} failed: {record.get('error_type')}: {record.get('error')}"
        with np.load(out_dir / f"{name}.npz") as z:
            return dict(z)

    return types.SimpleNamespace(
        cases=cases, expected=expected, vocab=vocab, results=results, outputs=outputs,
        messages=messages, referit=referit, demo=demo, pre_expected=pre_expected, net=net)


def test_served_model_needs_only_tensorflow(served):
    modules = served.results["_modules"]
    for blocked in ("text_objseg_tf2", "skimage", "scipy", "PIL"):
        assert not any(m.split(".")[0] == blocked for m in modules), modules


def test_graph_tokenisation_equals_numpy_on_referit_queries(served):
    if served.referit is None:
        pytest.skip("../shared/referit-data is not available")
    queries, want, _ = served.referit
    got = served.outputs("tok_referit")["text_seq_batch"]
    assert got.shape == want.shape == (T, len(queries))
    bad = np.nonzero((got != want).any(axis=0))[0]
    assert len(bad) == 0, [(queries[i], got[:, i].tolist(), want[:, i].tolist())
                           for i in bad[:5]]


def test_graph_tokenisation_edge_cases(served):
    checks = [("tok_edge", served.vocab)]
    if served.referit is not None:
        checks.append(("tok_edge_referit", served.referit[2]))
    for job, vocab in checks:
        got = served.outputs(job)["text_seq_batch"]
        assert got.dtype == np.int32 and got.shape == (T, len(EDGE_QUERIES))
        for i, query in enumerate(EDGE_QUERIES):
            want = text_processing.preprocess_sentence(query, vocab, T)
            assert got[:, i].tolist() == want, (job, query)


def test_numpy_path_refuses_what_the_graph_refuses():
    vocab = {"<pad>": 0, "<unk>": 1}
    for query, _ in BAD_QUERIES.values():
        with pytest.raises(ValueError):
            text_processing.preprocess_sentence(query, vocab, T)


def test_bad_input_is_a_clear_invalid_argument_error(served):
    for name, message in served.messages.items():
        record = served.results[name]
        assert not record["ok"], f"{name} should have failed"
        assert record["error_type"] == "InvalidArgumentError", (name, record)
        assert message in record["error"], (name, record["error"][-500:])


def test_masks_agree_with_numpy_path(served):
    for name, image, queries in served.cases:
        out = served.outputs(f"serve_{name}")
        mask, scores = out["mask"], out["scores"]
        assert mask.dtype == np.uint8 and mask.shape == (len(queries),) + image.shape[:2]
        assert set(np.unique(mask)) <= {0, 1}
        assert scores.dtype == np.float32 and scores.shape == (len(queries), INPUT, INPUT)
        for k, (want_scores, want_mask) in enumerate(served.expected[name]):
            assert 0.02 < want_mask.mean() < 0.98, f"trivial mask for {name}: the test is weak"
            iou = _iou(mask[k], want_mask)
            assert iou >= 0.99, (name, queries[k], iou)
            scale = np.abs(want_scores).max()
            np.testing.assert_allclose(scores[k], want_scores, rtol=1e-4, atol=1e-4 * scale)


def test_image_bytes_signature_equals_uint8_signature(served):
    if served.demo is None:
        pytest.skip("../shared/demo/38100.jpg is not available")
    # The JPEG decoder in the graph gives skimage.io.imread's pixels, so the outputs are equal.
    from_bytes = served.outputs("serve_bytes_demo")
    from_uint8 = served.outputs("serve_demo")
    np.testing.assert_array_equal(from_bytes["mask"], from_uint8["mask"])
    np.testing.assert_array_equal(from_bytes["scores"], from_uint8["scores"])


def test_preprocessed_signature_equals_keras_model(served):
    got = served.outputs("preprocessed")["scores"]
    assert got.shape == (2, INPUT, INPUT, 1) and got.dtype == np.float32
    for n, want in enumerate(served.pre_expected):
        scale = np.abs(want).max()
        np.testing.assert_allclose(got[n, :, :, 0], want, rtol=1e-5, atol=1e-5 * scale)


def test_module_refuses_vocabulary_larger_than_embedding(served):
    vocab = dict(served.vocab)
    vocab["extra"] = served.net.num_vocab
    with pytest.raises(ValueError, match="embedding"):
        export.SegmenterModule(served.net, vocab)


def test_save_module_replaces_only_a_saved_model(tmp_path):
    module = export.TokenizerModule({"<pad>": 0, "<unk>": 1, "sky": 2}, T=3)
    other = tmp_path / "not_a_model"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a SavedModel"):
        export.save_module(module, other)
    assert (other / "notes.txt").read_text() == "keep me"
    target = tmp_path / "model" / "1"
    export.save_module(module, target)
    export.save_module(module, target)  # replaces the SavedModel
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "not_a_model"]
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["1"]
    ids = tf.saved_model.load(str(target)).signatures["tokenize"](
        query=tf.constant(["The sky.", "x"]))["text_seq_batch"].numpy()
    # "The sky." -> the (unknown), sky; the final "." dropped; left-padded to T=3.
    np.testing.assert_array_equal(ids, [[0, 0], [1, 0], [2, 1]])
