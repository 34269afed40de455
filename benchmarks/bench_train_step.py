"""Seconds per training step: the training loop's `Trainer.step` vs a plain `tf.function`
re-expression of the same step, side by side in one run, plus the machine's float32 matmul
peak and the step's achieved GFLOP/s (conv / matmul FLOPs counted analytically).

Both run on the same network and batch (numpy in, loss read back out, as in the loop); the
timings alternate A, B, A, B, ... and the median of each is kept. Goal: the loop within 5% of
the plain step.

    python benchmarks/bench_train_step.py            # small: 128x128, N=2, small text dims
    python benchmarks/bench_train_step.py --full     # the paper's: 512x512, N=10, T=20
"""

import os
import statistics
import time

from absl import app, flags

flags.DEFINE_bool("full", False, "The paper's sizes (512x512, N=10, T=20, 8803/1000/1000/500).")
flags.DEFINE_enum("stage", "seg_highres", ["seg_lowres", "seg_highres"], "Stage to time.")
flags.DEFINE_integer("steps", 5, "Timed steps of each variant (after warm-up).")
flags.DEFINE_integer("size", 128, "input_H = input_W without --full.")
flags.DEFINE_integer("N", 2, "Batch size without --full.")
flags.DEFINE_integer("matmul_n", 2048, "Size of the square float32 matmul of the peak test.")
flags.DEFINE_bool("jit_compile", False, "XLA-compile both steps' forward/backward.")
FLAGS = flags.FLAGS


def step_flops(stage, N, H, W, T, embed, lstm, mlp, fix_convnet=False):
    """Multiply-add FLOPs (x2) of one step: the forward of every layer, plus for trained layers
    the weight gradient and (except for the first trained layer, whose input is frozen) the
    input gradient, each costing about one forward."""
    from text_objseg_tf2.models import vgg_net

    fwd_frozen, fwd_trained, first_trained = 0, 0, 0
    h, w = H, W
    for name, k, cin, cout in vgg_net.VGG_CONV_LAYERS:
        fwd_frozen += 2 * N * h * w * k * k * cin * cout
        if name in vgg_net.POOL_AFTER:
            h, w = (h + 1) // 2, (w + 1) // 2
    fc = sum(2 * N * h * w * k * k * cin * cout for _, k, cin, cout in vgg_net.VGG_FC_LAYERS)
    fc6 = 2 * N * h * w * 49 * 512 * 4096
    if fix_convnet:
        fwd_frozen += fc
    else:
        fwd_trained += fc
        first_trained += fc6
    text = T * 2 * N * (embed + lstm) * 4 * lstm
    head = 2 * N * h * w * ((lstm + 1000 + 8) * mlp + mlp)
    if stage == "seg_highres":
        head += 2 * N * h * w * 64 * 64
    fwd_trained += text + head
    return fwd_frozen + fwd_trained + 2 * fwd_trained - first_trained


def matmul_peak(n, repeats=5):
    import tensorflow as tf

    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    mm = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    mm().numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        mm().numpy()
        times.append(time.perf_counter() - start)
    return 2 * n**3 / min(times) / 1e9


def plain_step_fn(trainer, c):
    """The same step written directly: tape, loss, gradients and TF1's momentum kernels
    (the same fused ops the trainer uses), without the trainer's plumbing."""
    import tensorflow as tf

    from text_objseg_tf2.models import vgg_net
    from text_objseg_tf2.util import loss as loss_lib

    sel = trainer.selection
    names = list(sel.train)
    variables = [sel.train[n].value for n in names]
    decay = [sel.decay[n].value for n in sel.decay]
    accums = [tf.Variable(tf.zeros(v.shape), trainable=False) for v in variables]
    mults = [sel.lr_mult[n] for n in names]
    model = trainer.model

    @tf.function(jit_compile=c.jit_compile, autograph=False)
    def grads_fn(text, image, labels):
        image = tf.cast(image, tf.float32) - vgg_net.channel_mean
        labels = tf.cast(labels, tf.float32)
        with tf.GradientTape() as tape:
            scores = model([text, image], training=True)
            cls = loss_lib.weighed_logistic_loss(scores, labels, c.pos_loss_mult,
                                                 c.neg_loss_mult)
            total = cls + loss_lib.l2_regularization_loss(decay, c.weight_decay)
        return cls, tape.gradient(total, variables)

    @tf.function(autograph=False)
    def step(n_iter, text, image, labels):
        lr = c.start_lr * tf.pow(c.lr_decay_rate,
                                 tf.floor(tf.cast(n_iter, tf.float32) / c.lr_decay_step))
        cls, grads = grads_fn(text, image, labels)
        for v, a, g, m in zip(variables, accums, grads, mults, strict=True):
            if isinstance(g, tf.IndexedSlices):
                rows, pos = tf.unique(g.indices)
                g_rows = tf.math.unsorted_segment_sum(g.values * m, pos, tf.shape(rows)[0])
                tf.raw_ops.ResourceSparseApplyMomentum(
                    var=v.handle, accum=a.handle, lr=lr, grad=g_rows, indices=rows,
                    momentum=c.momentum)
            else:
                tf.raw_ops.ResourceApplyMomentum(var=v.handle, accum=a.handle, lr=lr,
                                                 grad=g * m if m != 1 else g,
                                                 momentum=c.momentum)
        return cls

    return step


