"""Serving speed: the exported SavedModel against the release's per-query loop, side by side.

Baseline ("keras"): what exp_test_referit_seg.py did per query, here `predict.predict`: numpy
preprocessing of the image and the sentence, then the full high-res Keras model (VGG included)
for every query. Served ("saved_model"): one `serving_default` call per image with all its
queries (in-graph preprocessing, image features once, XLA per `--jit_compile`), loaded from the
SavedModel in this process. Both give masks at the image's size. Measurements alternate
between the two, `--repeats` times; the table shows the median (and min) ms per query.

    python benchmarks/bench_serving.py                       # random weights, paper sizes
    python benchmarks/bench_serving.py --pretrained_model=... --vocab_file=... --image=...

Goal (issue 7): >= 1.3x at 1 query per image, >= 5x at 6.
"""

import os
import shutil
import statistics
import tempfile
import time

from absl import app, flags

QUERIES = ["sky above the bridge", "man on the left", "water", "the red car", "tree right",
           "building in the middle", "bottom left corner", "people", "clouds", "grass",
           "the boat", "road", "second window from the top", "any mountain", "sand", "dog"]

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("pretrained_model", None, "Segmentation weights; default: random "
                        "weights at the paper's sizes (speed does not depend on the values).")
    flags.DEFINE_string("vocab_file", "./exp-referit/data/vocabulary_referit.txt",
                        "Vocabulary; if absent with random weights, a made-up one of 8803 "
                        "words is used.")
    flags.DEFINE_string("image", None, "Image file; default: a random 375x500 RGB image "
                        "(ReferIt's typical size).")
    flags.DEFINE_list("queries_per_image", ["1", "6"], "Queries per image to measure.")
    flags.DEFINE_integer("repeats", 3, "Measurements per setting (alternating).")
    flags.DEFINE_enum("jit_compile", "auto", ["auto", "true", "false"], "XLA for the export.")
    flags.DEFINE_integer("input_H", 512, "Network input height.")
    flags.DEFINE_integer("input_W", 512, "Network input width.")
    flags.DEFINE_string("export_dir", None, "Where to write the SavedModel (default: a "
                        "temporary folder, removed at the end).")


def _vocab_and_net(tf_random_seed=0):
    from text_objseg_tf2 import checkpoints, predict
    from text_objseg_tf2.util import text_processing

    if FLAGS.pretrained_model:
        vocab = text_processing.load_vocab_dict_from_file(FLAGS.vocab_file)
        return vocab, predict.load_segmentation_net(FLAGS.pretrained_model, vocab,
                                                    FLAGS.vocab_file)
    if os.path.isfile(FLAGS.vocab_file):
        vocab = text_processing.load_vocab_dict_from_file(FLAGS.vocab_file)
    else:
        words = ["<pad>", "<go>", "<eos>", "<unk>"] + sorted({w for q in QUERIES
                                                              for w in q.split()})
        words += [f"word{i}" for i in range(8803 - len(words))]
        vocab = {w: i for i, w in enumerate(words)}
    import keras

    keras.utils.set_random_seed(tf_random_seed)
    net = checkpoints.new_net({}, dict(num_vocab=len(vocab), embed_dim=1000, lstm_dim=1000,
                                       mlp_hidden_dims=500))
    return vocab, net


def _image():
    import numpy as np

    from text_objseg_tf2.util import io

    if FLAGS.image:
        return io.load_image(FLAGS.image)
    rng = np.random.default_rng(0)
    # Smooth random content (blocks) rather than pure noise.
    small = rng.integers(0, 256, (24, 32, 3)).astype(np.uint8)
    return np.kron(small, np.ones((16, 16, 1), np.uint8))[:375, :500]


def main(argv):
    del argv
    import numpy as np
    import tensorflow as tf

    from text_objseg_tf2 import export, predict

    counts = [int(c) for c in FLAGS.queries_per_image]
    if max(counts) > len(QUERIES):
        raise app.UsageError(f"at most {len(QUERIES)} queries per image")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"TensorFlow {tf.__version__}, {cores} CPU cores, GPUs: "
          f"{len(tf.config.list_physical_devices('GPU'))}, TF_ENABLE_ONEDNN_OPTS="
          f"{os.environ.get('TF_ENABLE_ONEDNN_OPTS', '(default)')}, "
          f"XLA={export.resolve_jit_compile(FLAGS.jit_compile)}")
    vocab, net = _vocab_and_net()
    image = _image()
    H, W = FLAGS.input_H, FLAGS.input_W

    tmp = None
    export_dir = FLAGS.export_dir
    if export_dir is None:
        tmp = tempfile.mkdtemp(prefix="bench_serving_")
        export_dir = os.path.join(tmp, "1")
    try:
        start = time.perf_counter()
        export.export_saved_model(net, vocab, export_dir, input_H=H, input_W=W,
                                  jit_compile=FLAGS.jit_compile)
        print(f"export: {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        served = tf.saved_model.load(export_dir).signatures["serving_default"]
        print(f"load: {time.perf_counter() - start:.1f} s")
        image_t = tf.constant(image if image.ndim == 3 else image[:, :, np.newaxis])

        def run_keras(n):
            return [predict.predict(net, vocab, image, q, input_H=H, input_W=W)[1]
                    for q in QUERIES[:n]]

        def run_served(n):
            out = served(image=image_t, query=tf.constant(QUERIES[:n]))
            return out["mask"].numpy()

        # Warm-up (tracing, XLA compilation) and a parity check of the masks.
        for n in counts:
            start = time.perf_counter()
            masks = run_served(n)
            print(f"first call with {n} queries: {time.perf_counter() - start:.1f} s")
        want = run_keras(1)[0]
        got = run_served(1)[0].astype(bool)
        iou = (got & want).sum() / max((got | want).sum(), 1)
        print(f"mask IoU served vs numpy path: {iou:.4f}")

        times = {(kind, n): [] for kind in ("keras", "served") for n in counts}
        for _ in range(FLAGS.repeats):
            for n in counts:
                for kind, fn in (("keras", run_keras), ("served", run_served)):
                    start = time.perf_counter()
                    masks = fn(n)
                    times[kind, n].append((time.perf_counter() - start) / n * 1000)
        del masks
        print(f"\nms per query (median of {FLAGS.repeats}, min in brackets), image "
              f"{image.shape[1]}x{image.shape[0]}, input {W}x{H}")
        print(f"{'queries/image':>13} | {'keras loop':>16} | {'SavedModel':>16} | speed-up")
        for n in counts:
            k, s = times["keras", n], times["served", n]
            ratio = statistics.median(k) / statistics.median(s)
            print(f"{n:>13} | {statistics.median(k):8.0f} ({min(k):5.0f}) | "
                  f"{statistics.median(s):8.0f} ({min(s):5.0f}) | {ratio:6.2f}x "
                  f"(min/min {min(k) / min(s):.2f}x)")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
