"""ReferIt evaluation of the segmentation and detection models (ports the original's
exp-referit/exp_test_referit_seg.py and exp_test_referit_det.py).

Segmentation: per query, the high-res model's scores are thresholded at `score_thresh`,
mapped back to the image with `resize_and_crop` and compared with the ground-truth mask;
reported are precision@0.5..0.9 (fraction of queries with IoU >= t) and the overall IoU
(sum of intersections / sum of unions). Detection: the region model scores each image's EdgeBox
proposals; recall@1/10/100 is the fraction of queries with a proposal of box IoU >= 0.5 among
the top 1/10/100 (after optional NMS).

Two ways to run the network, same maths, same predictions:

* per query (`batch_queries=False`), the original's loop: for segmentation every query runs
  VGG and the head (classifier + upsampling) on its own; for detection the crops' VGG features
  are computed once per image (as the original) and every query runs the region classifier.
* batched (default): VGG once per image (`image_encoder_model` / `crop_encoder_model`,
  XLA-compiled with `jit_compile`), then the image's queries through the head,
  `query_batch_size` at a time.

In both, the text encoder runs once per image on all of the image's queries (one batch). Both
paths call the same compiled functions on the same inputs, and with `query_batch_size=1`
(default) with the same shapes, so every score, mask and figure is bit-identical. A larger
`query_batch_size` sends several queries through one head call (faster on a GPU), but TF's
matmul/conv kernels then sum in another order (~1e-7 relative on scores), which flips the rare
pixel whose score lies that close to the threshold (the benchmark's random-weight model:
overall IoU differs in the 6th decimal). For the same reason the sentence vector of a query
encoded alone (the original) and within its image's batch differ by ~1e-8; sharing one batch
per image is what makes the two paths agree exactly.

Annotations are flattened as the original (a query counts when its region is listed for its
image in referit_imcrop.json), in a deterministic order: images by first appearance in the
query file (the original walked a Python set), each image's regions in referit_imcrop.json
order, each region's expressions in order. The metrics do not depend on the order.

Image loading and the per-query post-processing (resize_and_crop, IoU, panels) run on a small
thread pool (scipy/numpy release the GIL) while TensorFlow works on the next image.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import json
import math
import os
import textwrap
import time
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import skimage
import tensorflow as tf
from absl import logging
from tqdm import tqdm

from text_objseg_tf2.models import processing_tools, vgg_net
from text_objseg_tf2.util import eval_tools, im_processing, text_processing
from text_objseg_tf2.util import io as util_io

SEG_IOU_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)  # the original's eval_seg_iou_list
DET_RECALL_AT = (1, 10, 100)  # the original's eval_bbox_num_list
DET_CROP_SIZE = 224
TEXT_BATCH = 64  # queries per text-encoder call (ReferIt has at most 45 per image)
SEG_CSV_FIELDS = ("index", "image", "imcrop", "query", "I", "U", "IoU")
DET_CSV_FIELDS = ("index", "image", "imcrop", "query", "num_proposals", "top1_box", "top1_IoU",
                  *(f"hit@{k}" for k in DET_RECALL_AT))
# Bad input a run may skip with skip_bad_samples (io and im_processing raise these).
_BAD_SAMPLE_ERRORS = (FileNotFoundError, ValueError)


# ---------------------------------------------------------------------------------------------
# Annotations
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Query:
    """One referring expression to evaluate; `index` is its position in evaluation order."""
    index: int
    imname: str
    imcrop_name: str
    gt_bbox: tuple
    description: str


def load_annotations(query_file, bbox_file, imcrop_file, imsize_file):
    """The four annotation dicts of the original: query, bbox, imcrop, imsize."""
    return (util_io.load_json(query_file), util_io.load_json(bbox_file),
            util_io.load_json(imcrop_file), util_io.load_json(imsize_file))


def flatten_queries(query_dict, bbox_dict, imcrop_dict):
    """`[(imname, [Query, ...]), ...]`: the original's flat_query_dict, in a fixed order.

    Images in order of first appearance in `query_dict`; per image its regions in
    `imcrop_dict` order, skipping regions without expressions; per region its expressions.
    As in the original, an expression whose region is not listed for its image in
    `imcrop_dict` is not evaluated (counted in a warning). Images without queries are left out.
    """
    imlist = list(dict.fromkeys(name.split("_", 1)[0] + ".jpg" for name in query_dict))
    flat, index, listed = [], 0, set()
    for imname in imlist:
        if imname not in imcrop_dict:
            raise ValueError(f"image {imname} of the query file is missing from the imcrop file")
        queries = []
        for imcrop_name in imcrop_dict[imname]:
            if imcrop_name not in query_dict:
                continue
            listed.add(imcrop_name)
            if imcrop_name not in bbox_dict:
                raise ValueError(f"region {imcrop_name} is missing from the bbox file")
            descriptions = query_dict[imcrop_name]
            if isinstance(descriptions, str) or not isinstance(descriptions, list):
                raise ValueError(f"query file: region {imcrop_name} must map to a list of "
                                 f"expressions, got {type(descriptions).__name__}")
            gt_bbox = tuple(int(v) for v in bbox_dict[imcrop_name])
            for description in descriptions:
                queries.append(Query(index, imname, imcrop_name, gt_bbox, description))
                index += 1
        if queries:
            flat.append((imname, queries))
    unlisted = sum(len(v) for k, v in query_dict.items() if k not in listed)
    if unlisted:
        logging.warning("%d expression(s) of the query file belong to regions not listed in the "
                        "imcrop file for their image; not evaluated (as the original)", unlisted)
    return flat


# ---------------------------------------------------------------------------------------------
# Metrics (pure functions of the per-query numbers)
# ---------------------------------------------------------------------------------------------

def query_iou(intersection, union):
    """I / U as the original's `I/U`: nan when both masks are empty (then never correct)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(intersection) / np.float64(union))


