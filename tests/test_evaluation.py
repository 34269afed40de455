"""The evaluation library and the two test scripts against an independent re-expression of the
original's exp_test_referit_seg.py / exp_test_referit_det.py metric code.

A tiny synthetic ReferIt (3 test images of 40-72 px, a few proposals each) and one set of
random TF1-named weights (small text sizes; VGG is always full size) serve every test. The
re-expression below works from the release's formulas with scikit-image / numpy directly: the
2016 resize (order 1, constant mode, no anti-aliasing, clip to [0, 1]), np.logical_and/or sums,
precision thresholds, inclusive-box IoU, argsort ranking. Scores are checked against
tests/tf1_reference.py, then the metrics are recomputed exactly from the scores the run used.
"""

import csv
import json
import logging
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import scipy.io
import skimage
import skimage.transform
import tf1_reference as ref
from PIL import Image

from text_objseg_tf2 import checkpoints, evaluation
from text_objseg_tf2.synthetic_referit import make_synthetic_referit

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEAN = np.array([123.68, 116.779, 103.939], dtype=np.float32)
INPUT = 64  # network input size of the seg tests (2x2 feature map)
TEXT_SIZES = dict(embed_dim=12, lstm_dim=10, mlp_hidden_dims=6)


# ---------------------------------------------------------------------------------------------
# Independent re-expression of the original's preprocessing and metric code
# ---------------------------------------------------------------------------------------------

def resize_2016(im, shape):
    """skimage.transform.resize(im, shape) of 2016: float in [0, 1], bilinear, zero border,
    no anti-aliasing, clipped to [0, 1]."""
    im = np.asarray(im)
    if im.dtype == np.uint8:
        im = im / 255.0
    out_shape = tuple(shape) + im.shape[2:]
    out = skimage.transform.resize(im.astype(np.float64), out_shape, order=1, mode="constant",
                                   cval=0, anti_aliasing=False, clip=False, preserve_range=True)
    return np.clip(out, 0, 1)


def resize_and_pad(im, h, w):
    scale = min(h / im.shape[0], w / im.shape[1])
    rh, rw = int(np.round(im.shape[0] * scale)), int(np.round(im.shape[1] * scale))
    ph, pw = int(np.floor(h - rh) / 2), int(np.floor(w - rw) / 2)
    out = np.zeros((h, w) + im.shape[2:])
    out[ph:ph + rh, pw:pw + rw] = resize_2016(im, (rh, rw))
    return out


def resize_and_crop(im, h, w):
    scale = max(h / im.shape[0], w / im.shape[1])
    rh, rw = int(np.round(im.shape[0] * scale)), int(np.round(im.shape[1] * scale))
    ch, cw = int(np.floor(rh - h) / 2), int(np.floor(rw - w) / 2)
    return resize_2016(im, (rh, rw))[ch:ch + h, cw:cw + w]


def read_image(path):
    return np.asarray(Image.open(path))


def read_gt(path):
    return scipy.io.loadmat(path)["segimg_t"] == 0


def seg_net_input(im):
    processed = skimage.img_as_ubyte(resize_and_pad(im, INPUT, INPUT))
    if processed.ndim == 2:
        processed = np.tile(processed[:, :, None], (1, 1, 3))
    return processed.astype(np.float32)[None] - MEAN


def original_seg_query(scores, im_shape, gt):
    """The original's per-query lines: threshold, resize_and_crop, logical_and / _or sums."""
    pred_raw = (scores >= 1e-9).astype(np.float32)
    predicts = resize_and_crop(pred_raw, im_shape[0], im_shape[1])
    return int(np.sum(np.logical_and(predicts, gt))), int(np.sum(np.logical_or(predicts, gt)))


def original_seg_figures(I, U):
    figures = {}
    for t in (.5, .6, .7, .8, .9):
        correct = 0
        for i, u in zip(I, U, strict=True):
            correct += (i / u >= t)
        figures[f"precision@{t}"] = correct / len(I)
    figures["overall IoU"] = sum(I) / sum(U)
    return figures


