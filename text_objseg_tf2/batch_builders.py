"""Training batch files of the original exp-referit/build_training_batches_{seg,det}.py.

Sample collection follows the original's loops (in the sample order fixed by SPEC, where the
original walked Python 2 dicts/sets) and its `np.random.seed(3)` draws, so the files hold what
the original algorithm writes, value for value. Each batch is a pure function of its samples;
that lets several processes build batches, a rerun skip finished files (resume), and every file
be written atomically with deterministic bytes. Only the annotation index lives in memory;
images and masks are read per batch.

Bad samples (missing/corrupt image, mask or proposal file, empty expression): by default the
first one stops the build with an error naming the file and the query. With
`skip_bad_samples=True` a validation pass first reads every referenced file once; the samples
whose files fail are removed from the shuffled list (the original's random draws are taken
over the full list, as if every file were good), and the rest are batched in order. A det
image whose proposal file fails is left out before sampling (its samples cannot be known).
Boxes that give an empty crop or lie outside the image are annotation errors: always fatal.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import multiprocessing
import os
import re
import sys
import warnings
import zipfile
from typing import NamedTuple

import numpy as np
import skimage
import skimage.transform
from absl import logging
from tqdm import tqdm

from text_objseg_tf2.models import processing_tools
from text_objseg_tf2.util import eval_tools, im_processing, text_processing
from text_objseg_tf2.util import io as util_io

DET_CROP_SIZE = 224
MANIFEST_VERSION = 1
_ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)  # fixed member timestamps: byte-identical reruns


# ---------------------------------------------------------------------------------------------
# Batch layouts
# ---------------------------------------------------------------------------------------------

def seg_batch_spec(T, N, input_H, input_W):
    """{key: (shape, dtype)} of a segmentation batch file, as the original wrote it."""
    return {
        "text_seq_batch": ((T, N), np.dtype(np.int32)),
        "imcrop_batch": ((N, input_H, input_W, 3), np.dtype(np.uint8)),
        "label_coarse_batch": ((N, input_H // 32, input_W // 32, 1), np.dtype(bool)),
        "label_fine_batch": ((N, input_H, input_W, 1), np.dtype(bool)),
    }


def det_batch_spec(T, N):
    """{key: (shape, dtype)} of a detection batch file, as the original wrote it."""
    return {
        "text_seq_batch": ((T, N), np.dtype(np.int32)),
        "imcrop_batch": ((N, DET_CROP_SIZE, DET_CROP_SIZE, 3), np.dtype(np.uint8)),
        "spatial_batch": ((N, 8), np.dtype(np.float32)),
        "label_batch": ((N, 1), np.dtype(bool)),
    }


def batch_path(data_folder, data_prefix, n_batch):
    """`<data_folder>/<data_prefix>_<n>.npz`, the original's file name."""
    return os.path.join(data_folder, f"{data_prefix}_{n_batch}.npz")


# ---------------------------------------------------------------------------------------------
# Sample collection (pure; the original's order and random draws)
# ---------------------------------------------------------------------------------------------

class SegSample(NamedTuple):
    imname: str
    mask_name: str
    description: str
    imcrop_name: str


class DetSample(NamedTuple):
    imname: str
    imsize: tuple
    bbox: tuple
    description: str
    label: int
    imcrop_name: str


def image_name_of(imcrop_name):
    """`'38685_1'` -> `'38685.jpg'` (the original's `split('_', 1)[0] + '.jpg'`)."""
    return imcrop_name.split("_", 1)[0] + ".jpg"


def collect_seg_samples(query_dict):
    """Segmentation samples before shuffling: regions in the query file's order, then each
    region's expressions in order (the original walked `query_dict.keys()`)."""
    samples = []
    for imcrop_name, descriptions in query_dict.items():
        imname = image_name_of(imcrop_name)
        for description in descriptions:
            samples.append(SegSample(imname, imcrop_name + ".mat", description, imcrop_name))
    return samples


def shuffle_seg_samples(samples):
    """The original's `np.random.seed(3); np.random.permutation(len(samples))` order."""
    perm = np.random.RandomState(3).permutation(len(samples))
    return [samples[n] for n in perm]


