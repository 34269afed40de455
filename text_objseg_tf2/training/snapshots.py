"""Snapshot files of a training run: where they are, and the training-state sidecar.

A snapshot at iteration k is `snapshot_file % k` (this project's weights format, written by
`checkpoints.save_weights`) plus `<that path>.state.npz`: the optimizer's accumulators under
their TF1 names (`accum/<name>`) and the other arrays of the state (`array/<key>`), and a JSON
`meta` (iteration, data-reader position, running averages, config). The sidecar is written
last, so a snapshot counts as complete (resumable) only when both files exist.
"""

import glob
import json
import os
import re

import numpy as np

from text_objseg_tf2.util import io as util_io

STATE_SUFFIX = ".state.npz"


def snapshot_path(snapshot_file, iteration):
    """`snapshot_file % iteration` (the original's naming)."""
    return snapshot_file % int(iteration)


def state_path(weights_path):
    """The training-state sidecar of a snapshot."""
    return os.fspath(weights_path) + STATE_SUFFIX


def list_snapshots(snapshot_file):
    """`{iteration: weights path}` of the complete snapshots (weights + sidecar) on disk."""
    head, tail = snapshot_file.split("%d")
    pattern = re.compile(re.escape(os.path.basename(head)) + r"(\d+)" + re.escape(tail) + r"\Z")
    folder = os.path.dirname(head) or "."
    found = {}
    for path in glob.glob(os.path.join(glob.escape(folder), "*")):
        m = pattern.match(os.path.basename(path))
        if m and os.path.isfile(state_path(path)):
            found[int(m.group(1))] = os.path.join(os.path.dirname(head), os.path.basename(path))
    return dict(sorted(found.items()))


def latest_snapshot(snapshot_file, max_iter=None):
    """`(iteration, weights path)` of the newest complete snapshot (at most `max_iter`), or
    `(0, None)` when there is none."""
    found = {k: p for k, p in list_snapshots(snapshot_file).items()
             if max_iter is None or k <= max_iter}
    if not found:
        return 0, None
    k = max(found)
    return k, found[k]


def write_state(weights_path, accumulators, meta, arrays=None):
    """Writes the sidecar of `weights_path` atomically."""
    payload = {f"accum/{name}": np.asarray(v) for name, v in accumulators.items()}
    payload.update({f"array/{key}": np.asarray(v) for key, v in (arrays or {}).items()})
    payload["meta"] = np.array(json.dumps(meta, sort_keys=True))
    util_io.atomic_savez(state_path(weights_path), **payload)


def read_state(weights_path):
    """`(accumulators, meta, arrays)` from the sidecar of `weights_path`."""
    path = state_path(weights_path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"training state file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            accum = {k[len("accum/"):]: npz[k] for k in npz.files if k.startswith("accum/")}
            arrays = {k[len("array/"):]: npz[k] for k in npz.files if k.startswith("array/")}
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise ValueError(f"corrupt training state file {path}: {e}") from None
    return accum, meta, arrays