def box_iou(boxes, target):
    boxes = np.asarray(boxes).reshape(-1, 4)
    x1 = np.maximum(boxes[:, 0], target[0])
    y1 = np.maximum(boxes[:, 1], target[1])
    x2 = np.minimum(boxes[:, 2], target[2])
    y2 = np.minimum(boxes[:, 3], target[3])
    inter = np.maximum(x2 - x1 + 1, 0) * np.maximum(y2 - y1 + 1, 0)
    area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    area_t = (target[2] - target[0] + 1) * (target[3] - target[1] + 1)
    return inter / (area + area_t - inter)


def original_det_hits(scores, proposals, gt_bbox):
    ious = box_iou(proposals, gt_bbox)
    top_ids = np.argsort(scores)[::-1]
    return [bool(np.any(ious[top_ids[:k]] >= 0.5)) for k in (1, 10, 100)]


def det_inputs(im, proposals, imsize):
    if im.ndim == 2:
        im = np.tile(im[:, :, None], (1, 1, 3))
    crops = np.zeros((len(proposals), 224, 224, 3), np.float32)
    for n, (x0, y0, x1, y1) in enumerate(proposals):
        crops[n] = skimage.img_as_ubyte(resize_2016(im[y0:y1 + 1, x0:x1 + 1], (224, 224)))
    crops -= MEAN
    w, h = imsize
    b = np.asarray(proposals, np.float64)
    spatial = np.stack([b[:, 0] * 2 / w - 1, b[:, 1] * 2 / h - 1, b[:, 2] * 2 / w - 1,
                        b[:, 3] * 2 / h - 1], axis=1)
    spatial = np.concatenate([spatial, (spatial[:, :2] + spatial[:, 2:]) / 2,
                              spatial[:, 2:] - spatial[:, :2]], axis=1)
    return crops, spatial


def ref_highres(params, text, image):
    """tf1_reference's high-res scores for k queries on one image, VGG computed once."""
    lang = ref._l2n(ref.lstm_last_hidden(params, text), 1)
    vis = ref.vgg_fc8_full_conv(params, image)[0]
    h, w, _ = vis.shape
    feat = np.concatenate([np.broadcast_to(lang[:, None, None], (len(lang), h, w, lang.shape[1])),
                           np.broadcast_to(ref._l2n(vis, 2), (len(lang), h, w, 1000)),
                           np.broadcast_to(ref._spatial(h, w), (len(lang), h, w, 8))], axis=3)
    low = ref._mlp(params, feat.reshape(-1, feat.shape[-1])).reshape(len(lang), h, w, 1)
    return ref.conv2d_transpose_same(low, params["classifier/upsample32s/weights"], 32)[..., 0]


def ref_region(params, text, crops, spatial):
    """tf1_reference's region scores [k, P] for k queries on one image's proposals."""
    lang = ref._l2n(ref.lstm_last_hidden(params, text), 1)
    vis = ref._l2n(ref.vgg_fc8(params, crops), 1)
    k, p = len(lang), len(vis)
    feat = np.concatenate([np.repeat(lang, p, 0), np.tile(vis, (k, 1)), np.tile(spatial, (k, 1))],
                          axis=1)
    return ref._mlp(params, feat).reshape(k, p)


def token_ids(sentence, vocab, T=20):
    """The original's preprocess_sentence for ASCII text."""
    words = [w.lower() for w in re.split(r"(\W+)", sentence.strip()) if w.strip()]
    if words and words[-1] == ".":
        words = words[:-1]
    ids = [vocab.get(w, vocab["<unk>"]) for w in words][:T]
    return [vocab["<pad>"]] * (T - len(ids)) + ids


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("mini-referit")
    summary = make_synthetic_referit(root, num_train_images=0, num_test_images=3, seed=1,
                                     image_size=(40, 72), num_proposals=3, progress=False)
    summary["vocab"] = {w: n for n, w in enumerate(
        (root / "vocabulary_referit.txt").read_text().split("\n")[:-1])}
    summary["queries"] = json.loads((root / "referit_query_test.json").read_text())
    summary["imcrop"] = json.loads((root / "referit_imcrop.json").read_text())
    summary["imsize"] = json.loads((root / "referit_imsize.json").read_text())
    return summary


