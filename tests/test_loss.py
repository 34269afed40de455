"""Losses against their numpy formulas."""

import numpy as np
import pytest
import tensorflow as tf

from text_objseg_tf2.util import loss


def ref_sigmoid_xent(x, z):
    # The numerically stable form documented for tf.nn.sigmoid_cross_entropy_with_logits.
    return np.maximum(x, 0) - x * z + np.log1p(np.exp(-np.abs(x)))


def ref_weighted_loss(scores, labels, pos, neg):
    labels = labels.astype(np.float64)
    weights = np.where(labels == 1, pos, neg)
    return np.mean(ref_sigmoid_xent(scores.astype(np.float64), labels) * weights)


@pytest.mark.parametrize("pos, neg", [(1.0, 1.0), (1.0, 1 / 3), (2.5, 0.5)])
def test_weighed_logistic_loss(pos, neg):
    rng = np.random.default_rng(0)
    scores = (rng.normal(size=(4, 8, 8, 1)) * 5).astype(np.float32)
    scores[0, 0, 0, 0] = 40.0  # saturated logits stay finite
    scores[0, 0, 1, 0] = -40.0
    labels = rng.random((4, 8, 8, 1)) > 0.6
    expected = ref_weighted_loss(scores, labels, pos, neg)
    got = loss.weighed_logistic_loss(tf.constant(scores), tf.constant(labels), pos, neg)
    assert got.dtype == tf.float32 and got.shape == ()
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)
    got_f = loss.weighted_logistic_loss(scores, labels.astype(np.float32), pos, neg)
    np.testing.assert_allclose(got_f.numpy(), expected, rtol=1e-6)


def test_weighed_logistic_loss_known_value():
    # score 0: loss log(2) for either label; weights 3 (positive) and 1 (negative).
    got = loss.weighed_logistic_loss(np.zeros((2, 1), np.float32), np.array([[1.0], [0.0]],
                                     np.float32), pos_loss_mult=3.0, neg_loss_mult=1.0)
    np.testing.assert_allclose(got.numpy(), np.log(2) * (3 + 1) / 2, rtol=1e-6)


def test_loss_gradient_matches_formula():
    rng = np.random.default_rng(1)
    scores = tf.Variable(rng.normal(size=(3, 5)).astype(np.float32))
    labels = (rng.random((3, 5)) > 0.5).astype(np.float32)
    with tf.GradientTape() as tape:
        value = loss.weighed_logistic_loss(scores, labels, 1.0, 1 / 3)
    grad = tape.gradient(value, scores).numpy()
    x = scores.numpy().astype(np.float64)
    weights = np.where(labels == 1, 1.0, 1 / 3)
    expected = (1 / (1 + np.exp(-x)) - labels) * weights / x.size
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-8)


def test_l2_regularization_loss():
    rng = np.random.default_rng(2)
    arrays = [rng.normal(size=s).astype(np.float32) for s in [(3, 3, 2, 4), (7,), (5, 6)]]
    variables = [tf.Variable(a) for a in arrays]
    expected = 0.0005 * sum(np.sum(a.astype(np.float64) ** 2) / 2 for a in arrays)
    got = loss.l2_regularization_loss(variables, 0.0005)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)
    assert float(loss.l2_regularization_loss([], 0.0005)) == 0.0
