"""Seconds per training step with a fixed VGG: recomputing its features every step (the
original) vs `--cache_features` (computed once per distinct batch), side by side in one run.

Both trainers share one network and read the same batch; after a warm-up (tracing, and the
cache's one miss) their steps alternate A, B, A, B, ... and the median of each is kept. The
updates are the same (tests/test_training.py checks cached steps against the TF1
re-expression); only the cost differs.

    python benchmarks/bench_feature_cache.py                 # 192x192, N=10 (the synthetic run)
    python benchmarks/bench_feature_cache.py --size=512      # the paper's input size
"""

import os
import statistics
import time

from absl import app, flags

flags.DEFINE_enum("stage", "seg_lowres", ["seg_lowres", "seg_highres"], "Stage to time.")
flags.DEFINE_integer("size", 192, "input_H = input_W.")
flags.DEFINE_integer("N", 10, "Batch size.")
flags.DEFINE_integer("steps", 5, "Timed steps of each variant (after warm-up).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from text_objseg_tf2.training import environment

    environment.prepare("seg_highres")  # as run_pipeline.py (the oneDNN gradient bug)
    import numpy as np
    import tensorflow as tf

    from text_objseg_tf2.models.text_objseg_model import TextObjSegNet
    from text_objseg_tf2.training import config as config_lib
    from text_objseg_tf2.training.trainer import Trainer

    sizes = dict(num_vocab=100, embed_dim=64, lstm_dim=64, mlp_hidden_dims=64)
    N, H, T = FLAGS.N, FLAGS.size, 20
    net = TextObjSegNet(**sizes)
    trainers = {
        name: Trainer(config_lib.stage_config(FLAGS.stage, T=T, N=N, input_H=H, input_W=H,
                                              fix_convnet=True, cache_features=cache, **sizes),
                      net=net)
        for name, cache in (("recompute", False), ("cached", True))}
    rng = np.random.default_rng(0)
    label_key = "label_coarse_batch" if FLAGS.stage == "seg_lowres" else "label_fine_batch"
    label_shape = (N, H // 32, H // 32, 1) if FLAGS.stage == "seg_lowres" else (N, H, H, 1)
    batch = {"text_seq_batch": rng.integers(0, sizes["num_vocab"], (T, N)).astype(np.int32),
             "imcrop_batch": rng.integers(0, 256, (N, H, H, 3)).astype(np.uint8),
             label_key: rng.random(label_shape) < 0.2}

    print(f"device: {[d.name for d in tf.config.list_logical_devices()]}, "
          f"{os.cpu_count()} CPU cores, oneDNN {'on' if environment.onednn_enabled() else 'off'}")
    print(f"stage {FLAGS.stage}: {H}x{H} images, N={N}, T={T}, text sizes {sizes}, VGG fixed")
    start = time.perf_counter()
    trainers["cached"].step(0, batch)  # traces, and computes the features once (the miss)
    first = time.perf_counter() - start
    trainers["recompute"].step(0, batch)
    times = {name: [] for name in trainers}
    for i in range(FLAGS.steps):
        for name, trainer in trainers.items():
            start = time.perf_counter()
            trainer.step(i + 1, batch)
            times[name].append(time.perf_counter() - start)
    med = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"{name:<10}: {med[name]:.4f} s/step (median of {FLAGS.steps}; all "
              f"{', '.join(f'{x:.4f}' for x in t)})")
    print(f"cached first step (trace + features): {first:.2f} s")
    print(f"speed-up per step after the first epoch: {med['recompute'] / med['cached']:.0f}x")


if __name__ == "__main__":
    app.run(main)