def paths(data, task="seg", root=None):
    root = root or data["output_dir"]
    out = dict(image_dir=os.path.join(root, "images"),
               query_file=os.path.join(root, "referit_query_test.json"),
               bbox_file=os.path.join(root, "referit_bbox.json"),
               imcrop_file=os.path.join(root, "referit_imcrop.json"),
               imsize_file=os.path.join(root, "referit_imsize.json"),
               vocab_file=os.path.join(root, "vocabulary_referit.txt"))
    if task == "seg":
        out["mask_dir"] = os.path.join(root, "mask")
    else:
        out["bbox_proposal_dir"] = os.path.join(root, "referit_edgeboxes_top100")
    return out


def flat_order(data):
    """(imname, imcrop, description) in the documented evaluation order."""
    ims = list(dict.fromkeys(k.split("_", 1)[0] + ".jpg" for k in data["queries"]))
    return [(im, c, d) for im in ims for c in data["imcrop"][im] if c in data["queries"]
            for d in data["queries"][c]]


@pytest.fixture(scope="module")
def model(data):
    """One det-layout parameter dict (+ bilinear upsampling) and a net holding it. The last
    classifier bias is shifted so that about half of the seg scores are positive."""
    sizes = dict(num_vocab=len(data["vocab"]), **TEXT_SIZES)
    params = ref.random_params("det", **sizes, seed=3)
    f = np.concatenate((np.arange(32), np.arange(32, 0, -1))) / 32
    params["classifier/upsample32s/weights"] = np.outer(f, f).astype(np.float32)[:, :, None, None]
    order = flat_order(data)
    text = np.array([token_ids(d, data["vocab"]) for _, _, d in order[:4]]).T
    im = read_image(os.path.join(data["image_dir"], order[0][0]))
    scores = ref_highres(params, text, seg_net_input(im))
    params["classifier/mlp_l2/biases"] = (params["classifier/mlp_l2/biases"]
                                          - np.median(scores)).astype(np.float32)
    net = checkpoints.new_net({k: v for k, v in params.items()}, sizes)
    return params, net


def run_seg(data, net, **kwargs):
    scores = {}
    kwargs.setdefault("jit_compile", False)
    results = evaluation.evaluate_seg(net, **paths(data), input_H=INPUT, input_W=INPUT,
                                      progress=False,
                                      prediction_callback=lambda q, s: scores.__setitem__(
                                          q.index, np.array(s)), **kwargs)
    return results, scores


def run_det(data, net, **kwargs):
    scores = {}
    kwargs.setdefault("jit_compile", False)
    kwargs.setdefault("max_images", 1)
    results = evaluation.evaluate_det(net, **paths(data, "det"), N=8, progress=False,
                                      prediction_callback=lambda q, s: scores.__setitem__(
                                          q.index, np.array(s)), **kwargs)
    return results, scores


@pytest.fixture(scope="module")
def seg_fast(data, model, tmp_path_factory):
    out = tmp_path_factory.mktemp("seg-out")
    results, scores = run_seg(data, model[1], results_json=str(out / "r.json"),
                              per_query_csv=str(out / "q.csv"), visualize_dir=str(out / "vis"),
                              visualize_num=3)
    return results, scores, out


@pytest.fixture(scope="module")
def det_fast(data, model, tmp_path_factory):
    out = tmp_path_factory.mktemp("det-out")
    results, scores = run_det(data, model[1], results_json=str(out / "r.json"),
                              per_query_csv=str(out / "q.csv"), visualize_dir=str(out / "vis"),
                              visualize_num=2)
    return results, scores, out


# ---------------------------------------------------------------------------------------------
# Annotation flattening and metric functions
# ---------------------------------------------------------------------------------------------

