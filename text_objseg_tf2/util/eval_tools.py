"""Box IoU, mask intersection/union and non-maximum suppression, as the original evaluation.

Boxes are [xmin, ymin, xmax, ymax], 0-indexed and inclusive of xmax and ymax (areas use +1).
"""

import numpy as np


def _as_boxes(boxes, name):
    boxes = np.asarray(boxes)
    if boxes.size % 4:
        raise ValueError(f"{name} must hold boxes of 4 numbers, got shape {boxes.shape}")
    return boxes.reshape((-1, 4))


def compute_bbox_iou(bboxes, target):
    """IoU of each box in `bboxes` with `target` (one box, or as many boxes, broadcast)."""
    bboxes = _as_boxes(bboxes, "bboxes")
    target = _as_boxes(target, "target")
    area_boxes = (bboxes[:, 2] - bboxes[:, 0] + 1) * (bboxes[:, 3] - bboxes[:, 1] + 1)
    area_target = (target[:, 2] - target[:, 0] + 1) * (target[:, 3] - target[:, 1] + 1)
    if np.any(area_boxes < 0) or np.any(area_target < 0):
        raise ValueError("boxes must have xmax >= xmin - 1 and ymax >= ymin - 1")
    inter_w = np.maximum(
        np.minimum(bboxes[:, 2], target[:, 2]) - np.maximum(bboxes[:, 0], target[:, 0]) + 1, 0)
    inter_h = np.maximum(
        np.minimum(bboxes[:, 3], target[:, 3]) - np.maximum(bboxes[:, 1], target[:, 1]) + 1, 0)
    inter = inter_w * inter_h
    with np.errstate(divide="ignore", invalid="ignore"):
        ious = inter / (area_boxes + area_target - inter)
    if not (np.all(ious >= 0) and np.all(ious <= 1)):
        raise ValueError("box IoU outside [0, 1]: degenerate (zero-area) boxes")
    return ious


def compute_mask_IU(masks, target):
    """Intersection and union pixel counts of two boolean masks (any leading dimensions)."""
    masks = np.asarray(masks)
    target = np.asarray(target)
    if masks.shape[-2:] != target.shape[-2:]:
        raise ValueError(f"mask shapes differ: {masks.shape} vs {target.shape}")
    intersection = np.sum(np.logical_and(masks, target))
    union = np.sum(np.logical_or(masks, target))
    return intersection, union


def _argsort_numpy_2016(values):
    """np.argsort(values) as numpy <= 1.11 computed it (kind='quicksort'), ties included.

    cpu_nms ordered boxes by ``scores.argsort()[::-1]``; among equal scores that order is an
    artefact of the sort algorithm, and today's numpy sorts differently (SIMD sorts). This is
    the 2016 algorithm: median-of-three quicksort on an index array, partitions of at most 16
    elements finished by insertion sort, the smaller partition handled first.
    """
    v = [float(x) for x in values]
    idx = list(range(len(v)))
    pending = [(0, len(v) - 1)]
    while pending:
        lo, hi = pending.pop()
        while hi - lo > 15:
            mid = lo + ((hi - lo) >> 1)
            if v[idx[mid]] < v[idx[lo]]:
                idx[mid], idx[lo] = idx[lo], idx[mid]
            if v[idx[hi]] < v[idx[mid]]:
                idx[hi], idx[mid] = idx[mid], idx[hi]
            if v[idx[mid]] < v[idx[lo]]:
                idx[mid], idx[lo] = idx[lo], idx[mid]
            pivot = v[idx[mid]]
            i, j = lo, hi - 1
            idx[mid], idx[j] = idx[j], idx[mid]
            while True:
                i += 1
                while v[idx[i]] < pivot:
                    i += 1
                j -= 1
                while pivot < v[idx[j]]:
                    j -= 1
                if i >= j:
                    break
                idx[i], idx[j] = idx[j], idx[i]
            idx[i], idx[hi - 1] = idx[hi - 1], idx[i]
            if i - lo < hi - i:  # keep working on the smaller side, remember the larger
                pending.append((i + 1, hi))
                hi = i - 1
            else:
                pending.append((lo, i - 1))
                lo = i + 1
        for k in range(lo + 1, hi + 1):  # insertion sort (stable)
            item, key = idx[k], v[idx[k]]
            m = k
            while m > lo and key < v[idx[m - 1]]:
                idx[m] = idx[m - 1]
                m -= 1
            idx[m] = item
    return np.array(idx, dtype=np.int64)


def nms(dets, scores, thresh):
    """Indices of the boxes kept by greedy non-maximum suppression, best score first.

    Same result as the original's Cython ``cpu_nms`` (py-faster-rcnn): float32 arithmetic,
    inclusive +1 areas, a box is suppressed when its overlap with a kept box is ``>= thresh``
    (compared in double precision, as the C code compared a float to a double). Boxes are
    visited in the order of the 2016 numpy ``scores.argsort()[::-1]``, so equal scores are
    resolved as then. NaN scores are rejected.
    """
    dets = np.asarray(dets, dtype=np.float32)
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    if dets.size == 0 and scores.size == 0:
        return []
    if dets.ndim != 2 or dets.shape[1] < 4 or dets.shape[0] != scores.shape[0]:
        raise ValueError(f"dets must be N x 4 with N scores, got {dets.shape}, {scores.shape}")
    x1, y1, x2, y2 = (dets[:, k] for k in range(4))
    areas = (x2 - x1 + np.float32(1)) * (y2 - y1 + np.float32(1))
    if np.any(np.isnan(scores)):
        raise ValueError("scores contain NaN")
    order = _argsort_numpy_2016(scores)[::-1]
    suppressed = np.zeros(len(scores), dtype=bool)
    keep = []
    one, zero = np.float32(1), np.float32(0)
    for pos, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(int(i))
        rest = order[pos + 1:]
        rest = rest[~suppressed[rest]]
        w = np.maximum(zero, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + one)
        h = np.maximum(zero, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + one)
        inter = w * h
        with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 -> nan: kept, as in C
            ovr = inter / (areas[i] + areas[rest] - inter)
        suppressed[rest[ovr.astype(np.float64) >= float(thresh)]] = True
    return keep
