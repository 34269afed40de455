"""Training losses of the original: weighted sigmoid cross-entropy and L2 weight decay."""

import tensorflow as tf


def weighed_logistic_loss(scores, labels, pos_loss_mult=1.0, neg_loss_mult=1.0):
    """Mean over all elements of sigmoid cross-entropy, weighted pos_loss_mult where label is 1
    and neg_loss_mult where it is 0 (the original's spelling "weighed" is kept).

    Labels may be bool or 0/1 numbers; they are cast to the scores' dtype.
    """
    scores = tf.convert_to_tensor(scores)
    labels = tf.cast(labels, scores.dtype)
    loss_mult = labels * (pos_loss_mult - neg_loss_mult) + neg_loss_mult
    per_element = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=scores)
    return tf.reduce_mean(per_element * loss_mult)


weighted_logistic_loss = weighed_logistic_loss


def l2_regularization_loss(variables, weight_decay):
    """weight_decay * sum over `variables` of sum(w ** 2) / 2 (tf.nn.l2_loss); 0 for none."""
    variables = list(variables)
    if not variables:
        return tf.constant(0.0)
    return weight_decay * tf.add_n([tf.nn.l2_loss(v) for v in variables])