@dataclasses.dataclass
class DetSampleTable:
    """Detection samples as columns (ReferIt has millions of negative candidates; a Python
    tuple each would not fit the memory bound). Row i is expression `expressions[expr_idx[i]]`
    = (imname, imcrop_name, description) with box `boxes[i]` and label `labels[i]`."""

    expressions: list
    imsizes: dict
    expr_idx: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray

    def __len__(self):
        return len(self.expr_idx)

    def take(self, idx):
        idx = np.asarray(idx, dtype=np.int64)
        return DetSampleTable(self.expressions, self.imsizes, self.expr_idx[idx],
                              self.boxes[idx], self.labels[idx])

    def concat(self, other):
        assert other.expressions is self.expressions
        return DetSampleTable(self.expressions, self.imsizes,
                              np.concatenate([self.expr_idx, other.expr_idx]),
                              np.concatenate([self.boxes, other.boxes]),
                              np.concatenate([self.labels, other.labels]))

    def __getitem__(self, i):
        imname, imcrop_name, description = self.expressions[self.expr_idx[i]]
        return DetSample(imname, self.imsizes[imname], tuple(int(v) for v in self.boxes[i]),
                         description, int(self.labels[i]), imcrop_name)


def _det_table(expressions, imsizes, chunks, label):
    expr_idx = [np.full(len(b), e, dtype=np.int64) for e, b in chunks]
    boxes = [b for _, b in chunks]
    n = sum(len(b) for b in boxes)
    return DetSampleTable(
        expressions, imsizes,
        np.concatenate(expr_idx) if expr_idx else np.zeros(0, np.int64),
        np.concatenate(boxes).astype(np.int64) if boxes else np.zeros((0, 4), np.int64),
        np.full(n, label, dtype=bool))


def collect_det_samples(query_dict, bbox_dict, imcrop_dict, imsize_dict, proposals_of,
                        pos_iou=0.7, neg_iou=1e-6):
    """Positive and negative detection samples before subsampling, in the original's order.

    Images in order of first appearance in `query_dict` (the original walked a Python 2 set,
    whose order was undefined), each image's regions in `imcrop_dict` order (regions without
    expressions skipped), each region's expressions in order; per expression the ground-truth
    box then the proposals with IoU >= pos_iou are positives, proposals with IoU < neg_iou
    negatives. `proposals_of(imname)` gives the [K, 4] int proposals, or None to leave the
    image out. Returns (positives, negatives), two DetSampleTable sharing one expression list.
    """
    imlist = list(dict.fromkeys(image_name_of(name) for name in query_dict))
    expressions, imsizes, pos_chunks, neg_chunks = [], {}, [], []
    for imname in imlist:
        if imname not in imcrop_dict:
            raise ValueError(f"image {imname} (from the query file) is missing in the imcrop file")
        if imname not in imsize_dict:
            raise ValueError(f"image {imname} (from the query file) is missing in the imsize file")
        proposals = proposals_of(imname)
        if proposals is None:
            continue
        imsizes[imname] = tuple(imsize_dict[imname])
        for imcrop_name in imcrop_dict[imname]:
            if imcrop_name not in query_dict:
                continue
            if imcrop_name not in bbox_dict:
                raise ValueError(f"region {imcrop_name} is missing in the bbox file")
            gt_bbox = _integer_boxes(bbox_dict[imcrop_name], f"bbox of region {imcrop_name}")
            if len(proposals):
                ious = eval_tools.compute_bbox_iou(proposals, gt_bbox)
            else:
                ious = np.zeros(0)
            pos_boxes = np.concatenate((gt_bbox, proposals[ious >= pos_iou, :]), axis=0)
            neg_boxes = proposals[ious < neg_iou, :]
            for description in query_dict[imcrop_name]:
                expressions.append((imname, imcrop_name, description))
                pos_chunks.append((len(expressions) - 1, pos_boxes))
                neg_chunks.append((len(expressions) - 1, neg_boxes))
    return (_det_table(expressions, imsizes, pos_chunks, True),
            _det_table(expressions, imsizes, neg_chunks, False))


def select_and_shuffle_det_samples(positives, negatives, neg_to_pos_ratio=1.0):
    """The original's negative subsampling and shuffle, draw for draw:
    `seed(3); choice(#neg, min(#neg, int(ratio * #pos)), replace=False)`, then
    positives + chosen negatives, then `seed(3); permutation(#total)`."""
    num_neg = min(len(negatives), int(neg_to_pos_ratio * len(positives)))
    sample_idx = np.random.RandomState(3).choice(len(negatives), num_neg, replace=False)
    merged = positives.concat(negatives.take(sample_idx))
    perm_idx = np.random.RandomState(3).permutation(len(merged))
    return merged.take(perm_idx)


