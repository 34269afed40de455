"""One stage's network, solver and compiled training step (the original's graph and solver).

`build_net` makes the stage's starting network (det: VGG from `vgg_params.npz` and the
classifier drawn from normals; segmentation: a pretrained model; or a snapshot when resuming).
`Trainer.step(n_iter, batch)` runs one iteration of the original loop on a batch dict read from
the batch files and returns the logged numbers. Under a `tf.distribute` strategy the global
batch is split over the replicas and the loss stays the mean over the global batch.
"""

import contextlib

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from text_objseg_tf2 import checkpoints
from text_objseg_tf2.models import vgg_net
from text_objseg_tf2.models.text_objseg_model import TextObjSegNet
from text_objseg_tf2.training import environment, metrics
from text_objseg_tf2.training.feature_cache import FeatureCache, vgg_fingerprint
from text_objseg_tf2.training.optimizer import (
    DynamicLossScale,
    TF1Momentum,
    staircase_learning_rate,
)
from text_objseg_tf2.training.variables import select_variables
from text_objseg_tf2.util import loss as loss_lib

LABEL_KEYS = {"det": "label_batch", "seg_lowres": "label_coarse_batch",
              "seg_highres": "label_fine_batch"}
DET_CROP_SIZE = 224


def batch_shapes(config):
    """`{key: shape}` of the batch-file arrays a stage reads, as the original fed them."""
    T, N = config.T, config.N
    if config.kind == "det":
        return {"text_seq_batch": (T, N), "imcrop_batch": (N, DET_CROP_SIZE, DET_CROP_SIZE, 3),
                "spatial_batch": (N, 8), "label_batch": (N, 1)}
    H, W = config.input_H, config.input_W
    label_shape = (N, H // 32, W // 32, 1) if config.kind == "seg_lowres" else (N, H, W, 1)
    return {"text_seq_batch": (T, N), "imcrop_batch": (N, H, W, 3),
            LABEL_KEYS[config.kind]: label_shape}


def make_strategy(name):
    """The `tf.distribute` strategy of `--strategy` (none: TF's default strategy)."""
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}; expected none, mirrored or multi_worker")


def is_distributed(strategy):
    return type(strategy).__name__ != "_DefaultDistributionStrategy"


def is_chief(strategy):
    """True on the worker that writes snapshots and logs (always, without multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    task_id = getattr(resolver, "task_id", 0) or 0
    if task_type in (None, "chief"):
        return True
    has_chief = "chief" in (resolver.cluster_spec().as_dict() if resolver else {})
    return task_type == "worker" and task_id == 0 and not has_chief


@contextlib.contextmanager
def dtype_policy(name):
    """Keras' global dtype policy set to `name` while building layers."""
    old = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(old)


def _net_kwargs(config):
    return dict(vgg_dropout=config.vgg_dropout, mlp_dropout=config.mlp_dropout)


def _sizes(config):
    return dict(num_vocab=config.num_vocab, embed_dim=config.embed_dim,
                lstm_dim=config.lstm_dim, mlp_hidden_dims=config.mlp_hidden_dims)


def _init_det_net(config):
    """The release's det initialisation: VGG-16 from `vgg_params.npz`; mlp weights from
    N(0, mlp_l1_std) and N(0, mlp_l2_std) drawn with numpy (l1 first), biases 0; the
    embedding and LSTM keep their default initialisers."""
    values = {}
    if config.convnet_params:
        weights, biases = checkpoints.load_vgg_params_npz(config.convnet_params)
        for layer in weights:
            values[f"vgg_local/{layer}/weights"] = np.asarray(weights[layer], np.float32)
            values[f"vgg_local/{layer}/biases"] = np.asarray(biases[layer], np.float32)
    else:
        logging.warning("no convnet_params: VGG-16 keeps random weights (smoke runs only)")
    rng = np.random.RandomState(config.seed) if config.seed is not None else np.random
    feat_dim = config.lstm_dim + 1000 + 8
    hidden = config.mlp_hidden_dims
    values["classifier/mlp_l1/weights"] = rng.normal(
        0, config.mlp_l1_std, (feat_dim, hidden)).astype(np.float32)
    values["classifier/mlp_l2/weights"] = rng.normal(
        0, config.mlp_l2_std, (hidden, 1)).astype(np.float32)
    values["classifier/mlp_l1/biases"] = np.zeros(hidden, np.float32)
    values["classifier/mlp_l2/biases"] = np.zeros(1, np.float32)
    net = checkpoints.new_net(values, _sizes(config), **_net_kwargs(config))
    if values:
        raise ValueError(f"unexpected initial values {sorted(values)}")
    return net


