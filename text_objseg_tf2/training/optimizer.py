"""The release's solver: `tf.train.MomentumOptimizer` (TF1 form) with a staircase schedule.

TF1's momentum keeps `accum = momentum * accum + grad; var -= lr * accum`. Keras' SGD keeps
`v = momentum * v - lr * grad; var += v`, which folds the learning rate into the velocity, so
the two differ from the first step after a learning-rate drop; this module reproduces TF1's.

Sparse gradients (`tf.IndexedSlices`, the embedding's gradient from `embedding_lookup`) update
only the rows they name, value and accumulator, as TF1's `sparse_apply_momentum`. TF >= 1.0's
`Optimizer.apply_gradients` first summed the slices of repeated ids (`unique` +
`unsorted_segment_sum`, its `_apply_sparse_duplicate_indices`); so does `apply_gradients` here.
"""

import tensorflow as tf


def staircase_learning_rate(step, start_lr, decay_step, decay_rate):
    """`tf.train.exponential_decay(..., staircase=True)` in float32, as TF1 computed it:
    `start_lr * decay_rate ** floor(step / decay_step)`."""
    step = tf.cast(step, tf.float32)
    exponent = tf.floor(step / tf.constant(decay_step, tf.float32))
    return tf.constant(start_lr, tf.float32) * tf.pow(tf.constant(decay_rate, tf.float32),
                                                      exponent)


def dense_momentum_update(var, accum, grad, lr, momentum):
    """`accum = accum * momentum + grad; var -= lr * accum`, in place, with TF1's own fused
    kernel (`ApplyMomentum`, use_nesterov=False)."""
    return tf.raw_ops.ResourceApplyMomentum(
        var=var.handle, accum=accum.handle, lr=tf.cast(lr, var.dtype),
        grad=tf.cast(grad, var.dtype), momentum=tf.constant(momentum, var.dtype),
        use_locking=False, use_nesterov=False)


def sparse_momentum_update(var, accum, grad, lr, momentum):
    """TF1's sparse momentum on the rows of `grad` (an IndexedSlices): the slices of repeated
    ids summed first (`_apply_sparse_duplicate_indices`), then `SparseApplyMomentum` (per row:
    `accum[r] = accum[r] * momentum + g_r; var[r] -= lr * accum[r]`). Rows not named keep
    their value and their accumulator."""
    rows, positions = tf.unique(grad.indices)
    summed = tf.math.unsorted_segment_sum(grad.values, positions, tf.shape(rows)[0])
    return tf.raw_ops.ResourceSparseApplyMomentum(
        var=var.handle, accum=accum.handle, lr=tf.cast(lr, var.dtype),
        grad=tf.cast(summed, var.dtype), indices=rows,
        momentum=tf.constant(momentum, var.dtype), use_locking=False, use_nesterov=False)


def momentum_update(var, accum, grad, lr, momentum):
    """The sparse update for an IndexedSlices gradient, the dense one otherwise (decided here,
    per device: in a cross-replica context the gradient arrives wrapped in a distributed
    value and is unwrapped only when the update runs)."""
    if isinstance(grad, tf.IndexedSlices):
        return sparse_momentum_update(var, accum, grad, lr, momentum)
    return dense_momentum_update(var, accum, grad, lr, momentum)


def _tf_variable(v):
    """The tf.Variable (or distributed variable) behind a Keras variable."""
    return getattr(v, "value", v) if not isinstance(v, tf.Variable) else v