def seg_metrics(intersections, unions, iou_thresholds=SEG_IOU_THRESHOLDS):
    """{"precision@t": fraction of queries with I/U >= t, "overall IoU": sum I / sum U,
    ...}: keys are the labels the original printed."""
    inter = np.asarray(intersections, dtype=np.int64)
    union = np.asarray(unions, dtype=np.int64)
    total = len(inter)
    if total == 0:
        raise ValueError("no query was evaluated")
    with np.errstate(divide="ignore", invalid="ignore"):
        ious = inter.astype(np.float64) / union
    out = {f"precision@{t}": float(np.sum(ious >= t) / total) for t in iou_thresholds}
    cum_i, cum_u = int(inter.sum()), int(union.sum())
    out["overall IoU"] = cum_i / cum_u if cum_u else math.nan
    out.update(cum_I=cum_i, cum_U=cum_u, num_queries=total)
    return out


def rank_proposals(scores, proposals, use_nms=False, nms_thresh=0.3):
    """Proposal indices best first: all by decreasing score, or those NMS keeps.

    The original's NMS branch referred to an undefined name (`proposal`) and crashed; the
    proposals it meant are used here.
    """
    scores = np.asarray(scores).reshape(-1)
    if use_nms:
        return np.asarray(eval_tools.nms(np.asarray(proposals).astype(np.float32), scores,
                                         nms_thresh), dtype=np.int64)
    return np.argsort(scores)[::-1]


def det_hits(proposal_ious, top_ids, recall_at=DET_RECALL_AT, correct_iou_thresh=0.5):
    """Per k: whether a proposal among `top_ids[:k]` has IoU >= `correct_iou_thresh`."""
    proposal_ious = np.asarray(proposal_ious)
    return [bool(np.any(proposal_ious[top_ids[:k]] >= correct_iou_thresh)) for k in recall_at]


def det_metrics(hits, recall_at=DET_RECALL_AT):
    """{"recall@k": fraction of queries hit within the top k, "num_queries": n}."""
    hits = np.asarray(hits, dtype=bool).reshape(-1, len(recall_at))
    if len(hits) == 0:
        raise ValueError("no query was evaluated")
    out = {f"recall@{k}": float(np.sum(hits[:, n]) / len(hits)) for n, k in enumerate(recall_at)}
    out["num_queries"] = len(hits)
    return out


def format_seg_results(results, iou_thresholds=SEG_IOU_THRESHOLDS):
    """The original's result lines: `precision@0.5 = %f` ... `overall IoU = %f`."""
    lines = [f"precision@{t} = {results[f'precision@{t}']:f}" for t in iou_thresholds]
    lines.append(f"overall IoU = {results['overall IoU']:f}")
    return "\n".join(lines) + "\n"


def format_det_results(results, recall_at=DET_RECALL_AT):
    """The original's result lines: `recall@1 = %f` ..."""
    return "\n".join(f"recall@{k} = {results[f'recall@{k}']:f}" for k in recall_at) + "\n"


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------

def preprocess_seg_image(im, input_H, input_W):
    """The original seg test's network input: resize_and_pad, img_as_ubyte, grey tiled to 3
    channels, minus the VGG channel mean -> float32 [1, input_H, input_W, 3]."""
    processed = skimage.img_as_ubyte(im_processing.resize_and_pad(im, input_H, input_W))
    if processed.ndim == 2:
        processed = np.tile(processed[:, :, np.newaxis], (1, 1, 3))
    return (processed.astype(np.float32) - vgg_net.channel_mean)[np.newaxis]