def build_net(config, resume_path=None):
    """The stage's starting `TextObjSegNet` (create it under the strategy's scope).

    Resuming loads the snapshot's weights; otherwise det starts from `convnet_params` and the
    segmentation stages from `pretrained_model` (sizes read from the weights). With
    `mixed_precision` the layers compute in float16, except the feature fusion, whose L2
    normalisation sums 1000 squares and would overflow float16.
    """
    policy = "mixed_float16" if config.mixed_precision else keras.config.dtype_policy().name
    with dtype_policy(policy):
        if resume_path is not None:
            net, _ = checkpoints.load_pretrained(resume_path, kind=config.kind,
                                                 **_net_kwargs(config))
        elif config.kind == "det":
            net = _init_det_net(config)
        elif config.pretrained_model:
            net, _ = checkpoints.load_pretrained(config.pretrained_model, kind=config.kind,
                                                 **_net_kwargs(config))
        else:
            logging.warning("no pretrained_model: the %s model starts from random weights "
                            "(smoke runs only)", config.kind)
            net = TextObjSegNet(**_sizes(config), **_net_kwargs(config))
    if config.mixed_precision:
        net.seg_fusion.dtype_policy = "float32"
        net.region_fusion.dtype_policy = "float32"
    got = {k: getattr(net, k) for k in _sizes(config)}
    if got != _sizes(config):
        logging.warning("model sizes read from the weights: %s (the settings say %s)", got,
                        _sizes(config))
    return net


def _scale_grad(grad, factor):
    if isinstance(grad, tf.IndexedSlices):
        return tf.IndexedSlices(grad.values * factor, grad.indices, grad.dense_shape)
    return grad * factor


def _all_finite(grads):
    checks = [tf.reduce_all(tf.math.is_finite(g.values if isinstance(g, tf.IndexedSlices)
                                              else g)) for g in grads]
    return tf.reduce_all(tf.stack(checks))


def _sum_over_replicas(ctx, grads):
    """Sums the replicas' gradients. Sparse (IndexedSlices) ones are gathered, not summed:
    `all_reduce` would densify them and the momentum update would then move every row."""
    dense = [i for i, g in enumerate(grads) if not isinstance(g, tf.IndexedSlices)]
    out = list(grads)
    for i, g in zip(dense, ctx.all_reduce(tf.distribute.ReduceOp.SUM, [grads[i] for i in dense]),
                    strict=True):
        out[i] = g
    for i, g in enumerate(grads):
        if isinstance(g, tf.IndexedSlices):
            out[i] = tf.IndexedSlices(ctx.all_gather(g.values, axis=0),
                                      ctx.all_gather(g.indices, axis=0), g.dense_shape)
    return out


def _accuracy_counts(scores, labels):
    """[correct, total, correct pos, pos, correct neg, neg] as float32 (compute_accuracy's)."""
    is_pos = tf.not_equal(labels, 0)
    is_correct = tf.math.logical_xor(scores < 0, is_pos)
    is_neg = tf.logical_not(is_pos)

    def count(x):
        return tf.reduce_sum(tf.cast(x, tf.float32))

    return tf.stack([count(is_correct), tf.cast(tf.size(labels), tf.float32),
                     count(is_correct & is_pos), count(is_pos),
                     count(is_correct & is_neg), count(is_neg)])