def _integer_boxes(values, what):
    arr = np.array(values)
    if arr.size != 4 or not np.all(np.isfinite(arr.astype(np.float64))) or \
            np.any(arr.astype(np.float64) != np.round(arr.astype(np.float64))):
        raise ValueError(f"{what} must be 4 integers [xmin, ymin, xmax, ymax], got {values}")
    return arr.astype(np.int64).reshape((1, 4))


def load_proposal_boxes(path):
    """EdgeBox proposals of one image as [K, 4] int64, read like the original
    (`np.loadtxt(...).astype(int).reshape((-1, 4))`); an empty file gives no boxes."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"proposal file {path} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # loadtxt warns on an empty file
            boxes = np.loadtxt(path, ndmin=1)
        return boxes.astype(np.int64).reshape((-1, 4))
    except ValueError as e:
        raise ValueError(f"proposal file {path} is not a list of 4-number boxes: {e}") from None


# ---------------------------------------------------------------------------------------------
# Per-sample processing (pure)
# ---------------------------------------------------------------------------------------------

def process_seg_sample(im, mask, description, vocab_dict, T, input_H, input_W):
    """One segmentation sample as the original built it.

    Returns (text_seq int32 [T], image uint8 [H, W, 3], label_coarse bool [H/32, W/32, 1],
    label_fine bool [H, W, 1]).
    """
    processed_im = skimage.img_as_ubyte(im_processing.resize_and_pad(im, input_H, input_W))
    if processed_im.ndim == 2:
        processed_im = processed_im[:, :, np.newaxis]
    # The original stored this H x W x 1 grey image into an H x W x 3 batch slot, which numpy
    # broadcasts: grey is tiled to three channels.
    processed_im = np.broadcast_to(processed_im, (input_H, input_W, 3))
    processed_mask = im_processing.resize_and_pad(np.asarray(mask).astype(np.float32),
                                                  input_H, input_W)
    subsampled_mask = skimage.transform.downscale_local_mean(processed_mask, (32, 32))
    labels_fine = processed_mask > 0
    labels_coarse = subsampled_mask > 0
    text_seq = np.asarray(text_processing.preprocess_sentence(description, vocab_dict, T),
                          dtype=np.int32)
    return (text_seq, processed_im, labels_coarse[:, :, np.newaxis],
            labels_fine[:, :, np.newaxis])


def process_det_sample(im, bbox, imsize, description, vocab_dict, T):
    """One detection sample as the original built it (grey images tiled to 3 channels, where
    the original crashed).

    Returns (text_seq int32 [T], crop uint8 [224, 224, 3], spatial float32 [8]).
    """
    if im.ndim == 2:
        im = np.stack([im, im, im], axis=-1)
    xmin, ymin, xmax, ymax = (int(v) for v in bbox)
    imcrop = im[ymin:ymax + 1, xmin:xmax + 1, :]
    if imcrop.shape[0] == 0 or imcrop.shape[1] == 0:
        raise ValueError(f"box {list(bbox)} gives an empty crop of the {im.shape[1]}x"
                         f"{im.shape[0]} image")
    imcrop = skimage.img_as_ubyte(
        im_processing.resize_2016(imcrop, [DET_CROP_SIZE, DET_CROP_SIZE]))
    spatial_feat = processing_tools.spatial_feature_from_bbox(np.array(bbox), imsize)
    text_seq = np.asarray(text_processing.preprocess_sentence(description, vocab_dict, T),
                          dtype=np.int32)
    return text_seq, imcrop, spatial_feat.reshape(8).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Batches (one worker's job)
# ---------------------------------------------------------------------------------------------

def _where(sample):
    return f"query {sample.description!r} of region {sample.imcrop_name}"


def _read_or_explain(loader, path, what, sample):
    """Run loader(path); re-raise any failure as one line naming the file and the query."""
    try:
        return loader(path)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{what} {path} ({_where(sample)}): {e}") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{what} {path} ({_where(sample)}) is unreadable: {e}") from None


def build_seg_batch(samples, image_dir, mask_dir, vocab_dict, T, input_H, input_W):
    """The arrays of one segmentation batch file from its N samples."""
    spec = seg_batch_spec(T, len(samples), input_H, input_W)
    batch = {key: np.zeros(shape, dtype) for key, (shape, dtype) in spec.items()}
    images = {}  # samples of one batch may share an image: read it once
    for idx, sample in enumerate(samples):
        if sample.imname not in images:
            images[sample.imname] = _read_or_explain(
                util_io.load_image, os.path.join(image_dir, sample.imname), "image", sample)
        mask = _read_or_explain(util_io.load_referit_gt_mask,
                                os.path.join(mask_dir, sample.mask_name), "mask", sample)
        try:
            text_seq, im, coarse, fine = process_seg_sample(
                images[sample.imname], mask, sample.description, vocab_dict, T, input_H, input_W)
        except ValueError as e:
            raise ValueError(f"{_where(sample)}: {e}") from None
        batch["text_seq_batch"][:, idx] = text_seq
        batch["imcrop_batch"][idx] = im
        batch["label_coarse_batch"][idx] = coarse
        batch["label_fine_batch"][idx] = fine
    return batch


def build_det_batch(samples, image_dir, vocab_dict, T):
    """The arrays of one detection batch file from its N samples."""
    spec = det_batch_spec(T, len(samples))
    batch = {key: np.zeros(shape, dtype) for key, (shape, dtype) in spec.items()}
    images = {}
    for idx, sample in enumerate(samples):
        if sample.imname not in images:
            images[sample.imname] = _read_or_explain(
                util_io.load_image, os.path.join(image_dir, sample.imname), "image", sample)
        try:
            text_seq, imcrop, spatial = process_det_sample(
                images[sample.imname], sample.bbox, sample.imsize, sample.description,
                vocab_dict, T)
        except ValueError as e:
            raise ValueError(f"image {sample.imname}, {_where(sample)}: {e}") from None
        batch["text_seq_batch"][:, idx] = text_seq
        batch["imcrop_batch"][idx] = imcrop
        batch["spatial_batch"][idx] = spatial
        batch["label_batch"][idx] = sample.label
    return batch


# ---------------------------------------------------------------------------------------------
# Batch files: deterministic atomic writes, cheap completeness check
# ---------------------------------------------------------------------------------------------

def write_npz_atomic(path, arrays):
    """np.savez-compatible (uncompressed .npy members) file written to a temporary name and
    renamed into place; member timestamps are fixed so equal arrays give equal bytes."""
    tmp = f"{os.path.join(os.path.dirname(path), '.' + os.path.basename(path))}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zf:
            for key, value in arrays.items():
                info = zipfile.ZipInfo(key + ".npy", date_time=_ZIP_DATE_TIME)
                info.compress_type = zipfile.ZIP_STORED
                info.external_attr = 0o644 << 16
                with zf.open(info, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _stale_temp_pattern(data_prefix):
    return re.compile(r"^\." + re.escape(data_prefix) + r"_\d+\.npz\.\d+\.tmp$")


def batch_file_is_complete(path, spec):
    """True when `path` is a readable npz holding exactly `spec`'s keys with its shapes and
    dtypes and full-length data (reads only the zip directory and the .npy headers)."""
    try:
        with zipfile.ZipFile(path) as zf:
            if sorted(zf.namelist()) != sorted(key + ".npy" for key in spec):
                return False
            for key, (shape, dtype) in spec.items():
                info = zf.getinfo(key + ".npy")
                with zf.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        header = np.lib.format.read_array_header_1_0(f)
                    else:
                        header = np.lib.format.read_array_header_2_0(f)
                    got_shape, _, got_dtype = header
                    if tuple(got_shape) != tuple(shape) or got_dtype != dtype:
                        return False
                    if info.file_size != f.tell() + int(np.prod(shape)) * dtype.itemsize:
                        return False
        return True
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError):
        return False


# ---------------------------------------------------------------------------------------------
# Worker processes
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass
class _BatchJob:
    kind: str
    image_dir: str
    mask_dir: str
    vocab_dict: dict
    T: int
    input_H: int
    input_W: int
    data_folder: str
    data_prefix: str

    def build(self, samples):
        if self.kind == "seg":
            return build_seg_batch(samples, self.image_dir, self.mask_dir, self.vocab_dict,
                                   self.T, self.input_H, self.input_W)
        return build_det_batch(samples, self.image_dir, self.vocab_dict, self.T)

    def run(self, task):
        n_batch, samples = task
        write_npz_atomic(batch_path(self.data_folder, self.data_prefix, n_batch),
                         self.build(samples))
        return n_batch


_WORKER_JOB = None


def _init_worker(job):
    global _WORKER_JOB
    _WORKER_JOB = job


def _run_task(task):
    return _WORKER_JOB.run(task)


def _check_file(item):
    """(kind, path) -> None if the file reads, else the one-line reason."""
    what, path = item
    try:
        if what == "image":
            util_io.load_image(path)
        else:
            util_io.load_referit_gt_mask(path)
    except Exception as e:  # noqa: BLE001 - any failure makes the file bad
        return f"{what} {path}: {type(e).__name__}: {e}"
    return None


def _mp_context():
    # fork is cheap; after TensorFlow is imported (its threads hold locks) use spawn.
    if sys.platform.startswith("linux") and "tensorflow" not in sys.modules:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


class _Executor:
    """Runs tasks in this process (1 worker) or in a process pool, keeping at most a few tasks
    in flight so memory stays bounded; results come back in submission order."""

    def __init__(self, num_workers, initializer, initargs):
        self.pool = None
        self.num_workers = num_workers
        if num_workers > 1:
            self.pool = _mp_context().Pool(num_workers, initializer=initializer,
                                           initargs=initargs)
        else:
            initializer(*initargs)

    def map(self, fn, tasks, window=None):
        if self.pool is None:
            for task in tasks:
                yield fn(task)
            return
        window = window or 2 * self.num_workers
        pending = collections.deque()
        tasks = iter(tasks)
        for task in tasks:
            pending.append(self.pool.apply_async(fn, (task,)))
            if len(pending) >= window:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()

    def close(self):
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass
class BadFile:
    """A bad file (or expression) and the (region, expression) pairs it took out.

    `num_samples` counts the dropped samples; None when the whole image was left out before
    sampling (a det image without a readable proposal file).
    """

    reason: str
    queries: list
    num_samples: int | None = 0


class _BadLog:
    def __init__(self):
        self.entries = collections.OrderedDict()
        self._seen = set()

    def add(self, reason, region, description, num_samples=1):
        entry = self.entries.setdefault(reason, BadFile(reason, [], 0))
        if num_samples is None:
            entry.num_samples = None
        elif entry.num_samples is not None:
            entry.num_samples += num_samples
        if (reason, region, description) not in self._seen:
            self._seen.add((reason, region, description))
            entry.queries.append((region, description))


@dataclasses.dataclass
class BuildReport:
    """What build_batches did: counts, and the bad files/expressions it skipped."""

    kind: str
    num_samples: int
    num_batches: int
    num_built: int
    num_existing: int
    num_skipped_samples: int = 0
    bad_files: list = dataclasses.field(default_factory=list)
    complete: bool = True

    def summary_lines(self):
        """Human-readable report: counts, then each bad file with the queries it took out."""
        lines = [f"{self.kind}: {self.num_samples} samples -> {self.num_batches} batches "
                 f"({self.num_built} built, {self.num_existing} already complete"
                 f"{'' if self.complete else '; INCOMPLETE, run again to finish'})"]
        if self.bad_files:
            lines.append(f"skipped {self.num_skipped_samples} bad samples "
                         f"({len(self.bad_files)} bad files or expressions):")
            for bad in self.bad_files:
                queries = "; ".join(f"{r} {d!r}" for r, d in bad.queries[:5])
                more = f" (+{len(bad.queries) - 5} more)" if len(bad.queries) > 5 else ""
                taken = ("image left out before sampling" if bad.num_samples is None
                         else f"{bad.num_samples} samples")
                lines.append(f"  {bad.reason} -> {taken}: {queries}{more}")
        return lines


def _sha1_of_file(path):
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _load_json(path, what):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{what} {path} is not valid JSON: {e}") from None


def _sample_order_sha1(kind, samples):
    h = hashlib.sha1()
    if kind == "seg":
        for s in samples:
            h.update(json.dumps([s.imname, s.mask_name, s.description]).encode("utf-8"))
    else:
        h.update(json.dumps(samples.expressions).encode("utf-8"))
        h.update(json.dumps(sorted(samples.imsizes.items())).encode("utf-8"))
        for arr in (samples.expr_idx, samples.boxes, samples.labels):
            h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _check_manifest(path, manifest):
    """Refuse to resume over batches built with other parameters or data."""
    if not os.path.exists(path):
        return False
    try:
        with open(path, encoding="utf-8") as f:
            old = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"manifest {path} is unreadable ({e}); delete the folder's batches "
                         "and the manifest to rebuild") from None
    compared = ("version", "kind", "params", "inputs", "num_samples", "num_batches",
                "sample_order_sha1")
    diffs = [f"{k}: {old.get(k)!r} -> {manifest[k]!r}" for k in compared
             if old.get(k) != manifest[k]]
    if diffs:
        raise ValueError(
            f"{os.path.dirname(path) or '.'} already holds batches built with other parameters "
            f"or data ({'; '.join(diffs)}); use another --data_folder/--data_prefix or delete "
            f"the old batches and {path}")
    return True


@dataclasses.dataclass
class _Index:
    """The annotation index: samples in final order and their expression table."""

    samples: object  # list[SegSample] (seg) or DetSampleTable (det)
    expressions: list  # (imname, imcrop_name, description)
    expr_of_sample: np.ndarray  # int64 [num_samples] into expressions
    params: dict
    inputs: dict  # sha1 of each annotation file

    def keep_only(self, keep):
        if isinstance(self.samples, list):
            self.samples = [s for s, k in zip(self.samples, keep, strict=True) if k]
        else:
            self.samples = self.samples.take(np.flatnonzero(keep))

    def batch(self, n, N):
        if isinstance(self.samples, list):
            return self.samples[n * N:(n + 1) * N]
        return [self.samples[i] for i in range(n * N, (n + 1) * N)]


def _seg_index(query_file, vocab_file, T, N, input_H, input_W):
    samples = shuffle_seg_samples(collect_seg_samples(_load_json(query_file, "query file")))
    return _Index(samples, [(s.imname, s.imcrop_name, s.description) for s in samples],
                  np.arange(len(samples)),
                  {"T": T, "N": N, "input_H": input_H, "input_W": input_W},
                  {"query_file": _sha1_of_file(query_file),
                   "vocab_file": _sha1_of_file(vocab_file)})


def _det_index(query_file, vocab_file, bbox_file, imcrop_file, imsize_file, bbox_proposal_dir,
               T, N, pos_iou, neg_iou, neg_to_pos_ratio, skip_bad_samples, bad):
    query_dict = _load_json(query_file, "query file")
    bbox_dict = _load_json(bbox_file, "bbox file")
    imcrop_dict = _load_json(imcrop_file, "imcrop file")
    imsize_dict = _load_json(imsize_file, "imsize file")

    def proposals_of(imname):
        path = os.path.join(bbox_proposal_dir, imname[:-4] + ".txt")
        try:
            return load_proposal_boxes(path)
        except (OSError, ValueError) as e:
            if not skip_bad_samples:
                raise
            for region in imcrop_dict.get(imname, []):
                for description in query_dict.get(region, []):
                    bad.add(str(e), region, description, None)
            return None

    positives, negatives = collect_det_samples(
        query_dict, bbox_dict, imcrop_dict, imsize_dict, proposals_of, pos_iou, neg_iou)
    logging.info("#pos= %d, #neg= %d", len(positives), len(negatives))
    samples = select_and_shuffle_det_samples(positives, negatives, neg_to_pos_ratio)
    inputs = {name: _sha1_of_file(path) for name, path in (
        ("query_file", query_file), ("vocab_file", vocab_file), ("bbox_file", bbox_file),
        ("imcrop_file", imcrop_file), ("imsize_file", imsize_file))}
    return _Index(samples, samples.expressions, samples.expr_idx,
                  {"T": T, "N": N, "pos_iou": pos_iou, "neg_iou": neg_iou,
                   "neg_to_pos_ratio": neg_to_pos_ratio}, inputs)


def _empty_expressions(index, vocab_dict, T, query_file, skip_bad_samples, bad):
    """Keep mask over samples without the expressions that tokenise to nothing."""
    bad_expr = np.zeros(len(index.expressions), dtype=bool)
    for e, (_, imcrop_name, description) in enumerate(index.expressions):
        try:
            text_processing.preprocess_sentence(description, vocab_dict, T)
        except (ValueError, IndexError) as err:
            if not skip_bad_samples:
                raise ValueError(f"query {description!r} of region {imcrop_name} in "
                                 f"{query_file}: {err}") from None
            bad_expr[e] = True
    dropped = bad_expr[index.expr_of_sample]
    for i in np.flatnonzero(dropped):
        _, imcrop_name, description = index.expressions[index.expr_of_sample[i]]
        bad.add(f"empty expression {description!r}", imcrop_name, description)
    return ~dropped


def _prepare_folder(data_folder, data_prefix, manifest, spec):
    """Check/write the manifest, remove stale temp files; returns the batch ids to build."""
    os.makedirs(data_folder, exist_ok=True)
    manifest_path = os.path.join(data_folder, f"{data_prefix}_manifest.json")
    if not _check_manifest(manifest_path, manifest):
        if os.path.exists(batch_path(data_folder, data_prefix, 0)):
            raise ValueError(
                f"{data_folder} already holds {data_prefix}_*.npz batches without a manifest "
                f"({os.path.basename(manifest_path)}); they were not built by this builder, so "
                "they cannot be resumed: delete them or use another --data_folder/--data_prefix")
        util_io.save_json(manifest, manifest_path)
    stale = _stale_temp_pattern(data_prefix)
    for name in os.listdir(data_folder):
        if stale.match(name):
            os.remove(os.path.join(data_folder, name))
    todo = []
    for n in range(manifest["num_batches"]):
        path = batch_path(data_folder, data_prefix, n)
        if os.path.exists(path):
            if batch_file_is_complete(path, spec):
                continue
            logging.warning("rebuilding damaged batch file %s", path)
        todo.append(n)
    return todo


def build_batches(kind, *, image_dir, query_file, vocab_file, data_folder, data_prefix, T, N,
                  mask_dir=None, input_H=512, input_W=512, bbox_proposal_dir=None,
                  bbox_file=None, imcrop_file=None, imsize_file=None, pos_iou=0.7,
                  neg_iou=1e-6, neg_to_pos_ratio=1.0, num_workers=1, skip_bad_samples=False,
                  progress=True, max_new_batches=None, max_batches=None):
    """Write the training batch files of the original builder `kind` ('seg' or 'det').

    Arguments are the original scripts' parameters (seg: mask_dir, input_H, input_W; det:
    bbox_proposal_dir, bbox_file, imcrop_file, imsize_file, pos_iou, neg_iou,
    neg_to_pos_ratio). Existing complete batch files of the same build (checked against the
    manifest `<data_prefix>_manifest.json`) are kept; missing or damaged ones are (re)built.
    `max_new_batches` stops after building that many (chunked runs; tests of resume).
    `max_batches` builds only batches `0 .. max_batches - 1` (a random subset of the samples,
    since they are shuffled first; for short runs that read no more).
    Returns a BuildReport.
    """
    if kind not in ("seg", "det"):
        raise ValueError(f"kind must be 'seg' or 'det', got {kind!r}")
    if T <= 0 or N <= 0:
        raise ValueError(f"T and N must be positive, got T={T}, N={N}")
    if num_workers < 1:
        raise ValueError(f"num_workers must be >= 1, got {num_workers}")
    if kind == "seg":
        required = {"mask_dir": mask_dir}
        if input_H <= 0 or input_W <= 0 or input_H % 32 or input_W % 32:
            raise ValueError(f"input_H and input_W must be positive multiples of 32, got "
                             f"{input_H}x{input_W}")
    else:
        required = {"bbox_proposal_dir": bbox_proposal_dir, "bbox_file": bbox_file,
                    "imcrop_file": imcrop_file, "imsize_file": imsize_file}
    for name, value in required.items():
        if value is None:
            raise ValueError(f"{name} is required for {kind} batches")
    for name, value in (("image_dir", image_dir), ("mask_dir", mask_dir),
                        ("bbox_proposal_dir", bbox_proposal_dir)):
        if value is not None and not os.path.isdir(value):
            raise FileNotFoundError(f"{name} {value} is not a directory")
    vocab_dict = text_processing.load_vocab_dict_from_file(vocab_file)

    bad = _BadLog()
    if kind == "seg":
        index = _seg_index(query_file, vocab_file, T, N, input_H, input_W)
        spec = seg_batch_spec(T, N, input_H, input_W)
    else:
        index = _det_index(query_file, vocab_file, bbox_file, imcrop_file, imsize_file,
                           bbox_proposal_dir, T, N, pos_iou, neg_iou, neg_to_pos_ratio,
                           skip_bad_samples, bad)
        spec = det_batch_spec(T, N)
    keep = _empty_expressions(index, vocab_dict, T, query_file, skip_bad_samples, bad)

    job = _BatchJob(kind, image_dir, mask_dir, vocab_dict, T, input_H, input_W, data_folder,
                    data_prefix)
    with _Executor(num_workers, _init_worker, (job,)) as executor:
        if skip_bad_samples:
            keep &= _validate_files(index.expressions, index.expr_of_sample, image_dir,
                                    mask_dir if kind == "seg" else None, executor, bad,
                                    progress)
        num_skipped = int(np.sum(~keep))
        if num_skipped:
            index.keep_only(keep)
        num_samples = len(index.samples)
        num_batch = num_samples // N
        logging.info("total %s samples: %d, batches: %d", kind, num_samples, num_batch)
        if num_batch == 0:
            raise ValueError(f"only {num_samples} samples for batches of N={N}: no batch to "
                             "write")

        manifest = {"version": MANIFEST_VERSION, "kind": kind, "params": index.params,
                    "inputs": index.inputs, "num_samples": num_samples,
                    "num_batches": num_batch,
                    "sample_order_sha1": _sample_order_sha1(kind, index.samples),
                    "skip_bad_samples": bool(skip_bad_samples),
                    "paths": {"image_dir": image_dir, "mask_dir": mask_dir,
                              "bbox_proposal_dir": bbox_proposal_dir,
                              "query_file": query_file, "vocab_file": vocab_file}}
        todo = _prepare_folder(data_folder, data_prefix, manifest, spec)
        num_existing = num_batch - len(todo)
        if max_batches is not None:
            todo = [n for n in todo if n < max_batches]
        if max_new_batches is not None:
            todo = todo[:max_new_batches]

        num_built = 0
        with tqdm(total=len(todo) * N, unit="sample", desc=f"building {kind} batches",
                  disable=not progress, smoothing=0.1) as bar:
            tasks = ((n, index.batch(n, N)) for n in todo)
            for _ in executor.map(_run_task, tasks):
                num_built += 1
                bar.update(N)

    return BuildReport(kind=kind, num_samples=num_samples, num_batches=num_batch,
                       num_built=num_built, num_existing=num_existing,
                       num_skipped_samples=num_skipped, bad_files=list(bad.entries.values()),
                       complete=num_existing + num_built == num_batch)


def _validate_files(expressions, expr_of_sample, image_dir, mask_dir, executor, bad, progress):
    """Read every image (and, for seg, mask) the samples use, once, in the workers; returns
    the keep mask over samples and records the failures in `bad`."""
    image_paths = [os.path.join(image_dir, imname) for imname, _, _ in expressions]
    mask_paths = None
    if mask_dir is not None:
        mask_paths = [os.path.join(mask_dir, region + ".mat") for _, region, _ in expressions]
    items = [("image", path) for path in dict.fromkeys(image_paths)]
    if mask_paths is not None:
        items += [("mask", path) for path in dict.fromkeys(mask_paths)]
    reasons = {}
    checked = executor.map(_check_file, items, window=64)
    for item, reason in tqdm(zip(items, checked, strict=True), total=len(items), unit="file",
                             desc="checking files", disable=not progress):
        if reason is not None:
            reasons[item[1]] = reason
    expr_reason = [reasons.get(image_paths[e]) or (reasons.get(mask_paths[e]) if mask_paths
                                                   else None)
                   for e in range(len(expressions))]
    keep = np.array([r is None for r in expr_reason], dtype=bool)[expr_of_sample]
    for i in np.flatnonzero(~keep):
        e = expr_of_sample[i]
        _, imcrop_name, description = expressions[e]
        bad.add(expr_reason[e], imcrop_name, description)
    return keep
