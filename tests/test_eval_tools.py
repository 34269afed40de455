"""Box IoU and mask I/U on hand-made cases; nms against a plain re-expression of cpu_nms."""

import numpy as np
import pytest

from text_objseg_tf2.util import eval_tools


def test_bbox_iou_known_answers():
    target = [0, 0, 9, 9]  # inclusive: 10 x 10 = 100 pixels
    boxes = np.array([[0, 0, 9, 9],      # same box
                      [0, 0, 4, 9],      # half: 50 / 100
                      [5, 5, 14, 14],    # 25 / (100 + 100 - 25)
                      [10, 10, 20, 20],  # touching corner: 0
                      [9, 9, 9, 9]])     # one pixel: 1 / 100
    expected = [1.0, 0.5, 25 / 175, 0.0, 0.01]
    np.testing.assert_allclose(eval_tools.compute_bbox_iou(boxes, target), expected, rtol=1e-15)
    assert eval_tools.compute_bbox_iou([2, 2, 3, 3], [[2, 2, 3, 3]]).tolist() == [1.0]
    # Elementwise when both hold N boxes.
    np.testing.assert_allclose(
        eval_tools.compute_bbox_iou([[0, 0, 1, 1], [0, 0, 3, 3]], [[0, 0, 3, 3], [0, 0, 3, 3]]),
        [4 / 16, 1.0])


def test_bbox_iou_bad_boxes():
    with pytest.raises(ValueError, match="4 numbers"):
        eval_tools.compute_bbox_iou([1, 2, 3], [0, 0, 1, 1])
    with pytest.raises(ValueError, match="xmax"):
        eval_tools.compute_bbox_iou([5, 0, 2, 1], [0, 0, 1, 1])  # negative area
    with pytest.raises(ValueError, match="degenerate"):
        eval_tools.compute_bbox_iou([1, 1, 0, 0], [1, 1, 0, 0])  # 0 / 0


def test_mask_IU():
    pred = np.zeros((4, 5), bool)
    pred[0:2, 0:3] = True  # 6 pixels
    gt = np.zeros((4, 5), bool)
    gt[1:3, 1:4] = True  # 6 pixels, overlap rows 1, cols 1..2 = 2
    inter, union = eval_tools.compute_mask_IU(pred, gt)
    assert (inter, union) == (2, 10)
    assert eval_tools.compute_mask_IU(np.zeros((3, 3)), np.zeros((3, 3))) == (0, 0)
    inter, union = eval_tools.compute_mask_IU(pred.astype(np.float64), gt[None])
    assert (inter, union) == (2, 10)
    with pytest.raises(ValueError, match="shapes differ"):
        eval_tools.compute_mask_IU(pred, gt[:3])


def ref_argsort_2016(values):
    """numpy <= 1.11 argsort (quicksort), written recursively: median of three, pivot parked
    at hi - 1, Hoare partition, insertion sort once a range has at most 16 elements."""
    v = [float(x) for x in values]
    idx = list(range(len(v)))

    def swap(a, b):
        idx[a], idx[b] = idx[b], idx[a]

    def sort(lo, hi):
        if hi - lo <= 15:
            for k in range(lo + 1, hi + 1):
                m = k
                while m > lo and v[idx[m]] < v[idx[m - 1]]:
                    swap(m, m - 1)
                    m -= 1
            return
        mid = lo + (hi - lo) // 2
        for a, b in ((mid, lo), (hi, mid), (mid, lo)):
            if v[idx[a]] < v[idx[b]]:
                swap(a, b)
        pivot = v[idx[mid]]
        swap(mid, hi - 1)
        i, j = lo, hi - 1
        while True:
            i += 1
            while v[idx[i]] < pivot:
                i += 1
            j -= 1
            while pivot < v[idx[j]]:
                j -= 1
            if i >= j:
                break
            swap(i, j)
        swap(i, hi - 1)
        # numpy sorted the smaller side first; the sides are disjoint, so order is irrelevant
        sort(lo, i - 1)
        sort(i + 1, hi)

    sort(0, len(v) - 1)
    return idx