class Trainer:
    """The model, the trained / decayed variables, the TF1 momentum solver and the step.

    Args:
      config: a `TrainConfig`.
      net: a `TextObjSegNet` made under `strategy.scope()`; default `build_net(config,
        resume_path)` (resume_path: a snapshot to start from).
      strategy: a `tf.distribute` strategy; default `make_strategy(config.strategy)`.
      feature_cache: a `FeatureCache` to share between trainers (with `cache_features`);
        default a new one of `feature_cache_mb`. Entries are keyed by the VGG weights as
        they are when the trainer is made.
    """

    def __init__(self, config, net=None, strategy=None, resume_path=None, feature_cache=None):
        self.config = config
        self.kind = config.kind
        self.strategy = strategy if strategy is not None else make_strategy(config.strategy)
        self.distributed = is_distributed(self.strategy)
        replicas = self.strategy.num_replicas_in_sync
        if config.N % replicas:
            raise ValueError(f"the batch size N={config.N} must be a multiple of the "
                             f"{replicas} replicas")
        environment.check_deconv_backprop(
            self.kind, config.input_H, config.input_W, config.N // replicas,
            on_gpu=bool(tf.config.list_logical_devices("GPU")))
        with self.strategy.scope():
            self.net = net if net is not None else build_net(config, resume_path)
            if config.cache_features:
                if self.distributed:
                    raise ValueError("cache_features runs on one device only")
                if self.net.vgg_dropout:
                    raise ValueError("cache_features needs a net without VGG dropout")
                self.model = self.net.features_model(self.kind, config.input_H,
                                                     config.input_W, config.T)
            else:
                self.model = self.net.model(self.kind, config.input_H, config.input_W,
                                            config.T)
            self.selection = select_variables(
                self.net, self.kind, config.fix_convnet, config.decay_lstm_matrix,
                config.vgg_lr_mult, config.train_vgg_conv)
            self.optimizer = TF1Momentum(self.selection.train, config.momentum)
            self.loss_scale = DynamicLossScale() if config.mixed_precision else None
        self._names = list(self.selection.train)
        self._train_vars = [self.selection.train[n].value for n in self._names]
        self._decay_vars = [v.value for v in self.selection.decay.values()]
        self._shapes = batch_shapes(config)
        self._keys = list(self._shapes)
        # No Python control flow depends on tensors here (the LSTM's loop is over a static T),
        # so autograph is off: it would only spend seconds transpiling the model's layers.
        self._grad_fn = tf.function(self._forward_backward, jit_compile=config.jit_compile,
                                    autograph=False)
        self._step_fn = tf.function(self._distributed_step if self.distributed
                                    else self._replica_step, autograph=False)
        self.feature_cache = None
        if config.cache_features:
            self.feature_cache = (feature_cache if feature_cache is not None
                                  else FeatureCache(config.feature_cache_mb * 2**20))
            # Taken once: the VGG must stay as it is while this trainer runs (it does: no
            # VGG variable is trained). The kind keeps crops and full images apart.
            self._vgg_fingerprint = f"{vgg_fingerprint(self.net)}:{self.kind}"
            encoder = (self.net.crop_encoder_model() if self.kind == "det" else
                       self.net.image_encoder_model(config.input_H, config.input_W))
            # Eager: it runs once per distinct batch, and a tf.function per trainer would
            # only be traced again for each stage.
            self._encode_fn = lambda image: encoder(_mean_subtracted(image), training=False)
        self._finite_fn = tf.function(
            lambda: tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(v))
                                            for v in self._train_vars])), autograph=False)

    # ---- the step ----

    def _forward_backward(self, text, image, labels, spatial, scale):
        """Scores, the original's losses and the gradients of the trained variables."""
        c = self.config
        replicas = self.strategy.num_replicas_in_sync
        if not c.cache_features:  # else `image` holds the batch's cached fc8 features
            image = _mean_subtracted(image)
        labels = tf.cast(labels, tf.float32)
        inputs = [tf.cast(text, tf.int32), image]
        if spatial is not None:
            inputs.append(tf.cast(spatial, tf.float32))
        with tf.GradientTape() as tape:
            scores = tf.cast(self.model(inputs, training=True), tf.float32)
            cls_loss = loss_lib.weighed_logistic_loss(scores, labels, c.pos_loss_mult,
                                                      c.neg_loss_mult)
            reg_loss = loss_lib.l2_regularization_loss(self._decay_vars, c.weight_decay)
            if replicas > 1:
                # Each replica's share of the global-batch mean; the summed gradients then
                # equal one device's on the whole batch.
                cls_loss = cls_loss * (tf.cast(tf.shape(scores)[0], tf.float32) / c.N)
                reg_loss = reg_loss / replicas
            total = cls_loss + reg_loss
            target = total if scale is None else total * scale
        grads = tape.gradient(target, self._train_vars)
        return cls_loss, _accuracy_counts(scores, labels), grads

    def _replica_step(self, n_iter, text, image, labels, spatial=None):
        c = self.config
        lr = staircase_learning_rate(n_iter, c.start_lr, c.lr_decay_step, c.lr_decay_rate)
        scale = self.loss_scale.scale.read_value() if self.loss_scale else None
        cls_loss, counts, grads = self._grad_fn(text, image, labels, spatial, scale)
        ctx = tf.distribute.get_replica_context()
        if self.distributed:
            grads = _sum_over_replicas(ctx, grads)
        apply_if = None
        if self.loss_scale is not None:
            grads = [_scale_grad(g, 1.0 / scale) for g in grads]
            apply_if = _all_finite(grads)
            self.loss_scale.update(apply_if)
        named = {}
        for name, grad in zip(self._names, grads, strict=True):
            mult = self.selection.lr_mult[name]
            # The original multiplied the whole gradient (decay term included).
            named[name] = grad if mult == 1 else _scale_grad(grad, mult)
        self.optimizer.apply_gradients(named, lr, apply_if=apply_if)
        stats = tf.concat([tf.reshape(cls_loss, [1]), counts], axis=0)
        if self.distributed:
            stats = ctx.all_reduce(tf.distribute.ReduceOp.SUM, stats)
        return stats, lr

    def _distributed_step(self, n_iter, *inputs):
        return self.strategy.run(self._replica_step, args=(n_iter, *inputs))

    def _check_batch(self, batch):
        for key, shape in self._shapes.items():
            if key not in batch:
                raise ValueError(f"the batch has no {key!r} (keys: {sorted(batch)}); a "
                                 f"{self.kind} stage reads {self._keys}")
            got = tuple(np.shape(batch[key]))
            if got != tuple(shape):
                raise ValueError(f"batch {key} has shape {got}, the {self.kind} settings "
                                 f"(T, N, input_H, input_W) expect {tuple(shape)}")
        text = np.asarray(batch["text_seq_batch"])
        if text.size and (text.min() < 0 or text.max() >= self.net.num_vocab):
            raise ValueError(f"batch text_seq_batch has word ids outside [0, "
                             f"{self.net.num_vocab}) (the model's num_vocab)")

    def _visual_input(self, images):
        """The batch's images, or with `cache_features` their (cached) fc8 features."""
        if self.feature_cache is None:
            return images
        key = self.feature_cache.key(self._vgg_fingerprint, images)
        return self.feature_cache.get_or_compute(key, lambda: self._encode_fn(images).numpy())

    def _inputs(self, batch):
        arrays = [batch["text_seq_batch"], self._visual_input(batch["imcrop_batch"]),
                  batch[LABEL_KEYS[self.kind]]]
        if self.kind == "det":
            arrays.append(batch["spatial_batch"])
        if not self.distributed:
            return arrays
        per = self.config.N // self.strategy.num_replicas_in_sync

        def shard(i, array):
            def value_fn(ctx):
                lo = ctx.replica_id_in_sync_group * per
                # text is time-major [T, N]: its batch axis is the second.
                return tf.constant(array[:, lo:lo + per] if i == 0 else array[lo:lo + per])

            return self.strategy.experimental_distribute_values_from_function(value_fn)

        return [shard(i, a) for i, a in enumerate(arrays)]

    def step(self, n_iter, batch):
        """Runs iteration `n_iter` (0-based; sets the learning rate) on `batch`.

        Returns `{cls_loss, accuracy_all, accuracy_pos, accuracy_neg, lr}` (Python floats).
        """
        self._check_batch(batch)
        n_iter = tf.constant(n_iter, tf.int64)
        stats, lr = self._step_fn(n_iter, *self._inputs(batch))
        if self.distributed:
            stats = self.strategy.experimental_local_results(stats)[0]
            lr = self.strategy.experimental_local_results(lr)[0]
        s = stats.numpy().astype(np.float64)
        acc_all, acc_pos, acc_neg = metrics.accuracies(*s[1:])
        return {"cls_loss": float(s[0]), "accuracy_all": float(acc_all),
                "accuracy_pos": float(acc_pos), "accuracy_neg": float(acc_neg),
                "lr": float(lr.numpy())}

    # ---- state ----

    def weights_finite(self):
        """True when every trained variable is finite (checked before each snapshot)."""
        return bool(self._finite_fn())

    def _seed_states(self):
        layers = [self.net.vgg.drop6, self.net.vgg.drop7, self.net.mlp_drop]
        return {layer.name: layer.seed_generator.state for layer in layers if layer is not None}

    def get_state(self):
        """`(accumulators, arrays)`: the solver's slots and the other state arrays (loss
        scale, dropout RNG states) as numpy."""
        arrays = {f"rng/{name}": np.asarray(_first(state))
                  for name, state in self._seed_states().items()}
        if self.loss_scale is not None:
            arrays.update(self.loss_scale.get_state())
        return self.optimizer.get_state(), arrays

    def set_state(self, accumulators, arrays):
        self.optimizer.set_state(accumulators)
        for name, state in self._seed_states().items():
            if f"rng/{name}" in arrays:
                state.assign(arrays[f"rng/{name}"])
        if self.loss_scale is not None:
            self.loss_scale.set_state(arrays)


def _mean_subtracted(image):
    # The original fed `imcrop.astype(float32) - channel_mean`.
    return tf.cast(image, tf.float32) - tf.constant(vgg_net.channel_mean)


def _first(variable):
    value = getattr(variable, "value", variable)
    values = getattr(value, "values", None)
    return (values[0] if values else value).numpy()