def test_flatten_queries_order_and_rules(caplog):
    query = {"7_2": ["b", "c"], "5_1": ["x"], "7_1": ["a"], "7_9": ["not listed"]}
    bbox = {"7_1": [0, 0, 1, 1], "7_2": [1, 1, 2, 2], "5_1": [0, 0, 3, 3], "7_3": [0, 0, 0, 0]}
    imcrop = {"5.jpg": ["5_1"], "7.jpg": ["7_3", "7_1", "7_2"]}
    with caplog.at_level(logging.WARNING):
        flat = evaluation.flatten_queries(query, bbox, imcrop)
    assert [im for im, _ in flat] == ["7.jpg", "5.jpg"]  # first appearance in the query file
    got = [(q.index, q.imname, q.imcrop_name, q.gt_bbox, q.description) for _, qs in flat
           for q in qs]
    assert got == [(0, "7.jpg", "7_1", (0, 0, 1, 1), "a"), (1, "7.jpg", "7_2", (1, 1, 2, 2), "b"),
                   (2, "7.jpg", "7_2", (1, 1, 2, 2), "c"), (3, "5.jpg", "5_1", (0, 0, 3, 3), "x")]
    assert "1 expression(s)" in caplog.text  # 7_9 is not listed for 7.jpg: dropped, as before
    with pytest.raises(ValueError, match="image 5.jpg .* imcrop file"):
        evaluation.flatten_queries(query, bbox, {"7.jpg": []})
    with pytest.raises(ValueError, match="region 7_2 .* bbox file"):
        evaluation.flatten_queries(query, {"7_1": [0, 0, 1, 1]}, imcrop)


def test_seg_metrics_and_format():
    I, U = [50, 30, 0, 81, 9], [100, 50, 40, 90, 10]  # IoUs .5 .6 0 .9 .9
    got = evaluation.seg_metrics(I, U)
    want = original_seg_figures(I, U)
    assert {k: got[k] for k in want} == want
    assert got["precision@0.5"] == 0.8 and got["precision@0.9"] == 0.4
    assert (got["cum_I"], got["cum_U"], got["num_queries"]) == (170, 290, 5)
    assert evaluation.format_seg_results(got).splitlines() == [
        "precision@0.5 = 0.800000", "precision@0.6 = 0.600000", "precision@0.7 = 0.400000",
        "precision@0.8 = 0.400000", "precision@0.9 = 0.400000", "overall IoU = 0.586207"]
    # Both masks empty: I/U is nan, never correct (the original's 0/0).
    assert evaluation.seg_metrics([0, 5], [0, 5])["precision@0.9"] == 0.5
    with pytest.raises(ValueError, match="no query"):
        evaluation.seg_metrics([], [])


def test_det_recall_hand_computed():
    gt = (10, 10, 29, 29)  # 20 x 20
    proposals = np.array([[10, 10, 29, 29],    # IoU 1
                          [0, 0, 9, 9],        # 0
                          [10, 10, 29, 19],    # 0.5 exactly: correct (>=)
                          [12, 12, 31, 31],    # 324 / 476
                          [50, 50, 60, 60]])   # 0
    ious = np.array([1, 0, 0.5, 324 / 476, 0])
    np.testing.assert_allclose(box_iou(proposals, gt), ious)
    scores = np.array([0.1, 0.9, 0.3, 0.2, 0.8])  # ranking 1, 4, 2, 3, 0
    top = evaluation.rank_proposals(scores, proposals)
    assert list(top) == [1, 4, 2, 3, 0]
    assert evaluation.det_hits(ious, top) == [False, True, True]
    assert evaluation.det_hits(ious, top, (1, 2, 3)) == [False, False, True]
    # NMS at 0.3: 1 and 4 kept (no overlaps); 2 kept, suppressing 3 (IoU 144/456 = 0.32)
    # and 0 (IoU 0.5).
    top_nms = evaluation.rank_proposals(scores, proposals, use_nms=True, nms_thresh=0.3)
    assert list(top_nms) == [1, 4, 2]
    assert evaluation.det_hits(ious, top_nms, (1, 3, 100)) == [False, True, True]
    hits = [[False, True, True], [True, True, True], [False, False, True], [False, False, False]]
    got = evaluation.det_metrics(hits)
    assert got == {"recall@1": 0.25, "recall@10": 0.5, "recall@100": 0.75, "num_queries": 4}
    assert evaluation.format_det_results(got).splitlines() == [
        "recall@1 = 0.250000", "recall@10 = 0.500000", "recall@100 = 0.750000"]