def ref_cpu_nms(dets, scores, thresh):
    """py-faster-rcnn cpu_nms, line by line: float32 C arithmetic, a double threshold."""
    f = np.float32
    dets = np.asarray(dets, np.float32)
    n = len(scores)
    area = [f(f(dets[k, 2] - dets[k, 0]) + f(1)) * f(f(dets[k, 3] - dets[k, 1]) + f(1))
            for k in range(n)]
    order = ref_argsort_2016(scores)[::-1]
    suppressed = [False] * n
    keep = []
    for a in range(n):
        i = order[a]
        if suppressed[i]:
            continue
        keep.append(i)
        for b in range(a + 1, n):
            j = order[b]
            if suppressed[j]:
                continue
            xx1 = max(dets[i, 0], dets[j, 0])
            yy1 = max(dets[i, 1], dets[j, 1])
            xx2 = min(dets[i, 2], dets[j, 2])
            yy2 = min(dets[i, 3], dets[j, 3])
            w = max(f(0), f(f(xx2 - xx1) + f(1)))
            h = max(f(0), f(f(yy2 - yy1) + f(1)))
            inter = f(w * h)
            ovr = f(inter / f(f(area[i] + area[j]) - inter))
            if float(ovr) >= float(thresh):
                suppressed[j] = True
    return keep


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("thresh", [0.0, 0.3, 0.5, 0.7, 1.0])
def test_nms_matches_cpu_nms(seed, thresh):
    rng = np.random.default_rng(seed)
    n = 60 if seed < 3 else 16
    xy = rng.uniform(0, 50, (n, 2))
    wh = rng.uniform(1, 30, (n, 2))
    dets = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    if seed % 2:
        dets = np.round(dets)
    scores = rng.random(n).astype(np.float32)
    if seed >= 2:  # ties
        scores = np.round(scores * 4) / 4
    keep = eval_tools.nms(dets, scores, thresh)
    assert keep == ref_cpu_nms(dets, scores, thresh)
    assert all(isinstance(k, int) for k in keep)


def test_nms_threshold_is_inclusive_and_compared_in_double():
    dets = np.array([[0, 0, 9, 9], [0, 0, 4, 9]], np.float32)  # IoU exactly 0.5
    scores = np.array([0.9, 0.8], np.float32)
    assert eval_tools.nms(dets, scores, 0.5) == [0]  # ovr >= thresh suppresses
    # IoU 1/3 in float32 is 0.3333333432674408; a double threshold just above it keeps the box
    # (a float32 comparison would round the threshold to the same float and suppress it).
    dets = np.array([[0, 0, 9, 9], [5, 0, 14, 9]], np.float32)  # 50 / 150
    ovr32 = float(np.float32(50) / np.float32(150))
    assert eval_tools.nms(dets, scores, ovr32) == [0]
    thresh = ovr32 + 1e-12
    assert np.float32(thresh) == np.float32(ovr32)
    assert eval_tools.nms(dets, scores, thresh) == [0, 1] == ref_cpu_nms(dets, scores, thresh)


def test_nms_order_and_ties():
    dets = np.array([[0, 0, 1, 1], [10, 10, 11, 11], [20, 20, 21, 21]], np.float32)
    assert eval_tools.nms(dets, [0.1, 0.9, 0.5], 0.3) == [1, 2, 0]
    assert eval_tools.nms(dets, [0.5, 0.5, 0.5], 0.3) == [2, 1, 0]
    assert eval_tools.nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.3) == []
    with pytest.raises(ValueError, match="N x 4"):
        eval_tools.nms(dets, [0.1, 0.2], 0.3)


# Golden values from the REAL cpu_nms (Cython) and numpy 1.11.3 under Python 2.7.
GOLDEN_ARGSORT_1_11 = [0, 36, 30, 6, 24, 18, 12, 37, 31, 25, 13, 19, 1, 7, 20, 14, 26, 2, 8, 38,
                       32, 27, 33, 39, 21, 3, 15, 9, 34, 4, 10, 28, 22, 16, 11, 23, 35, 17, 29,
                       5]
GOLDEN_CPU_NMS = {
    0.3: [5, 29, 17, 35, 23, 11, 28, 15, 3, 21, 33, 27, 38, 26, 7, 13, 6, 0],
    0.5: [5, 29, 17, 35, 23, 11, 16, 22, 28, 10, 4, 34, 9, 15, 3, 21, 39, 33, 27, 32, 38, 8, 26,
          14, 20, 7, 19, 13, 25, 31, 12, 18, 24, 6, 30, 36, 0],
    0.7: [5, 29, 17, 35, 23, 11, 16, 22, 28, 10, 4, 34, 9, 15, 3, 21, 39, 33, 27, 32, 38, 8, 2,
          26, 14, 20, 7, 1, 19, 13, 25, 31, 37, 12, 18, 24, 6, 30, 36, 0],
}


@pytest.mark.parametrize("thresh", [0.3, 0.5, 0.7])
def test_nms_against_real_cpu_nms_with_ties(thresh):
    k = np.arange(40)
    x0, y0 = (k * 7) % 23, (k * 11) % 19
    dets = np.stack([x0, y0, x0 + 5 + (k * 3) % 9, y0 + 4 + (k * 5) % 7], 1).astype(np.float32)
    scores = (((k * 13) % 6) / 5.0).astype(np.float32)  # six values: many ties
    assert ref_argsort_2016(scores) == GOLDEN_ARGSORT_1_11
    assert eval_tools.nms(dets, scores, thresh) == GOLDEN_CPU_NMS[thresh]
    assert ref_cpu_nms(dets, scores, thresh) == GOLDEN_CPU_NMS[thresh]


def test_nms_rejects_nan_scores():
    with pytest.raises(ValueError, match="NaN"):
        eval_tools.nms(np.zeros((2, 4)), [0.1, float("nan")], 0.3)
