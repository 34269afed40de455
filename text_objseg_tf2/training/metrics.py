"""The original's training log: current loss / accuracies and their running averages.

The original updated `avg = 0.99 * avg + 0.01 * cur` every iteration, starting from 0, and
printed three lines per iteration; `RunningAverages` keeps the same numbers. One difference: a
batch without positive (or negative) labels has no positive (negative) accuracy; the original's
division gave nan, which then stuck in its running average forever; here that average skips the
batch instead.
"""

import math

DECAY = 0.99
KEYS = ("cls_loss", "accuracy_all", "accuracy_pos", "accuracy_neg")


def accuracies(correct_all, num_all, correct_pos, num_pos, correct_neg, num_neg):
    """(all, pos, neg) fractions of correct signs; nan for a class with no label."""

    def ratio(a, b):
        return a / b if b else math.nan

    return ratio(correct_all, num_all), ratio(correct_pos, num_pos), ratio(correct_neg, num_neg)


class RunningAverages:
    """Exponential running averages (decay 0.99, from 0) of the logged values."""

    def __init__(self, state=None):
        self.values = {k: 0.0 for k in KEYS}
        if state:
            unknown = sorted(set(state) - set(KEYS))
            if unknown:
                raise ValueError(f"unknown running averages {unknown}")
            self.values.update({k: float(v) for k, v in state.items()})

    def update(self, current):
        for key in KEYS:
            value = float(current[key])
            if math.isnan(value) and key != "cls_loss":
                continue
            self.values[key] = DECAY * self.values[key] + (1 - DECAY) * value
        return dict(self.values)

    def state(self):
        return dict(self.values)


def log_lines(n_iter, current, average, lr):
    """The original's three log lines of one iteration."""
    return [
        f"iter = {n_iter}, cls_loss (cur) = {current['cls_loss']:f}, "
        f"cls_loss (avg) = {average['cls_loss']:f}, lr = {lr:f}",
        f"iter = {n_iter}, accuracy (cur) = {current['accuracy_all']:f} (all), "
        f"{current['accuracy_pos']:f} (pos), {current['accuracy_neg']:f} (neg)",
        f"iter = {n_iter}, accuracy (avg) = {average['accuracy_all']:f} (all), "
        f"{average['accuracy_pos']:f} (pos), {average['accuracy_neg']:f} (neg)",
    ]
