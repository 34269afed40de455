"""The training loop of the original scripts: read a batch, step, log, snapshot; plus resume,
TensorBoard and a stop on a non-finite loss.

`train(stage, **overrides)` is the library entry point (the three exp-referit scripts and the
pipeline call it); `run(config)` takes a ready `TrainConfig`.
"""

import contextlib
import dataclasses
import math
import os

import keras
import tensorflow as tf
from absl import logging
from tqdm import tqdm

from text_objseg_tf2 import checkpoints
from text_objseg_tf2.training import config as config_lib
from text_objseg_tf2.training import metrics, snapshots
from text_objseg_tf2.training.trainer import Trainer, is_chief, make_strategy
from text_objseg_tf2.util import data_reader


class TrainingDivergedError(FloatingPointError):
    """The loss (or a trained weight) became NaN or Inf; the last good snapshot is kept."""


@dataclasses.dataclass
class TrainResult:
    """What a run did: the iteration it reached, its last snapshot, the final averages."""

    iterations: int
    snapshot: str | None
    averages: dict
    last: dict | None


def train(stage, distribute_strategy=None, feature_cache=None, **overrides):
    """Trains `stage` ("det", "seg_lowres" or "seg_highres") with the original's defaults
    changed by `overrides` (any `TrainConfig` field, e.g. `max_iter=200, N=10, T=20,
    input_H=128, input_W=128, data_folder=..., snapshot_file=..., pretrained_model=...`).

    `distribute_strategy`: a ready `tf.distribute.Strategy` to use instead of the one the
    `strategy` setting names. `feature_cache`: a `FeatureCache` shared with other runs of the
    same frozen VGG (with `cache_features=True`). Returns a `TrainResult`; raises
    `TrainingDivergedError` on a non-finite loss, ValueError / FileNotFoundError on bad
    settings or files.
    """
    return run(config_lib.stage_config(stage, **overrides),
               distribute_strategy=distribute_strategy, feature_cache=feature_cache)


def _check_precision(config):
    if config.mixed_precision and not tf.config.list_physical_devices("GPU"):
        logging.warning("--mixed_precision on a machine without GPU: float16 on CPU is slow "
                        "and gains nothing; it runs only so that the path can be tested")