def test_load_proposals_like_the_original(tmp_path):
    f = tmp_path / "1.txt"
    f.write_text("1 2 30 40\n3.7 4 5 6\n")
    got = evaluation.load_proposals(str(f))
    want = np.loadtxt(str(f)).astype(int).reshape((-1, 4))
    np.testing.assert_array_equal(got, want)
    f.write_text("1 2 30 40\n")
    assert evaluation.load_proposals(str(f)).shape == (1, 4)
    f.write_text("")
    assert evaluation.load_proposals(str(f)).shape == (0, 4)
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        evaluation.load_proposals(str(tmp_path / "nope.txt"))


# ---------------------------------------------------------------------------------------------
# Segmentation
# ---------------------------------------------------------------------------------------------

def test_seg_matches_the_original(data, model, seg_fast):
    params, _ = model
    results, scores, _ = seg_fast
    order = flat_order(data)
    assert [(r["image"], r["imcrop"], r["query"]) for r in results["per_query"]] == order
    assert sorted(scores) == list(range(len(order)))
    I, U = [], []
    for im_name in dict.fromkeys(o[0] for o in order):
        idx = [n for n, o in enumerate(order) if o[0] == im_name]
        im = read_image(os.path.join(data["image_dir"], im_name))
        # Scores: the re-expressed preprocessing through tf1_reference's graph.
        text = np.array([token_ids(order[n][2], data["vocab"]) for n in idx]).T
        want = ref_highres(params, text, seg_net_input(im))
        got = np.stack([scores[n] for n in idx])
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
        for n in idx:
            gt = read_gt(os.path.join(data["mask_dir"], order[n][1] + ".mat"))
            i, u = original_seg_query(scores[n], im.shape, gt)
            I.append(i)
            U.append(u)
    positive = np.mean([np.mean(s >= 1e-9) for s in scores.values()])
    assert 0.2 < positive < 0.8  # a real mix of predicted and background pixels
    assert [(r["I"], r["U"]) for r in results["per_query"]] == list(zip(I, U, strict=True))
    want = original_seg_figures(I, U)
    assert {k: results[k] for k in want} == want
    assert 0 < results["overall IoU"] < 1
    assert results["num_queries"] == len(order) and results["num_images"] == 3


def test_greyscale_image_is_evaluated(data, seg_fast):
    grey = [f for f in os.listdir(data["image_dir"])
            if Image.open(os.path.join(data["image_dir"], f)).mode == "L"]
    assert grey, "the synthetic test split should hold a greyscale image"
    assert any(r["image"] == grey[0] for r in seg_fast[0]["per_query"])


def test_seg_outputs(seg_fast):
    results, _, out = seg_fast
    saved = json.loads((out / "r.json").read_text())
    for key in ("precision@0.5", "precision@0.9", "overall IoU", "cum_I", "cum_U",
                "num_queries"):
        assert saved[key] == results[key]
    assert "per_query" not in saved and saved["settings"]["input_H"] == INPUT
    with open(out / "q.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(evaluation.SEG_CSV_FIELDS)
    assert len(rows) == results["num_queries"]
    for row, rec in zip(rows, results["per_query"], strict=True):
        assert (int(row["I"]), int(row["U"]), row["query"]) == (rec["I"], rec["U"], rec["query"])
        assert float(row["IoU"]) == rec["I"] / rec["U"]
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]  # atomic writes cleaned up


def test_visualize_dir_writes_k_panels(seg_fast):
    results, _, out = seg_fast
    files = sorted(os.listdir(out / "vis"))
    assert len(files) == 3
    assert files[0] == f"000000_{results['per_query'][0]['imcrop']}.png"
    for f in files:
        with Image.open(out / "vis" / f) as im:
            assert im.format == "PNG" and im.width >= 3 * 40


def assert_same_masks_up_to_rounding(got, want, thresh=1e-9):
    """Masks may differ only where the score is within rounding of the threshold."""
    scale = np.abs(want).max()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * scale)
    differ = (got >= thresh) != (want >= thresh)
    assert np.all(np.abs(want[differ] - thresh) <= 1e-5 * scale)


