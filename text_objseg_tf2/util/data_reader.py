"""Read the training batch files `<folder>/<prefix>_<n>.npz` (port of util/data_reader.py).

`DataReader.read_batch()` works like the original: a background thread prefetches batches, the
order is reshuffled every epoch, and `n_batch` / `n_epoch` count what was read. Epoch `e`'s
order is a pure function of (seed, e), so `state()` (epoch, position, seed) is enough to resume
exactly. `make_dataset` gives the same batches, in the same order, as a `tf.data.Dataset`.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import zipfile

import numpy as np
from absl import logging


class NoBatchesError(FileNotFoundError, RuntimeError):
    """No batch files: a FileNotFoundError, and a RuntimeError as the original raised."""


def count_batches(folder_name, prefix):
    """Number of consecutive files `<prefix>_0.npz, <prefix>_1.npz, ...` (as the original)."""
    if not os.path.isdir(folder_name):
        raise FileNotFoundError(f"batch folder {folder_name} does not exist")
    names = set(os.listdir(folder_name))
    num_batch = 0
    while f"{prefix}_{num_batch}.npz" in names:
        num_batch += 1
    if num_batch == 0:
        raise NoBatchesError(f'no batches under {folder_name} with prefix "{prefix}" '
                             f'(expected {prefix}_0.npz, {prefix}_1.npz, ...)')
    manifest = os.path.join(folder_name, f"{prefix}_manifest.json")
    if os.path.exists(manifest):  # written by text_objseg_tf2.batch_builders
        try:
            with open(manifest, encoding="utf-8") as f:
                expected = int(json.load(f)["num_batches"])
        except (OSError, ValueError, KeyError, TypeError):
            expected = None
        if expected is not None and expected != num_batch:
            logging.warning("%s lists %d batches, %d found: an unfinished build? (rerun the "
                            "batch builder to complete it)", manifest, expected, num_batch)
    logging.debug('found %d batches under %s with prefix "%s"', num_batch, folder_name, prefix)
    return num_batch


def epoch_order(num_batch, epoch, shuffle, seed):
    """Batch ids of epoch `epoch`: 0..num_batch-1, or a permutation drawn from (seed, epoch)."""
    if not shuffle:
        return np.arange(num_batch)
    return np.random.default_rng([seed, epoch]).permutation(num_batch)


def load_batch(folder_name, prefix, batch_id):
    """The dict of arrays of one batch file."""
    path = os.path.join(folder_name, f"{prefix}_{batch_id}.npz")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return dict(npz)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"batch file {path} is unreadable: {e}") from None


def _resolve_start(num_batch, shuffle, seed, start_state):
    """(seed, epoch, position) to start from; a fresh random seed when none is given."""
    epoch, position = 0, 0
    if start_state is not None:
        if int(start_state["num_batch"]) != num_batch:
            raise ValueError(f"start_state is for {start_state['num_batch']} batches, the folder "
                             f"holds {num_batch}")
        if bool(start_state["shuffle"]) != bool(shuffle):
            raise ValueError(f"start_state has shuffle={start_state['shuffle']}, the reader "
                             f"shuffle={shuffle}")
        if seed is not None and int(seed) != int(start_state["seed"]):
            raise ValueError(f"start_state has seed={start_state['seed']}, not {seed}")
        seed = int(start_state["seed"])
        epoch, position = int(start_state["epoch"]), int(start_state["position"])
        if not 0 <= position < num_batch or epoch < 0:
            raise ValueError(f"start_state position {position} / epoch {epoch} out of range")
    if seed is None:
        # The original drew from the unseeded global RNG; record the drawn seed for resume.
        seed = int(np.random.SeedSequence().entropy % (2**63))
    return int(seed), epoch, position


def _batch_ids(num_batch, shuffle, seed, epoch, position):
    """Endless (epoch, position, batch_id) from the given point on."""
    while True:
        order = epoch_order(num_batch, epoch, shuffle, seed)
        for pos in range(position, num_batch):
            yield epoch, pos, int(order[pos])
        epoch, position = epoch + 1, 0


class DataReader:
    """Prefetching, per-epoch shuffling reader of batch files, like the original's.

    Args:
        folder_name, prefix: where the batch files are.
        shuffle: a new permutation of the batches every epoch.
        prefetch_num: batches loaded ahead by the background thread.
        seed: seed of the epoch permutations (None: a random one, see `state()`).
        start_state: a `state()` dict to continue exactly where that reader was.
    """

    def __init__(self, folder_name, prefix, shuffle=True, prefetch_num=8, seed=None,
                 start_state=None):
        self.folder_name = folder_name
        self.prefix = prefix
        self.shuffle = shuffle
        self.prefetch_num = prefetch_num
        self.num_batch = count_batches(folder_name, prefix)
        self.seed, self.n_epoch, self.n_batch = _resolve_start(
            self.num_batch, shuffle, seed, start_state)
        self.last_batch_id = None

        self._queue = queue.Queue(maxsize=max(1, prefetch_num))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._prefetch, daemon=True,
                                        name=f"DataReader({prefix})")
        self._thread.start()

    def _prefetch(self):
        ids = _batch_ids(self.num_batch, self.shuffle, self.seed, self.n_epoch, self.n_batch)
        for _, _, batch_id in ids:
            try:
                item = (batch_id, load_batch(self.folder_name, self.prefix, batch_id))
            except Exception as e:  # noqa: BLE001 - handed to read_batch to raise there
                item = (batch_id, e)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if self._stop.is_set() or isinstance(item[1], Exception):
                return

    def read_batch(self):
        """The next batch (dict of arrays), in the original's order of epochs and batches."""
        logging.debug("data reader: epoch = %d, batch = %d / %d", self.n_epoch, self.n_batch,
                      self.num_batch)
        if self._stop.is_set():
            raise RuntimeError("read_batch() on a closed DataReader")
        if self._queue.empty():
            logging.debug("data reader: waiting for file input (IO is slow)...")
        batch_id, batch = self._queue.get(block=True)
        if isinstance(batch, Exception):
            self.close()
            raise batch
        self.last_batch_id = batch_id
        self.n_batch = (self.n_batch + 1) % self.num_batch
        self.n_epoch += self.n_batch == 0
        return batch

    def state(self):
        """Where the next read_batch() continues: pass as `start_state` to resume exactly."""
        return {"epoch": int(self.n_epoch), "position": int(self.n_batch),
                "seed": int(self.seed), "shuffle": bool(self.shuffle),
                "num_batch": int(self.num_batch)}

    def close(self):
        """Stop the prefetch thread."""
        self._stop.set()
        self._thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def make_dataset(folder_name, prefix, shuffle=True, seed=None, start_state=None,
                 num_epochs=None, prefetch_num=8, num_parallel_reads=4):
    """A `tf.data.Dataset` of batch dicts in DataReader's order for the same seed/start_state.

    Endless unless `num_epochs` is given (counted from the start state's epoch). The batch
    files are read in parallel (`num_parallel_reads`), in order, and `prefetch_num` ahead.
    To be able to resume, give a `seed` (or a `start_state`): after k batches the position is
    `state_after(start, k)` with `start = initial_state(...)` or the given start_state.
    """
    import tensorflow as tf

    num_batch = count_batches(folder_name, prefix)
    seed, epoch, position = _resolve_start(num_batch, shuffle, seed, start_state)
    first = load_batch(folder_name, prefix, 0)
    keys = sorted(first)
    signature = {key: tf.TensorSpec(first[key].shape, tf.as_dtype(first[key].dtype))
                 for key in keys}

    def ids():
        for e, _, batch_id in _batch_ids(num_batch, shuffle, seed, epoch, position):
            if num_epochs is not None and e >= epoch + num_epochs:
                return
            yield batch_id

    def load(batch_id):
        batch = load_batch(folder_name, prefix, int(batch_id))
        for key in keys:
            spec = signature[key]
            if batch[key].shape != tuple(spec.shape) or batch[key].dtype != spec.dtype:
                raise ValueError(f"batch {prefix}_{int(batch_id)}.npz: {key} is "
                                 f"{batch[key].dtype}{list(batch[key].shape)}, batch 0 has "
                                 f"{spec.dtype.name}{spec.shape.as_list()}")
        return tuple(batch[key] for key in keys)

    def to_dict(batch_id):
        values = tf.numpy_function(load, [batch_id], [signature[k].dtype for k in keys],
                                   stateful=False)
        return {k: tf.ensure_shape(v, signature[k].shape)
                for k, v in zip(keys, values, strict=True)}

    dataset = tf.data.Dataset.from_generator(
        ids, output_signature=tf.TensorSpec((), tf.int64))
    dataset = dataset.map(to_dict, num_parallel_calls=num_parallel_reads, deterministic=True)
    return dataset.prefetch(prefetch_num)


def initial_state(folder_name, prefix, shuffle=True, seed=0):
    """The state of a reader of these batches that has read nothing yet."""
    return {"epoch": 0, "position": 0, "seed": int(seed), "shuffle": bool(shuffle),
            "num_batch": count_batches(folder_name, prefix)}


def state_after(state, num_read):
    """`state` advanced by `num_read` batches (what DataReader.state() would then say)."""
    total = int(state["epoch"]) * int(state["num_batch"]) + int(state["position"]) + num_read
    epoch, position = divmod(total, int(state["num_batch"]))
    return dict(state, epoch=epoch, position=position)
