"""Numpy helpers of the model: spatial features, the bilinear filter, accuracy.

Ports models/processing_tools.py of the TF1 release.
"""

import numpy as np


def generate_spatial_batch(N, featmap_H, featmap_W):
    """8 spatial channels per cell of an `featmap_H x featmap_W` map, in [-1, 1] coordinates.

    Channels are `[xmin, ymin, xmax, ymax, xctr, yctr, 1/featmap_W, 1/featmap_H]`; the last two
    are half a cell's width in [-1, 1] units, as in the original (not the full width 2/W).
    Returns float32 `[N, featmap_H, featmap_W, 8]`.
    """
    if featmap_H <= 0 or featmap_W <= 0:
        raise ValueError(f"feature map size must be positive, got {featmap_H}x{featmap_W}")
    w = np.arange(featmap_W, dtype=np.float64)
    h = np.arange(featmap_H, dtype=np.float64)
    xmin = w / featmap_W * 2 - 1
    xmax = (w + 1) / featmap_W * 2 - 1
    ymin = h / featmap_H * 2 - 1
    ymax = (h + 1) / featmap_H * 2 - 1
    grid = np.zeros((featmap_H, featmap_W, 8), dtype=np.float64)
    grid[:, :, 0] = xmin[np.newaxis, :]
    grid[:, :, 1] = ymin[:, np.newaxis]
    grid[:, :, 2] = xmax[np.newaxis, :]
    grid[:, :, 3] = ymax[:, np.newaxis]
    grid[:, :, 4] = ((xmin + xmax) / 2)[np.newaxis, :]
    grid[:, :, 5] = ((ymin + ymax) / 2)[:, np.newaxis]
    grid[:, :, 6] = 1 / featmap_W
    grid[:, :, 7] = 1 / featmap_H
    return np.tile(grid.astype(np.float32)[np.newaxis], (N, 1, 1, 1))


def generate_bilinear_filter(stride):
    """The `[2*stride, 2*stride, 1, 1]` float32 bilinear upsampling kernel of the release.

    The 1-D profile is `[0, 1, ..., stride, stride-1, ..., 1] / stride`, so with TF's SAME
    padding of a stride-`stride` transposed conv the impulse of cell i peaks at pixel
    `stride*i + stride/2`.
    """
    f = np.concatenate((np.arange(0, stride), np.arange(stride, 0, -1))) / stride
    return np.outer(f, f).astype(np.float32)[:, :, np.newaxis, np.newaxis]


def compute_accuracy(scores, labels):
    """Fractions of correct signs (score >= 0 means positive) over all, positive, negative.

    A class with no element gives nan, as the original's division did.
    """
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    is_pos = labels != 0
    is_neg = np.logical_not(is_pos)
    num_pos = np.sum(is_pos)
    num_neg = np.sum(is_neg)
    is_correct = np.logical_xor(scores < 0, is_pos)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy_all = np.sum(is_correct) / (num_pos + num_neg)
        accuracy_pos = np.sum(is_correct[is_pos]) / num_pos
        accuracy_neg = np.sum(is_correct[is_neg]) / num_neg
    return accuracy_all, accuracy_pos, accuracy_neg


def spatial_feature_from_bbox(bboxes, imsize):
    """The region model's 8 spatial features of inclusive pixel boxes in an image of `imsize`.

    `bboxes` is `[..., 4]` as `[xmin, ymin, xmax, ymax]`, `imsize` is `(width, height)`.
    Returns float64 `[num_boxes, 8]`: the corners and centre in [-1, 1] coordinates, then the
    box's own width and height in those units (as the original computed them).
    """
    bboxes = np.asarray(bboxes).reshape((-1, 4))
    im_w, im_h = imsize
    if im_w <= 0 or im_h <= 0:
        raise ValueError(f"image size must be positive, got (width, height) = {tuple(imsize)}")
    if not (np.all(bboxes[:, 0] < im_w) and np.all(bboxes[:, 2] < im_w)
            and np.all(bboxes[:, 1] < im_h) and np.all(bboxes[:, 3] < im_h)):
        raise ValueError(
            f"box coordinates must lie inside the image of (width, height) = {tuple(imsize)}")
    feats = np.zeros((bboxes.shape[0], 8))
    feats[:, 0] = bboxes[:, 0] * 2.0 / im_w - 1
    feats[:, 1] = bboxes[:, 1] * 2.0 / im_h - 1
    feats[:, 2] = bboxes[:, 2] * 2.0 / im_w - 1
    feats[:, 3] = bboxes[:, 3] * 2.0 / im_h - 1
    feats[:, 4] = (feats[:, 0] + feats[:, 2]) / 2
    feats[:, 5] = (feats[:, 1] + feats[:, 3]) / 2
    feats[:, 6] = feats[:, 2] - feats[:, 0]
    feats[:, 7] = feats[:, 3] - feats[:, 1]
    return feats