def test_seg_paths_agree(data, model, seg_fast):
    fast, fast_scores, _ = seg_fast  # batch_queries=True, query_batch_size=1 (defaults)
    slow, slow_scores = run_seg(data, model[1], batch_queries=False, max_images=1)
    n = slow["num_queries"]
    assert 1 < n < fast["num_queries"]
    for k in range(n):  # identical kernels on identical inputs: bit for bit
        np.testing.assert_array_equal(fast_scores[k], slow_scores[k])
    assert slow["per_query"] == fast["per_query"][:n]
    fast_first = evaluation.seg_metrics([r["I"] for r in fast["per_query"][:n]],
                                        [r["U"] for r in fast["per_query"][:n]])
    for key in ("precision@0.5", "precision@0.7", "overall IoU", "cum_I", "cum_U"):
        assert slow[key] == fast_first[key]
    # Several queries per call: the same up to rounding.
    batched, batched_scores = run_seg(data, model[1], query_batch_size=32, max_images=1)
    for k in range(n):
        assert_same_masks_up_to_rounding(batched_scores[k], slow_scores[k])
    assert batched["num_queries"] == n


def test_seg_jit_compile(data, model, seg_fast):
    jit, jit_scores = run_seg(data, model[1], jit_compile=True, max_images=1)
    _, scores, _ = seg_fast
    for k in jit_scores:
        np.testing.assert_allclose(jit_scores[k], scores[k], rtol=1e-4,
                                   atol=1e-4 * np.abs(scores[k]).max())
    assert jit["settings"]["jit_compile"] is True