def main(argv):
    del argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from text_objseg_tf2.training import environment

    environment.prepare(FLAGS.stage)  # the oneDNN deconvolution-gradient bug (CPU)
    import numpy as np
    import tensorflow as tf

    from text_objseg_tf2.models.text_objseg_model import TextObjSegNet
    from text_objseg_tf2.training import config as config_lib
    from text_objseg_tf2.training.trainer import Trainer

    if FLAGS.full:
        sizes = dict(num_vocab=8803, embed_dim=1000, lstm_dim=1000, mlp_hidden_dims=500)
        N, H, T = 10, 512, 20
    else:
        sizes = dict(num_vocab=100, embed_dim=50, lstm_dim=50, mlp_hidden_dims=50)
        N, H, T = FLAGS.N, FLAGS.size, 20
    c = config_lib.stage_config(FLAGS.stage, T=T, N=N, input_H=H, input_W=H,
                                jit_compile=FLAGS.jit_compile, **sizes)
    trainer = Trainer(c, net=TextObjSegNet(**sizes))
    rng = np.random.default_rng(0)
    label_shape = (N, H // 32, H // 32, 1) if c.stage == "seg_lowres" else (N, H, H, 1)
    batch = {"text_seq_batch": rng.integers(0, sizes["num_vocab"], (T, N)).astype(np.int32),
             "imcrop_batch": rng.integers(0, 256, (N, H, H, 3)).astype(np.uint8),
             ("label_coarse_batch" if c.stage == "seg_lowres" else "label_fine_batch"):
                 rng.random(label_shape) < 0.2}
    labels = batch["label_coarse_batch" if c.stage == "seg_lowres" else "label_fine_batch"]
    plain = plain_step_fn(trainer, c)

    def run_loop(i):
        trainer.step(i, batch)

    def run_plain(i):
        float(plain(tf.constant(i, tf.int64), batch["text_seq_batch"], batch["imcrop_batch"],
                    labels).numpy())

    print(f"device: {[d.name for d in tf.config.list_logical_devices()]}, "
          f"{os.cpu_count()} CPU cores, oneDNN {'on' if environment.onednn_enabled() else 'off'}")
    print(f"stage {c.stage}: {H}x{H} images, N={N}, T={T}, text sizes {sizes}, "
          f"jit_compile={c.jit_compile}")
    for fn in (run_loop, run_plain):  # warm-up (tracing)
        fn(0)
    times = {"loop": [], "plain": []}
    for i in range(FLAGS.steps):
        for name, fn in (("loop", run_loop), ("plain", run_plain)):
            start = time.perf_counter()
            fn(i + 1)
            times[name].append(time.perf_counter() - start)
    loop_s = statistics.median(times["loop"])
    plain_s = statistics.median(times["plain"])
    flops = step_flops(c.stage, N, H, H, T, sizes["embed_dim"], sizes["lstm_dim"],
                       sizes["mlp_hidden_dims"], fix_convnet=c.fix_convnet)
    peak = matmul_peak(FLAGS.matmul_n)
    print(f"training loop step: {loop_s:.3f} s (median of {FLAGS.steps}; all "
          f"{', '.join(f'{t:.3f}' for t in times['loop'])})")
    print(f"plain tf.function : {plain_s:.3f} s (all "
          f"{', '.join(f'{t:.3f}' for t in times['plain'])})")
    print(f"loop / plain      : {loop_s / plain_s:.3f} (goal <= 1.05)")
    print(f"step FLOPs        : {flops / 1e9:.1f} GFLOP -> {flops / loop_s / 1e9:.1f} GFLOP/s")
    print(f"matmul peak       : {peak:.1f} GFLOP/s (float32 {FLAGS.matmul_n}^2 matmul) -> step "
          f"at {100 * flops / loop_s / 1e9 / peak:.0f}% of it")


if __name__ == "__main__":
    app.run(main)
