"""processing_tools against hand-written re-expressions of the release's loops."""

import numpy as np
import pytest

from text_objseg_tf2.models import processing_tools as pt


@pytest.mark.parametrize("h,w", [(16, 16), (3, 5), (1, 1)])
def test_generate_spatial_batch_matches_loops(h, w):
    want = np.zeros((2, h, w, 8), np.float32)
    for i in range(h):
        for j in range(w):
            xmin, xmax = j / w * 2 - 1, (j + 1) / w * 2 - 1
            ymin, ymax = i / h * 2 - 1, (i + 1) / h * 2 - 1
            want[:, i, j, :] = [xmin, ymin, xmax, ymax, (xmin + xmax) / 2, (ymin + ymax) / 2,
                                1 / w, 1 / h]
    got = pt.generate_spatial_batch(2, h, w)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_spatial_channels_use_half_cell_width():
    got = pt.generate_spatial_batch(1, 16, 16)
    assert got[0, 0, 0, 6] == np.float32(1 / 16)  # not the full width 2/16
    assert got[0, 15, 15, 2] == 1.0 and got[0, 0, 0, 0] == -1.0


def test_bilinear_filter():
    f = pt.generate_bilinear_filter(2)
    assert f.shape == (4, 4, 1, 1) and f.dtype == np.float32
    profile = np.array([0, 0.5, 1, 0.5])
    np.testing.assert_array_equal(f[:, :, 0, 0], np.outer(profile, profile).astype(np.float32))
    f32 = pt.generate_bilinear_filter(32)[:, :, 0, 0]
    assert f32.shape == (64, 64) and f32[32, 32] == 1.0 and f32[0, :].sum() == 0


def test_spatial_feature_from_bbox_known_answer():
    feats = pt.spatial_feature_from_bbox([[0, 0, 49, 99], [25, 50, 74, 149]], (100, 200))
    np.testing.assert_allclose(feats[0], [-1, -1, -0.02, -0.01, -0.51, -0.505, 0.98, 0.99])
    np.testing.assert_allclose(feats[1], [-0.5, -0.5, 0.48, 0.49, -0.01, -0.005, 0.98, 0.99])


def test_spatial_feature_from_bbox_rejects_boxes_outside_image():
    with pytest.raises(ValueError, match="inside the image"):
        pt.spatial_feature_from_bbox([0, 0, 100, 10], (100, 200))


def test_compute_accuracy():
    scores = np.array([1.0, -1.0, 2.0, -3.0, 0.0])
    labels = np.array([1, 1, 0, 0, 0])
    acc_all, acc_pos, acc_neg = pt.compute_accuracy(scores, labels)
    # correct: pos 1.0 yes, pos -1.0 no, neg 2.0 no, neg -3.0 yes, neg 0.0 no (0 counts as pos)
    assert acc_all == pytest.approx(2 / 5)
    assert acc_pos == pytest.approx(1 / 2)
    assert acc_neg == pytest.approx(1 / 3)
    assert np.isnan(pt.compute_accuracy(np.array([1.0]), np.array([0]))[1])