def copy_data(data, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(data["output_dir"], root)
    return root


def test_missing_image_and_mask(data, model, tmp_path):
    root = copy_data(data, tmp_path)
    order = flat_order(data)
    first_im, second_crop = order[0][0], next(o[1] for o in order if o[0] != order[0][0])
    os.remove(root / "images" / first_im)
    os.remove(root / "mask" / (second_crop + ".mat"))
    kwargs = dict(**paths(data, root=str(root)), input_H=32, input_W=32, jit_compile=False,
                  progress=False, max_images=2)
    with pytest.raises(FileNotFoundError, match=first_im):
        evaluation.evaluate_seg(model[1], **kwargs)
    results = evaluation.evaluate_seg(model[1], skip_bad_samples=True, **kwargs)
    bad_image = [o for o in order if o[0] == first_im]
    bad_mask = [o for o in order if o[1] == second_crop]
    assert results["num_skipped"] == len(bad_image) + len(bad_mask)
    assert results["num_queries"] == (sum(o[0] in {order[0][0], bad_mask[0][0]} for o in order)
                                      - results["num_skipped"])
    reasons = {s["imcrop"]: s["reason"] for s in results["skipped"]}
    assert first_im in reasons[order[0][1]] and second_crop + ".mat" in reasons[second_crop]
    # Only the missing mask: the image's other queries are evaluated.
    shutil.copy(os.path.join(data["image_dir"], first_im), root / "images" / first_im)
    with pytest.raises(FileNotFoundError, match=second_crop + ".mat"):
        evaluation.evaluate_seg(model[1], **kwargs)


def test_corrupt_mask_is_named(data, model, tmp_path):
    root = copy_data(data, tmp_path)
    crop = flat_order(data)[0][1]
    (root / "mask" / (crop + ".mat")).write_bytes(b"not a mat file")
    kwargs = dict(**paths(data, root=str(root)), input_H=32, input_W=32, jit_compile=False,
                  progress=False, max_images=1)
    with pytest.raises(ValueError, match=crop + ".mat"):
        evaluation.evaluate_seg(model[1], **kwargs)
    results = evaluation.evaluate_seg(model[1], skip_bad_samples=True, **kwargs)
    assert results["num_skipped"] == len(data["queries"][crop])


def test_imsize_mismatch_warns(data, model, tmp_path, caplog):
    root = copy_data(data, tmp_path)
    first = flat_order(data)[0][0]
    sizes = dict(data["imsize"])
    sizes[first] = [sizes[first][0] + 1, sizes[first][1]]
    (root / "referit_imsize.json").write_text(json.dumps(sizes))
    with caplog.at_level(logging.WARNING):
        evaluation.evaluate_seg(model[1], **paths(data, root=str(root)), input_H=32,
                                input_W=32, jit_compile=False, progress=False, max_images=1)
    assert f"image {first} is" in caplog.text and "imsize file" in caplog.text


def test_empty_query_and_bad_vocabulary(data, model, tmp_path):
    root = copy_data(data, tmp_path)
    queries = dict(data["queries"])
    crop = flat_order(data)[0][1]
    queries[crop] = [" . "] + queries[crop][1:]
    (root / "referit_query_test.json").write_text(json.dumps(queries))
    kwargs = dict(**paths(data, root=str(root)), input_H=32, input_W=32, jit_compile=False,
                  progress=False, max_images=1)
    with pytest.raises(ValueError, match=f"region {crop}"):
        evaluation.evaluate_seg(model[1], **kwargs)
    results = evaluation.evaluate_seg(model[1], skip_bad_samples=True, **kwargs)
    assert results["num_skipped"] == 1 and results["skipped"][0]["query"] == " . "
    with open(root / "vocabulary_referit.txt", "a") as f:
        f.write("".join(f"extra{n}\n" for n in range(5)))
    queries[crop] = ["extra4"]
    (root / "referit_query_test.json").write_text(json.dumps(queries))
    with pytest.raises(ValueError, match="vocabulary file has more words"):
        evaluation.evaluate_seg(model[1], **kwargs)


# ---------------------------------------------------------------------------------------------
# Detection
# ---------------------------------------------------------------------------------------------

def test_det_matches_the_original(data, model, det_fast):
    params, _ = model
    results, scores, out = det_fast
    order = [o for o in flat_order(data) if o[0] in {r["image"] for r in results["per_query"]}]
    assert [(r["image"], r["imcrop"], r["query"]) for r in results["per_query"]] == order
    bboxes = json.loads(open(paths(data)["bbox_file"]).read())
    all_hits = []
    for im_name in dict.fromkeys(o[0] for o in order):
        idx = [n for n, o in enumerate(order) if o[0] == im_name]
        proposals = np.loadtxt(os.path.join(data["bbox_proposal_dir"], im_name[:-4] + ".txt")
                               ).astype(int).reshape((-1, 4))
        crops, spatial = det_inputs(read_image(os.path.join(data["image_dir"], im_name)),
                                    proposals, data["imsize"][im_name])
        text = np.array([token_ids(order[n][2], data["vocab"]) for n in idx]).T
        want = ref_region(params, text, crops, spatial)
        got = np.stack([scores[n] for n in idx])
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
        for n in idx:
            hits = original_det_hits(scores[n], proposals, bboxes[order[n][1]])
            all_hits.append(hits)
            rec = results["per_query"][n]
            assert [bool(rec[f"hit@{k}"]) for k in (1, 10, 100)] == hits
            top = proposals[np.argmax(scores[n])]
            assert rec["top1_box"] == " ".join(map(str, top))
    for n, k in enumerate((1, 10, 100)):
        assert results[f"recall@{k}"] == sum(h[n] for h in all_hits) / len(all_hits)
    saved = json.loads((out / "r.json").read_text())
    assert {k: saved[k] for k in ("recall@1", "recall@10", "recall@100")} == {
        k: results[k] for k in ("recall@1", "recall@10", "recall@100")}
    with open(out / "q.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(evaluation.DET_CSV_FIELDS) and len(rows) == len(order)
    assert [int(r["hit@1"]) for r in rows] == [int(h[0]) for h in all_hits]
    assert len(os.listdir(out / "vis")) == 2
    assert max(r["num_proposals"] for r in results["per_query"]) > 1


def test_det_paths_agree(data, model, det_fast):
    fast, fast_scores, _ = det_fast  # batch_queries=True, query_batch_size=1 (defaults)
    slow, slow_scores = run_det(data, model[1], batch_queries=False)
    batched, batched_scores = run_det(data, model[1], query_batch_size=32)
    n = slow["num_queries"]
    assert n == fast["num_queries"] == batched["num_queries"] > 1
    for k in range(n):
        np.testing.assert_array_equal(fast_scores[k], slow_scores[k])
        np.testing.assert_allclose(batched_scores[k], slow_scores[k], rtol=1e-5, atol=1e-6)
    assert slow["per_query"] == fast["per_query"]
    for key in ("recall@1", "recall@10", "recall@100"):
        assert slow[key] == fast[key]


def test_det_nms_and_missing_proposals(data, model, tmp_path):
    results, scores = run_det(data, model[1], use_nms=True, nms_thresh=0.3, max_images=1)
    proposals_dir = paths(data, "det")["bbox_proposal_dir"]
    for rec in results["per_query"]:
        proposals = evaluation.load_proposals(os.path.join(proposals_dir,
                                                           rec["image"][:-4] + ".txt"))
        keep = evaluation.rank_proposals(scores[rec["index"]], proposals, True, 0.3)
        assert rec["top1_box"] == " ".join(map(str, proposals[keep[0]]))
    root = copy_data(data, tmp_path)
    first = flat_order(data)[0][0]
    os.remove(root / "referit_edgeboxes_top100" / (first[:-4] + ".txt"))
    with pytest.raises(FileNotFoundError, match=first[:-4] + ".txt"):
        evaluation.evaluate_det(model[1], **paths(data, "det", root=str(root)), N=8,
                                jit_compile=False, progress=False, max_images=1)


# ---------------------------------------------------------------------------------------------
# The absl scripts
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tf1_checkpoint(model, tmp_path_factory):
    params = {k: v for k, v in model[0].items() if k != "classifier/upsample32s/weights"}
    return checkpoints.write_tf1_checkpoint(params, tmp_path_factory.mktemp("ckpt") / "det")


def start_script(name, args):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen([sys.executable, os.path.join(REPO_ROOT, "exp-referit", name), *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO_ROOT)


def data_flags(data, task):
    return [f"--{k}={v}" for k, v in paths(data, task).items()]


@pytest.fixture(scope="module")
def script_runs(data, tf1_checkpoint, tmp_path_factory):
    """The scripts on the tiny set, run side by side (most of their time is start-up)."""
    out = tmp_path_factory.mktemp("scripts")
    ckpt = f"--pretrained_model={tf1_checkpoint}"
    procs = {
        "seg": start_script("exp_test_referit_seg.py", [
            ckpt, *data_flags(data, "seg"), "--input_H=64", "--input_W=64", "--max_images=1",
            "--jit_compile=false", "--num_vocab=5", f"--results_json={out / 'seg.json'}",
            f"--per_query_csv={out / 'seg.csv'}"]),
        "det": start_script("exp_test_referit_det.py", [
            ckpt, *data_flags(data, "det"), "--N=8", "--max_images=1", "--jit_compile=false",
            "--use_nms", f"--results_json={out / 'det.json'}"]),
        "missing": start_script("exp_test_referit_seg.py", [
            ckpt, *data_flags(data, "seg"), f"--image_dir={out}", "--input_H=32",
            "--input_W=32"]),
    }
    runs = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        runs[name] = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    return runs, out


def test_seg_script(script_runs, tf1_checkpoint):
    runs, out = script_runs
    run = runs["seg"]
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    start = lines.index("Final results on the whole test set")
    saved = json.loads((out / "seg.json").read_text())
    assert lines[start + 1:start + 7] == [
        *(f"precision@{t} = {saved[f'precision@{t}']:f}" for t in (0.5, 0.6, 0.7, 0.8, 0.9)),
        f"overall IoU = {saved['overall IoU']:f}"]
    assert saved["settings"]["pretrained_model"] == str(tf1_checkpoint)
    assert "--num_vocab=5 ignored" in run.stderr
    with open(out / "seg.csv") as f:
        assert len(list(csv.DictReader(f))) == saved["num_queries"]


def test_script_names_missing_image(script_runs):
    runs, out = script_runs
    assert runs["missing"].returncode == 1
    assert f"error: file not found: {os.path.join(out, '')}" in runs["missing"].stderr


def test_det_script(script_runs):
    runs, out = script_runs
    run = runs["det"]
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    start = lines.index("Final results on the whole test set")
    saved = json.loads((out / "det.json").read_text())
    assert lines[start + 1:start + 4] == [
        f"recall@{k} = {saved[f'recall@{k}']:f}" for k in (1, 10, 100)]
    assert saved["settings"]["use_nms"] is True