def load_proposals(path):
    """EdgeBox proposals as the original read them: `loadtxt(...).astype(int).reshape(-1, 4)`."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"proposal file not found: {path}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # numpy warns on an empty file
        try:
            boxes = np.loadtxt(path, ndmin=1)
        except ValueError as e:
            raise ValueError(f"corrupt proposal file {path}: {e}") from None
    if boxes.size % 4:
        raise ValueError(f"proposal file {path} does not hold boxes of 4 numbers")
    return boxes.astype(int).reshape((-1, 4))


def _tokenize(flat, vocab_dict, T, skip_bad_samples, skipped):
    """{query index: T word ids}; empty expressions are errors or skipped samples."""
    ids = {}
    for _, queries in flat:
        for q in queries:
            try:
                ids[q.index] = text_processing.preprocess_sentence(q.description, vocab_dict, T)
            except ValueError as e:
                if not skip_bad_samples:
                    raise ValueError(f"region {q.imcrop_name}: {e}") from None
                skipped.append(_skip_record(q.imname, q, e))
    return ids


def _encode_texts(network, queries, ids):
    """{query index: sentence vector}: one text-encoder call per TEXT_BATCH of the image's
    queries (the batch depends on the annotations only, so every run gets the same vectors)."""
    vectors = {}
    for group in _chunks(queries, TEXT_BATCH):
        text = np.array([ids[q.index] for q in group], dtype=np.int32).T
        for q, v in zip(group, network.encode_text(text).numpy(), strict=True):
            vectors[q.index] = v
    return vectors


def _check_word_ids(ids, num_vocab):
    # An id past the embedding would be an error on CPU but a silent zero vector on GPU.
    if ids and max(max(v) for v in ids.values()) >= num_vocab:
        raise ValueError(f"the vocabulary file has more words than the model's embedding "
                         f"({num_vocab} rows): wrong --vocab_file for these weights?")


def _missing_files(paths, skip_bad_samples):
    """Checks existence up front, so a missing file stops the run before hours of work."""
    missing = [p for p in dict.fromkeys(paths) if not os.path.isfile(p)]
    if missing and not skip_bad_samples:
        more = f" (and {len(missing) - 1} more missing files)" if len(missing) > 1 else ""
        raise FileNotFoundError(f"file not found: {missing[0]}{more}; use skip_bad_samples / "
                                "--skip_bad_samples to leave those samples out")
    return set(missing)


def _skip_record(imname, query, error):
    return {"image": imname, "imcrop": query.imcrop_name if query else None,
            "query": query.description if query else None,
            "index": query.index if query else None, "reason": str(error)}


def _check_imsize(imname, im, imsize_dict, used_for):
    size = imsize_dict.get(imname)
    if size is not None and (int(size[0]), int(size[1])) != (im.shape[1], im.shape[0]):
        logging.warning("image %s is %dx%d (width x height) but the imsize file says %dx%d%s",
                        imname, im.shape[1], im.shape[0], int(size[0]), int(size[1]), used_for)


# ---------------------------------------------------------------------------------------------
# Network functions shared by both paths
# ---------------------------------------------------------------------------------------------

# Compiled functions per net, reused by later evaluations of the same net (no re-tracing or
# XLA re-compilation when a pipeline evaluates several times).
_NETWORKS = weakref.WeakKeyDictionary()


def _network(cls, net, *args):
    per_net = _NETWORKS.setdefault(net, {})
    key = (cls.__name__,) + tuple(args)
    if key not in per_net:
        per_net[key] = cls(net, *args)
    return per_net[key]


class _SegNetwork:
    """Compiled pieces of the high-res model; both paths call these same functions."""

    def __init__(self, net, input_H, input_W, T, jit_compile):
        image_encoder = net.image_encoder_model(input_H, input_W)
        text_encoder = net.text_encoder_model(T)
        head = net.seg_head_model(input_H // 32, input_W // 32, upsample=True)
        self.encode_image = tf.function(
            lambda image: image_encoder(image), jit_compile=bool(jit_compile),
            input_signature=[tf.TensorSpec([1, input_H, input_W, 3], tf.float32)])
        self.encode_text = tf.function(
            lambda ids: text_encoder(ids),
            input_signature=[tf.TensorSpec([T, None], tf.int32)])

        def scores(lang, vis):
            vis = tf.repeat(vis, tf.shape(lang)[0], axis=0)
            return head([lang, vis])[..., 0]

        self.scores = tf.function(scores, input_signature=[
            tf.TensorSpec([None, net.lstm_dim], tf.float32),
            tf.TensorSpec([1, input_H // 32, input_W // 32, 1000], tf.float32)])


class _DetNetwork:
    """Compiled crop encoder, text encoder and region head; both paths call these."""

    def __init__(self, net, T, N, jit_compile):
        crop_encoder = net.crop_encoder_model()
        text_encoder = net.text_encoder_model(T)
        head = net.region_head_model()
        # XLA compiles per shape: crops are padded to N (the original's fixed batch) then.
        self.pad_to = int(N) if jit_compile else None
        self._encode_crops = tf.function(
            lambda crops: crop_encoder(crops), jit_compile=bool(jit_compile),
            input_signature=[tf.TensorSpec(
                [self.pad_to, DET_CROP_SIZE, DET_CROP_SIZE, 3], tf.float32)])
        self.encode_text = tf.function(
            lambda ids: text_encoder(ids),
            input_signature=[tf.TensorSpec([T, None], tf.int32)])

        def scores(lang, fc8, spatial):
            # Row q*P + p: query q with proposal p.
            num_q, num_p = tf.shape(lang)[0], tf.shape(fc8)[0]
            out = head([tf.repeat(lang, num_p, axis=0), tf.tile(fc8, [num_q, 1]),
                        tf.tile(spatial, [num_q, 1])])
            return tf.reshape(out, [num_q, num_p])

        self.scores = tf.function(scores, input_signature=[
            tf.TensorSpec([None, net.lstm_dim], tf.float32),
            tf.TensorSpec([None, 1000], tf.float32), tf.TensorSpec([None, 8], tf.float32)])

    def encode_crops(self, crops):
        num = len(crops)
        if self.pad_to is None:
            return self._encode_crops(crops)
        padded = np.zeros((self.pad_to,) + crops.shape[1:], np.float32)
        padded[:num] = crops
        return self._encode_crops(padded)[:num]


def _load_net(model, kind, model_path=None, expected_sizes=None):
    """`(net, path)`: `model` itself, or the net loaded from a weights file (any format).

    `expected_sizes` ({size name: value or None}) are sizes the caller was given (the
    scripts' size flags); each that the weights contradict is logged.
    """
    if isinstance(model, (str, os.PathLike)):
        from text_objseg_tf2 import checkpoints

        net, _ = checkpoints.load_pretrained(model, kind)
        path = os.fspath(model)
    else:
        net, path = model, (os.fspath(model_path) if model_path is not None else None)
    actual = dict(D_text=net.lstm_dim, D_im=1000)
    warn_ignored_flags(**{name: (value, actual.get(name, getattr(net, name, value)))
                          for name, value in (expected_sizes or {}).items()})
    return net, path


def warn_ignored_flags(**given_and_actual):
    """Logs a warning for each `name=(given, actual)` where a size flag given on the command
    line differs from the size the weights have (the scripts keep the original's size
    parameters as flags but read the sizes from the weights). `given` None: not given."""
    for name, (given, actual) in given_and_actual.items():
        if given is not None and int(given) != int(actual):
            logging.warning("--%s=%s ignored: the weights give %s", name, given, actual)


# ---------------------------------------------------------------------------------------------
# The run loop (shared by seg and det)
# ---------------------------------------------------------------------------------------------

class _Run:
    """Thread pool, ordered result collection, progress bar, skip bookkeeping.

    `running(record)` folds one result into the running figure shown on the bar.
    """

    def __init__(self, num_queries, num_workers, progress, desc, running, skip_bad_samples,
                 skipped=()):
        workers = max(1, int(num_workers) if num_workers else min(4, os.cpu_count() or 1))
        self.pool = ThreadPoolExecutor(workers)
        self.window = workers + 1
        self.pending = collections.deque()  # (query, future) in query order
        self.records = []
        self.skipped = list(skipped)
        self.skip_bad_samples = bool(skip_bad_samples)
        self.bar = tqdm(total=num_queries, unit="query", desc=desc, disable=not progress,
                        dynamic_ncols=True)
        self.bar.update(len(self.skipped))
        self._running = running
        self.start = time.perf_counter()

    def prefetch(self, items, load):
        """Yields `(item, future of load(item))`, keeping `window` loads in flight."""
        it = iter(items)
        queue = collections.deque()
        for item in it:
            queue.append((item, self.pool.submit(load, item)))
            if len(queue) >= self.window:
                break
        while queue:
            item, future = queue.popleft()
            nxt = next(it, None)
            if nxt is not None:
                queue.append((nxt, self.pool.submit(load, nxt)))
            yield item, future

    def submit(self, query, fn, *args):
        self.pending.append((query, self.pool.submit(fn, *args)))
        self.drain(block_above=64)

    def skip(self, imname, queries, error):
        if not self.skip_bad_samples:
            raise error
        for q in queries or [None]:
            self.skipped.append(_skip_record(imname, q, error))
        self.bar.update(len(queries))

    def drain(self, block_above=0):
        """Collects finished post-processing results in query order."""
        while self.pending and (self.pending[0][1].done() or len(self.pending) > block_above):
            query, future = self.pending.popleft()
            try:
                record = future.result()
            except _BAD_SAMPLE_ERRORS as e:
                if not self.skip_bad_samples:
                    raise
                self.skipped.append(_skip_record(query.imname, query, e))
            else:
                self.records.append(record)
                self.bar.set_postfix_str(self._running(record), refresh=False)
            self.bar.update(1)

    def close(self):
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.bar.close()

    @property
    def seconds(self):
        return time.perf_counter() - self.start


def _write_outputs(results, per_query, fields, results_json, per_query_csv):
    if per_query_csv:
        os.makedirs(os.path.dirname(os.path.abspath(per_query_csv)), exist_ok=True)
        with util_io.atomic_write(per_query_csv, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(per_query)
    if results_json:
        os.makedirs(os.path.dirname(os.path.abspath(results_json)), exist_ok=True)
        clean = {k: v for k, v in results.items() if k != "per_query"}
        with util_io.atomic_write(results_json, "w", encoding="utf-8") as f:
            json.dump(_json_safe(clean), f, indent=2)
            f.write("\n")


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _chunks(items, size):
    size = max(1, int(size))
    return [items[i:i + size] for i in range(0, len(items), size)]


def _select_images(flat, max_images):
    if max_images is not None and int(max_images) >= 0:
        return flat[:int(max_images)]
    return flat


# ---------------------------------------------------------------------------------------------
# Segmentation
# ---------------------------------------------------------------------------------------------

def _prepare_queries(query_file, bbox_file, imcrop_file, imsize_file, vocab_file, T,
                     max_images, skip_bad_samples):
    """Annotations -> (imsize_dict, flat queries of the selected images, word ids, skipped)."""
    query_dict, bbox_dict, imcrop_dict, imsize_dict = load_annotations(
        query_file, bbox_file, imcrop_file, imsize_file)
    vocab_dict = text_processing.load_vocab_dict_from_file(vocab_file)
    flat = _select_images(flatten_queries(query_dict, bbox_dict, imcrop_dict), max_images)
    skipped = []
    ids = _tokenize(flat, vocab_dict, T, skip_bad_samples, skipped)
    return imsize_dict, flat, ids, skipped


def _seg_query_record(query, pred_raw, im, mask_path, visualize_path):
    """Post-processing of one query (worker thread): the original's metric steps."""
    labels = util_io.load_referit_gt_mask(mask_path)
    # The original resized the float 0/1 prediction back to the image and passed the float
    # result to logical_and/logical_or: every pixel with a value > 0 counts as predicted.
    predicts = im_processing.resize_and_crop(pred_raw.astype(np.float32), im.shape[0],
                                             im.shape[1])
    if labels.shape != predicts.shape:
        raise ValueError(f"mask {mask_path} is {labels.shape[1]}x{labels.shape[0]} but image "
                         f"{query.imname} is {im.shape[1]}x{im.shape[0]} (width x height)")
    inter, union = eval_tools.compute_mask_IU(predicts, labels)
    inter, union = int(inter), int(union)
    record = {"index": query.index, "image": query.imname, "imcrop": query.imcrop_name,
              "query": query.description, "I": inter, "U": union,
              "IoU": query_iou(inter, union)}
    if visualize_path:
        write_seg_panel(visualize_path, im, labels, predicts != 0, query.description,
                        record["IoU"])
    return record


class _SegRunning:
    """Running overall IoU for the progress bar."""

    def __init__(self):
        self.cum_i = self.cum_u = 0

    def __call__(self, record):
        self.cum_i += record["I"]
        self.cum_u += record["U"]
        return f"overall IoU={self.cum_i / self.cum_u:.4f}" if self.cum_u else ""


def evaluate_seg(model, *, image_dir, mask_dir, query_file, bbox_file, imcrop_file,
                 imsize_file, vocab_file, T=20, input_H=512, input_W=512, score_thresh=1e-9,
                 batch_queries=True, query_batch_size=1, jit_compile=True, max_images=None,
                 visualize_dir=None, visualize_num=10, skip_bad_samples=False,
                 results_json=None, per_query_csv=None, num_workers=None, progress=True,
                 prediction_callback=None, model_path=None, expected_sizes=None):
    """Segmentation evaluation of the high-res model on ReferIt-layout data.

    Args:
      model: a `TextObjSegNet` holding the weights, or a weights path (release TF1 checkpoint
        or this project's file; a low-res or det file gets the bilinear upsampling filter).
      image_dir, mask_dir, query_file, bbox_file, imcrop_file, imsize_file, vocab_file: the
        original's data paths (folders joined with file names, trailing '/' optional).
      T, input_H, input_W, score_thresh: the original's parameters.
      batch_queries: VGG once per image (False: the original's per-query loop).
      query_batch_size: queries per head call in the batched path; 1 keeps every
        prediction bit-identical to the per-query path, more is faster on GPU but may flip
        near-threshold pixels (rounding, see the module docstring).
      jit_compile: XLA-compile the image encoder (both paths).
      max_images: evaluate only the first `max_images` images (None: all).
      visualize_dir, visualize_num: PNG panels (image, ground truth, prediction, query) of the
        first `visualize_num` queries.
      skip_bad_samples: leave out queries whose image or mask is missing or unreadable (and
        empty expressions), listed under "skipped"; otherwise the first one is an error.
      results_json, per_query_csv: where to write the figures / per-query I, U, IoU (atomic).
      num_workers: threads for loading and post-processing (None: min(4, CPUs)).
      progress: show a tqdm bar with the running overall IoU.
      prediction_callback: called as `fn(query, scores)` for every evaluated query with the
        float32 `[input_H, input_W]` high-res scores (padded input frame), e.g. to save them.
      model_path: recorded as the results' `settings.pretrained_model` when `model` is a net.
      expected_sizes: {"num_vocab": v, ...} sizes given by the caller (None: not given); the
        weights decide, a contradicting one is logged.

    A weights path is loaded after the annotations and the files' existence are checked, so
    bad input fails fast.

    Returns:
      dict: "precision@0.5" .. "precision@0.9", "overall IoU", "cum_I", "cum_U",
      "num_queries", "num_images", "num_skipped", "skipped", "seconds",
      "queries_per_second", "settings", and "per_query" (list of CSV rows).
    """
    for name, v in (("input_H", input_H), ("input_W", input_W)):
        if int(v) <= 0 or int(v) % 32:
            raise ValueError(f"{name} must be a positive multiple of 32, got {v}")
    imsize_dict, flat, ids, skipped = _prepare_queries(
        query_file, bbox_file, imcrop_file, imsize_file, vocab_file, T, max_images,
        skip_bad_samples)
    image_paths = {imname: os.path.join(image_dir, imname) for imname, _ in flat}
    mask_paths = {q.index: os.path.join(mask_dir, q.imcrop_name + ".mat")
                  for _, queries in flat for q in queries}
    missing = _missing_files(list(image_paths.values()) + list(mask_paths.values()),
                             skip_bad_samples)
    net, weights_path = _load_net(model, "seg_highres", model_path, expected_sizes)
    _check_word_ids(ids, net.num_vocab)
    network = _network(_SegNetwork, net, int(input_H), int(input_W), int(T), bool(jit_compile))
    thresh = np.float32(score_thresh)  # NumPy compared float32 scores with it in float32
    if visualize_dir:
        os.makedirs(visualize_dir, exist_ok=True)

    def load(item):
        imname, _ = item
        if image_paths[imname] in missing:
            raise FileNotFoundError(f"image file not found: {image_paths[imname]}")
        im = util_io.load_image(image_paths[imname])
        _check_imsize(imname, im, imsize_dict, "; the real size is used, as the original")
        return im, preprocess_seg_image(im, int(input_H), int(input_W))

    num_queries = sum(len(qs) for _, qs in flat)
    run = _Run(num_queries, num_workers, progress, "seg eval", _SegRunning(),
               skip_bad_samples, skipped)
    try:
        for (imname, queries), future in run.prefetch(flat, load):
            queries = [q for q in queries if q.index in ids]
            try:
                im, image = future.result()
            except _BAD_SAMPLE_ERRORS as e:
                run.skip(imname, queries, e)
                continue
            lang = _encode_texts(network, queries, ids)
            good = []
            for q in queries:
                if mask_paths[q.index] in missing:
                    run.skip(imname, [q], FileNotFoundError(
                        f"mask file not found: {mask_paths[q.index]}"))
                else:
                    good.append(q)
            if not good:
                continue
            if batch_queries:
                vis = network.encode_image(image)
                groups = _chunks(good, query_batch_size)
            else:
                groups = [[q] for q in good]
            for group in groups:
                if not batch_queries:  # the original recomputed the image features per query
                    vis = network.encode_image(image)
                scores = network.scores(np.stack([lang[q.index] for q in group]), vis).numpy()
                for q, s in zip(group, scores, strict=True):
                    if prediction_callback is not None:
                        prediction_callback(q, s)
                    vis_path = (os.path.join(visualize_dir, f"{q.index:06d}_{q.imcrop_name}.png")
                                if visualize_dir and q.index < visualize_num else None)
                    run.submit(q, _seg_query_record, q, s >= thresh, im, mask_paths[q.index],
                               vis_path)
        run.drain()
    finally:
        run.close()

    per_query = sorted(run.records, key=lambda r: r["index"])
    results = {"task": "seg"}
    results.update(seg_metrics([r["I"] for r in per_query], [r["U"] for r in per_query]))
    results.update(_run_summary(run, per_query, weights_path, dict(
        T=int(T), input_H=int(input_H), input_W=int(input_W), score_thresh=float(score_thresh),
        batch_queries=bool(batch_queries), query_batch_size=int(query_batch_size),
        jit_compile=bool(jit_compile), max_images=max_images)))
    _write_outputs(results, per_query, SEG_CSV_FIELDS, results_json, per_query_csv)
    results["per_query"] = per_query
    return results


def _run_summary(run, per_query, weights_path, settings):
    seconds = run.seconds
    evaluated_images = len({r["image"] for r in per_query})
    skipped = sorted(run.skipped, key=lambda s: (s["index"] is None, s["index"] or 0))
    if skipped:
        logging.warning("skipped %d query(ies) with bad input (first: %s)", len(skipped),
                        skipped[0]["reason"])
    return {"num_images": evaluated_images, "num_skipped": len(skipped), "skipped": skipped,
            "seconds": seconds, "queries_per_second": len(per_query) / seconds if seconds else 0,
            "settings": {"pretrained_model": weights_path, **settings}}


# ---------------------------------------------------------------------------------------------
# Detection
# ---------------------------------------------------------------------------------------------

class _DetRunning:
    """Running recall@1 for the progress bar."""

    def __init__(self):
        self.hits = self.total = 0

    def __call__(self, record):
        self.hits += record["hit@1"]
        self.total += 1
        return f"recall@1={self.hits / self.total:.4f}"


def evaluate_det(model, *, image_dir, bbox_proposal_dir, query_file, bbox_file, imcrop_file,
                 imsize_file, vocab_file, T=20, N=100, correct_iou_thresh=0.5, use_nms=False,
                 nms_thresh=0.3, batch_queries=True, query_batch_size=1, jit_compile=True,
                 max_images=None, visualize_dir=None, visualize_num=10, skip_bad_samples=False,
                 results_json=None, per_query_csv=None, num_workers=None, progress=True,
                 prediction_callback=None, model_path=None, expected_sizes=None):
    """Detection (proposal ranking) evaluation of the region model on ReferIt-layout data.

    Args:
      model: a `TextObjSegNet` holding det weights, or a det weights path.
      bbox_proposal_dir: folder of `<image id>.txt` EdgeBox proposals (at most N per image).
      T, N, correct_iou_thresh, use_nms, nms_thresh: the original's parameters (N: the most
        proposals per image, the original's batch).
      prediction_callback: called as `fn(query, scores)` with the float32 score of each
        proposal (file order).
      model_path, expected_sizes: as `evaluate_seg`.
      Other arguments as `evaluate_seg` (panels show the ground-truth box in green and the
      top-ranked proposal in red).

    Returns:
      dict: "recall@1", "recall@10", "recall@100", "num_queries", "num_images",
      "num_skipped", "skipped", "seconds", "queries_per_second", "settings", "per_query".
    """
    imsize_dict, flat, ids, skipped = _prepare_queries(
        query_file, bbox_file, imcrop_file, imsize_file, vocab_file, T, max_images,
        skip_bad_samples)
    image_paths = {imname: os.path.join(image_dir, imname) for imname, _ in flat}
    proposal_paths = {imname: os.path.join(bbox_proposal_dir, imname[:-4] + ".txt")
                      for imname, _ in flat}
    missing = _missing_files(list(image_paths.values()) + list(proposal_paths.values()),
                             skip_bad_samples)
    net, weights_path = _load_net(model, "det", model_path, expected_sizes)
    _check_word_ids(ids, net.num_vocab)
    network = _network(_DetNetwork, net, int(T), int(N), bool(jit_compile))
    if visualize_dir:
        os.makedirs(visualize_dir, exist_ok=True)

    def load(item):
        imname, _ = item
        for path in (image_paths[imname], proposal_paths[imname]):
            if path in missing:
                raise FileNotFoundError(f"file not found: {path}")
        if imname not in imsize_dict:
            raise ValueError(f"image {imname} is missing from the imsize file {imsize_file}")
        proposals = load_proposals(proposal_paths[imname])
        if len(proposals) > int(N):
            raise ValueError(f"proposal file {proposal_paths[imname]} has {len(proposals)} "
                             f"boxes, more than N={N}")
        im = util_io.load_image(image_paths[imname])
        if im.ndim == 2:
            im = np.tile(im[:, :, np.newaxis], (1, 1, 3))
        _check_imsize(imname, im, imsize_dict,
                      "; the spatial features use the imsize file's size, as the original")
        try:
            crops = im_processing.crop_bboxes_subtract_mean(im, proposals, DET_CROP_SIZE,
                                                            vgg_net.channel_mean)
            # The original took the image size for the spatial features from the imsize file.
            spatial = processing_tools.spatial_feature_from_bbox(proposals, imsize_dict[imname])
        except ValueError as e:
            raise ValueError(f"proposals {proposal_paths[imname]} on image "
                             f"{image_paths[imname]}: {e}") from None
        return im, proposals, crops, spatial.astype(np.float32)

    num_queries = sum(len(qs) for _, qs in flat)
    run = _Run(num_queries, num_workers, progress, "det eval", _DetRunning(),
               skip_bad_samples, skipped)
    try:
        for (imname, queries), future in run.prefetch(flat, load):
            queries = [q for q in queries if q.index in ids]
            try:
                im, proposals, crops, spatial = future.result()
            except _BAD_SAMPLE_ERRORS as e:
                run.skip(imname, queries, e)
                continue
            if len(proposals) == 0:
                logging.warning("no proposals for image %s: its queries count as misses", imname)
                fc8 = np.zeros((0, 1000), np.float32)
            else:
                fc8 = network.encode_crops(crops)  # once per image in both paths, as the original
                lang = _encode_texts(network, queries, ids)
            groups = _chunks(queries, query_batch_size) if batch_queries else [[q] for q in queries]
            for group in groups:
                if len(proposals):
                    scores = network.scores(np.stack([lang[q.index] for q in group]), fc8,
                                            spatial).numpy()
                else:
                    scores = np.zeros((len(group), 0), np.float32)
                for q, s in zip(group, scores, strict=True):
                    if prediction_callback is not None:
                        prediction_callback(q, s)
                    vis_path = (os.path.join(visualize_dir, f"{q.index:06d}_{q.imcrop_name}.png")
                                if visualize_dir and q.index < visualize_num else None)
                    run.submit(q, _det_query_record, q, s, proposals, im, correct_iou_thresh,
                               use_nms, nms_thresh, vis_path)
        run.drain()
    finally:
        run.close()

    per_query = sorted(run.records, key=lambda r: r["index"])
    results = {"task": "det"}
    results.update(det_metrics([[r[f"hit@{k}"] for k in DET_RECALL_AT] for r in per_query]))
    results.update(_run_summary(run, per_query, weights_path, dict(
        T=int(T), N=int(N), correct_iou_thresh=float(correct_iou_thresh), use_nms=bool(use_nms),
        nms_thresh=float(nms_thresh), batch_queries=bool(batch_queries),
        query_batch_size=int(query_batch_size), jit_compile=bool(jit_compile),
        max_images=max_images)))
    _write_outputs(results, per_query, DET_CSV_FIELDS, results_json, per_query_csv)
    results["per_query"] = per_query
    return results


def _det_query_record(query, scores, proposals, im, correct_iou_thresh, use_nms, nms_thresh,
                      visualize_path):
    proposal_ious = (eval_tools.compute_bbox_iou(proposals, query.gt_bbox) if len(proposals)
                     else np.zeros(0))
    top_ids = rank_proposals(scores, proposals, use_nms, nms_thresh)
    hits = det_hits(proposal_ious, top_ids, DET_RECALL_AT, correct_iou_thresh)
    top1 = [int(v) for v in proposals[top_ids[0]]] if len(top_ids) else None
    record = {"index": query.index, "image": query.imname, "imcrop": query.imcrop_name,
              "query": query.description, "num_proposals": len(proposals),
              "top1_box": " ".join(map(str, top1)) if top1 else "",
              "top1_IoU": float(proposal_ious[top_ids[0]]) if len(top_ids) else math.nan}
    record.update({f"hit@{k}": int(h) for k, h in zip(DET_RECALL_AT, hits, strict=True)})
    if visualize_path:
        write_det_panel(visualize_path, im, query.gt_bbox, top1, query.description,
                        record["top1_IoU"])
    return record


# ---------------------------------------------------------------------------------------------
# Panels
# ---------------------------------------------------------------------------------------------

_PANEL_GAP = 4
_PANEL_MIN_WIDTH = 480  # small images are enlarged (nearest) so the caption fits


def _rgb(im):
    im = np.asarray(im)
    return np.tile(im[:, :, np.newaxis], (1, 1, 3)) if im.ndim == 2 else im[:, :, :3]


def _zoom_factor(width):
    return max(1, math.ceil(_PANEL_MIN_WIDTH / max(1, width)))


def _enlarge(a, factor):
    return np.repeat(np.repeat(a, factor, axis=0), factor, axis=1) if factor > 1 else a


def _overlay(im, mask, color):
    out = im.astype(np.float32) * 0.45
    out[mask] = im[mask].astype(np.float32) * 0.35 + np.asarray(color, np.float32) * 0.65
    return np.clip(out, 0, 255).astype(np.uint8)


def _with_caption(panel, lines):
    """`panel` with the text lines drawn below it (Pillow's default font)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    sample = "the quick brown fox jumps over a lazy dog, IoU = 0.5"
    char_w = max(1.0, 1.1 * probe.textlength(sample, font=font) / len(sample))
    wrap = max(10, int(panel.width / char_w))
    lines = [part for line in lines for part in (textwrap.wrap(line, wrap) or [""])]
    left, top, right, bottom = probe.textbbox((0, 0), "Ag", font=font)
    line_h = bottom - top + 4
    out = Image.new("RGB", (panel.width, panel.height + line_h * len(lines) + 6), (255, 255, 255))
    out.paste(panel, (0, 0))
    draw = ImageDraw.Draw(out)
    for n, line in enumerate(lines):
        draw.text((4, panel.height + 3 + n * line_h), line, fill=(0, 0, 0), font=font)
    return out


def _save_png(image, path):
    with util_io.atomic_write(path, "wb") as f:
        image.save(f, format="PNG")


def write_seg_panel(path, im, gt_mask, pred_mask, description, iou):
    """PNG: image | ground truth | prediction side by side, the query and IoU below."""
    from PIL import Image

    factor = _zoom_factor(3 * np.shape(im)[1])
    rgb = _enlarge(_rgb(im), factor)
    h, w = rgb.shape[:2]
    tiles = [rgb, _overlay(rgb, _enlarge(np.asarray(gt_mask, bool), factor), (40, 220, 40)),
             _overlay(rgb, _enlarge(np.asarray(pred_mask, bool), factor), (230, 40, 40))]
    canvas = np.full((h, 3 * w + 2 * _PANEL_GAP, 3), 255, np.uint8)
    for n, tile in enumerate(tiles):
        canvas[:, n * (w + _PANEL_GAP):n * (w + _PANEL_GAP) + w] = tile
    lines = [f'query: "{description}"',
             f"image | ground truth (green) | prediction (red); IoU = {iou:.4f}"]
    _save_png(_with_caption(Image.fromarray(canvas), lines), path)


def write_det_panel(path, im, gt_bbox, top1_box, description, iou):
    """PNG: the image with the ground-truth box (green) and the top proposal (red)."""
    from PIL import Image, ImageDraw

    factor = _zoom_factor(np.shape(im)[1])
    panel = Image.fromarray(_enlarge(_rgb(im).astype(np.uint8), factor))
    draw = ImageDraw.Draw(panel)

    def box(b):  # inclusive pixel box -> the enlarged pixels it covers
        return [b[0] * factor, b[1] * factor, (b[2] + 1) * factor - 1, (b[3] + 1) * factor - 1]

    draw.rectangle(box(gt_bbox), outline=(40, 220, 40), width=2)
    if top1_box is not None:
        draw.rectangle(box(top1_box), outline=(230, 40, 40), width=2)
    lines = [f'query: "{description}"',
             f"ground truth (green), top-1 proposal (red); IoU = {iou:.4f}"]
    _save_png(_with_caption(panel, lines), path)
