"""training.optimizer against numpy re-expressions of TF1's MomentumOptimizer and schedule."""

import numpy as np
import pytest
import tensorflow as tf

from text_objseg_tf2.training import optimizer as opt


def _np_staircase(step, start_lr, decay_step, rate):
    return start_lr * rate ** (step // decay_step)


@pytest.mark.parametrize("step", [0, 1, 9, 10, 11, 19999, 20000, 25000])
def test_staircase_learning_rate(step):
    got = float(opt.staircase_learning_rate(step, 0.01, 10000, 0.1))
    np.testing.assert_allclose(got, _np_staircase(step, 0.01, 10000, 0.1), rtol=1e-6)
    got = float(opt.staircase_learning_rate(step, 0.01, 10, 0.1))
    np.testing.assert_allclose(got, _np_staircase(step, 0.01, 10, 0.1), rtol=1e-6)


def test_dense_update_is_tf1_form_not_keras_form():
    """accum = m*accum + g; w -= lr*accum, across a learning-rate drop."""
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((3, 4)).astype(np.float32)
    grads = [rng.standard_normal((3, 4)).astype(np.float32) for _ in range(4)]
    lrs = [0.1, 0.1, 0.01, 0.01]
    var = tf.Variable(w0)
    solver = opt.TF1Momentum({"w": var}, momentum=0.9)
    for g, lr in zip(grads, lrs, strict=True):
        solver.apply_gradients({"w": tf.constant(g)}, tf.constant(lr))
    w, a = w0.astype(np.float64), np.zeros((3, 4))
    for g, lr in zip(grads, lrs, strict=True):
        a = 0.9 * a + g
        w = w - lr * a
    np.testing.assert_allclose(var.numpy(), w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(solver.accumulators["w"].numpy(), a, rtol=1e-5, atol=1e-6)
    # Keras' SGD (velocity = m*velocity - lr*g) gives another result once lr drops.
    keras_var = tf.Variable(w0)
    sgd = tf.keras.optimizers.SGD(learning_rate=0.1, momentum=0.9)
    for g, lr in zip(grads, lrs, strict=True):
        sgd.learning_rate = lr
        sgd.apply_gradients([(tf.constant(g), keras_var)])
    assert np.max(np.abs(keras_var.numpy() - w)) > 1e-3


def test_sparse_update_touches_only_batch_rows_and_sums_duplicates():
    rng = np.random.default_rng(1)
    e0 = rng.standard_normal((6, 2)).astype(np.float32)
    var = tf.Variable(e0)
    solver = opt.TF1Momentum({"emb": var}, momentum=0.9)
    steps = [([0, 2, 2, 0, 2], 0.5), ([1, 2], 0.5), ([4, 4], 0.05)]
    ref_w, ref_a = e0.astype(np.float64), np.zeros((6, 2))
    for ids, lr in steps:
        values = rng.standard_normal((len(ids), 2)).astype(np.float32)
        solver.apply_gradients(
            {"emb": tf.IndexedSlices(tf.constant(values), tf.constant(ids), tf.constant([6, 2]))},
            tf.constant(lr))
        # TF >= 1.0: slices of a repeated row are summed, then one momentum step per row.
        summed = {}
        for i, row in enumerate(ids):
            summed[row] = summed.get(row, 0) + values[i].astype(np.float64)
        for row, g in summed.items():
            ref_a[row] = 0.9 * ref_a[row] + g
            ref_w[row] = ref_w[row] - lr * ref_a[row]
    np.testing.assert_allclose(var.numpy(), ref_w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(solver.accumulators["emb"].numpy(), ref_a, rtol=1e-5, atol=1e-6)
    # Rows 3 and 5 never appeared: value and accumulator exactly as they started.
    np.testing.assert_array_equal(var.numpy()[[3, 5]], e0[[3, 5]])
    np.testing.assert_array_equal(solver.accumulators["emb"].numpy()[[3, 5]], 0)
    # Row 0 has a non-zero accumulator but was not in the last batches: not moved by momentum.
    assert np.all(ref_a[0] != 0)


def test_apply_if_false_changes_nothing():
    var = tf.Variable(np.ones((2, 2), np.float32))
    solver = opt.TF1Momentum({"w": var}, momentum=0.9)
    solver.apply_gradients({"w": tf.ones((2, 2))}, tf.constant(0.1), apply_if=tf.constant(False))
    np.testing.assert_array_equal(var.numpy(), 1)
    np.testing.assert_array_equal(solver.accumulators["w"].numpy(), 0)
    solver.apply_gradients({"w": tf.ones((2, 2))}, tf.constant(0.1), apply_if=tf.constant(True))
    np.testing.assert_allclose(var.numpy(), 0.9)


def test_state_round_trip_and_mismatch():
    var = tf.Variable(np.ones((2, 2), np.float32))
    solver = opt.TF1Momentum({"w": var}, momentum=0.9)
    solver.apply_gradients({"w": tf.ones((2, 2))}, tf.constant(0.1))
    state = solver.get_state()
    other = opt.TF1Momentum({"w": tf.Variable(np.ones((2, 2), np.float32))}, momentum=0.9)
    other.set_state(state)
    np.testing.assert_array_equal(other.accumulators["w"].numpy(), state["w"])
    with pytest.raises(ValueError, match="missing"):
        other.set_state({})
    with pytest.raises(ValueError, match="wrong shape"):
        other.set_state({"w": np.zeros((3,), np.float32)})


def test_dynamic_loss_scale():
    scale = opt.DynamicLossScale(initial_scale=8.0, growth_steps=2)
    scale.update(tf.constant(False))
    assert float(scale.scale.numpy()) == 4.0
    scale.update(tf.constant(True))
    assert float(scale.scale.numpy()) == 4.0
    scale.update(tf.constant(True))
    assert float(scale.scale.numpy()) == 8.0 and int(scale.good_steps.numpy()) == 0
    for _ in range(10):
        scale.update(tf.constant(False))
    assert float(scale.scale.numpy()) == 1.0