class TF1Momentum:
    """Momentum SGD exactly as `tf.train.MomentumOptimizer(lr, momentum)` (no Nesterov).

    Args:
      variables: `{name: variable}` of the trained variables (Keras or tf variables); one
        zero-initialised accumulator (TF1's "Momentum" slot) is created per variable, so create
        the optimizer under the same distribution strategy scope as the variables.
      momentum: the momentum coefficient.
    """

    def __init__(self, variables, momentum):
        self.momentum = float(momentum)
        self.variables = {name: _tf_variable(v) for name, v in variables.items()}
        self.accumulators = {
            name: tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False,
                              name=name.replace("/", "_") + "_momentum")
            for name, v in self.variables.items()}

    def apply_gradients(self, grads, lr, apply_if=None):
        """Applies `grads` (`{name: gradient}`; dense tensors or IndexedSlices) with `lr`.

        `apply_if`: an optional boolean tensor; when false nothing changes (a skipped step of
        dynamic loss scaling). Inside a strategy's replica context, pass gradients already
        all-reduced; the update then runs once per device through `merge_call`.
        """
        if tf.distribute.has_strategy() and not tf.distribute.in_cross_replica_context():
            ctx = tf.distribute.get_replica_context()
            return ctx.merge_call(self._apply_cross_replica, args=(grads, lr, apply_if))
        return self._apply_cross_replica(None, grads, lr, apply_if)

    def _apply_cross_replica(self, strategy, grads, lr, apply_if):
        updates = []
        for name, grad in grads.items():
            if grad is None:
                continue
            var, accum = self.variables[name], self.accumulators[name]
            fn = momentum_update
            if apply_if is not None:
                fn = _guarded(fn)
            args = (accum, grad, lr, self.momentum) + (() if apply_if is None else (apply_if,))
            if strategy is None:
                updates.append(fn(var, *args))
            else:
                updates.append(strategy.extended.update(var, fn, args=args, group=False))
        return updates

    def get_state(self):
        """`{name: accumulator as numpy}` (the first replica's copy under a strategy)."""
        return {name: _first_value(a) for name, a in self.accumulators.items()}

    def set_state(self, state):
        """Restores accumulators from `get_state()`; all names and shapes must match."""
        missing = sorted(set(self.accumulators) - set(state))
        unexpected = sorted(set(state) - set(self.accumulators))
        bad = sorted(name for name in set(state) & set(self.accumulators)
                     if tuple(state[name].shape) != tuple(self.accumulators[name].shape))
        if missing or unexpected or bad:
            raise ValueError(f"optimizer state does not fit: missing {missing}, unexpected "
                             f"{unexpected}, wrong shape {bad}")
        for name, value in state.items():
            self.accumulators[name].assign(value)


def _guarded(fn):
    def guarded(var, accum, grad, lr, momentum, apply_if):
        def apply():
            fn(var, accum, grad, lr, momentum)
            return tf.constant(True)

        return tf.cond(apply_if, apply, lambda: tf.constant(False))

    return guarded


class DynamicLossScale:
    """Dynamic loss scaling for float16 compute (as TF's / Keras' LossScaleOptimizer): the loss
    is multiplied by `scale` before the gradients are taken and they are divided by it after;
    a step with non-finite gradients is skipped and halves the scale, and `growth_steps`
    finite steps in a row double it."""

    def __init__(self, initial_scale=2.0**15, growth_steps=2000, multiplier=2.0):
        self.growth_steps = int(growth_steps)
        self.multiplier = float(multiplier)
        only_first = tf.VariableAggregation.ONLY_FIRST_REPLICA
        self.scale = tf.Variable(float(initial_scale), trainable=False, name="loss_scale",
                                 aggregation=only_first)
        self.good_steps = tf.Variable(0, dtype=tf.int64, trainable=False,
                                      name="loss_scale_good_steps", aggregation=only_first)

    def update(self, finite):
        """Next scale after a step whose gradients were `finite` (a boolean tensor)."""
        grown = self.good_steps + 1 >= self.growth_steps
        new_scale = tf.where(finite, tf.where(grown, self.scale * self.multiplier, self.scale),
                             tf.maximum(self.scale / self.multiplier, 1.0))
        new_good = tf.where(finite & ~grown, self.good_steps + 1, tf.zeros_like(self.good_steps))
        self.scale.assign(new_scale)
        self.good_steps.assign(new_good)

    def get_state(self):
        return {"loss_scale/scale": _first_value(self.scale),
                "loss_scale/good_steps": _first_value(self.good_steps)}

    def set_state(self, arrays):
        if "loss_scale/scale" in arrays:
            self.scale.assign(arrays["loss_scale/scale"])
            self.good_steps.assign(arrays["loss_scale/good_steps"])


def _first_value(v):
    values = getattr(v, "values", None)
    return (values[0] if values else v).numpy()