def _snapshot(trainer, config, n_done, reader, averages, chief):
    """Writes the snapshot of iteration `n_done` (weights, then the state sidecar)."""
    path = snapshots.snapshot_path(config.snapshot_file, n_done)
    if not trainer.weights_finite():
        raise TrainingDivergedError(
            f"non-finite trained weights after iteration {n_done}: snapshot {path} not written; "
            f"the last good snapshot is kept (try a lower start_lr)")
    accumulators, arrays = trainer.get_state()  # every worker reads (collective-free)
    if not chief:
        return path
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)),
                       f".{os.path.basename(path)}.{os.getpid()}.tmp.weights.h5")
    # checkpoints.save_weights wants a `.weights.h5` name (plain model.load_weights needs it);
    # the original's snapshot names end in `.tfmodel`, so write under a temp name and rename.
    try:
        checkpoints.save_weights(trainer.net, trainer.kind, tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.remove(tmp)
    meta = {"iteration": n_done, "stage": config.stage, "reader": reader.state(),
            "averages": averages.state(), "config": dataclasses.asdict(config)}
    snapshots.write_state(path, accumulators, meta, arrays)
    logging.info("snapshot saved to %s", path)
    return path


def run(config, distribute_strategy=None, feature_cache=None):
    """Runs the training described by `config` (a `TrainConfig`); see `train`."""
    _check_precision(config)
    strategy = (distribute_strategy if distribute_strategy is not None
                else make_strategy(config.strategy))
    if (strategy.num_replicas_in_sync > 1 or config.strategy == "multi_worker") \
            and config.shuffle and config.seed is None:
        raise ValueError("a distributed run needs --seed (every worker reads the batches in "
                         "the same order)")
    chief = is_chief(strategy)
    start, resume_path, state = 0, None, None
    if config.resume:
        start, resume_path = snapshots.latest_snapshot(config.snapshot_file, config.max_iter)
        if resume_path is None:
            logging.info("resume: no snapshot matching %s; starting from iteration 0",
                         config.snapshot_file)
        else:
            state = snapshots.read_state(resume_path)
            if state[1].get("stage") != config.stage:
                raise ValueError(f"snapshot {resume_path} is of stage {state[1].get('stage')}, "
                                 f"not {config.stage}")
            logging.info("resuming from %s (iteration %d)", resume_path, start)
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)  # initialisers and dropout seeds
    averages = metrics.RunningAverages(state[1]["averages"] if state else None)
    # The reader first: a missing batch folder fails before the model is loaded.
    reader = data_reader.DataReader(config.data_folder, config.data_prefix,
                                    shuffle=config.shuffle, seed=config.seed,
                                    start_state=state[1]["reader"] if state else None)
    try:
        trainer = Trainer(config, strategy=strategy, resume_path=resume_path,
                          feature_cache=feature_cache)
        if state is not None:
            trainer.set_state(state[0], state[2])
    except BaseException:
        reader.close()
        raise
    _log_variables(trainer)
    writer = (tf.summary.create_file_writer(config.log_dir)
              if config.log_dir and chief else None)
    last_snapshot, current = resume_path, None
    try:
        bar = tqdm(range(start, config.max_iter), initial=start, total=config.max_iter,
                   desc=f"train {config.stage}", disable=config.log_every <= 1 or None)
        for n_iter in bar:
            current = trainer.step(n_iter, reader.read_batch())
            if not math.isfinite(current["cls_loss"]):
                raise TrainingDivergedError(
                    f"cls_loss is {current['cls_loss']} at iteration {n_iter}; stopped. The "
                    f"last good snapshot is kept: {last_snapshot or 'none written yet'}")
            average = averages.update(current)
            if n_iter % config.log_every == 0 or n_iter + 1 == config.max_iter:
                for line in metrics.log_lines(n_iter, current, average, current["lr"]):
                    logging.info(line)
                if writer is not None:
                    _write_scalars(writer, n_iter, current, average)
            n_done = n_iter + 1
            if n_done % config.snapshot == 0 or n_done == config.max_iter:
                last_snapshot = _snapshot(trainer, config, n_done, reader, averages, chief)
    finally:
        reader.close()
        if writer is not None:
            writer.close()
    if trainer.feature_cache is not None:
        cache = trainer.feature_cache
        logging.info("feature cache: %d batches (%.1f MB), %d hits, %d misses", len(cache),
                     cache.nbytes / 2**20, cache.hits, cache.misses)
    logging.info("Optimization done.")
    return TrainResult(iterations=max(start, config.max_iter), snapshot=last_snapshot,
                       averages=averages.state(), last=current)


def _scalar_metadata():
    from tensorflow.core.framework import summary_pb2

    # What TensorBoard's scalar summary writes; `tf.summary.scalar` itself needs the
    # tensorboard package, which TensorFlow >= 2.20 no longer installs.
    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
    ).SerializeToString()


def _write_scalars(writer, n_iter, current, average):
    metadata = _scalar_metadata()
    values = {"lr": current["lr"]}
    for key in metrics.KEYS:
        if math.isfinite(current[key]):
            values[f"{key}/cur"] = current[key]
        values[f"{key}/avg"] = average[key]
    with writer.as_default(step=n_iter):
        for tag, value in values.items():
            tf.summary.write(tag, tf.constant(value, tf.float32), metadata=metadata)


def _log_variables(trainer):
    sel = trainer.selection
    logging.info("Collecting variables to train:\n%s", "\n".join(f"\t{n}" for n in sel.train))
    logging.info("Collecting variables for regularization:\n%s",
                 "\n".join(f"\t{n}" for n in sel.decay))
    logging.info("Variable learning rate multiplication:\n%s",
                 "\n".join(f"\t{n}: {m:f}" for n, m in sel.lr_mult.items()))
