"""Segmentation evaluation speed: the original's per-query loop against the batched path.

The paths evaluate the same synthetic images (ReferIt's test set has ~6 queries per image:
60,105 queries on 9,994 images) with the full-size model (random weights), side by side in one
run (image by image, the variants in rotating order), after a warm-up image (tracing and XLA
compilation are not timed):

* per query (`batch_queries=False`): the original's loop, the whole network per query;
* VGG once per image, each query alone through the classifier and upsampling
  (`query_batch_size=1`, the default: bit-identical predictions);
* VGG once per image, `--query_batch_size` queries per classifier call (rounds differently).

Prints queries/s of each, the ratios to the per-query loop, and whether the figures agree.

    python benchmarks/bench_eval.py            # 20 images, 512x512 input
    python benchmarks/bench_eval.py --quick    # 3 images
"""

import json
import os
import tempfile
import time

from absl import app, flags

from text_objseg_tf2 import flags as tos_flags

flags.DEFINE_bool("quick", False, "A short run: 3 images.")
flags.DEFINE_integer("num_images", 20, "Synthetic test images (--quick: 3).")
flags.DEFINE_integer("input_size", 512, "Network input height and width.")
flags.DEFINE_integer("min_image_size", 300, "Smallest image side (ReferIt's are ~360x480).")
flags.DEFINE_integer("max_image_size", 480, "Largest image side.")
flags.DEFINE_bool("jit_compile", True, "XLA-compile the image encoder (both paths).")
flags.DEFINE_integer("query_batch_size", 32, "Queries per call in the third run.")
flags.DEFINE_bool("allow_tf32", False, "Allow TensorFloat-32 on Ampere+ GPUs.")
tos_flags.define_gpu_flag()
flags.adopt_module_key_flags(tos_flags)  # list them in --help

FLAGS = flags.FLAGS


def main(argv):
    del argv
    tos_flags.apply_gpu_flag(FLAGS.gpu_id)
    import keras
    import tensorflow as tf

    from text_objseg_tf2 import evaluation
    from text_objseg_tf2.models.text_objseg_model import TextObjSegNet
    from text_objseg_tf2.synthetic_referit import make_synthetic_referit

    tf.config.experimental.enable_tensor_float_32_execution(FLAGS.allow_tf32)
    num_images = 3 if FLAGS.quick else FLAGS.num_images
    with tempfile.TemporaryDirectory() as root:
        # 2-3 shapes with 2-3 expressions each: ~6 queries per image, as ReferIt's test set.
        summary = make_synthetic_referit(
            root, num_train_images=0, num_test_images=num_images, seed=0,
            image_size=(FLAGS.min_image_size, FLAGS.max_image_size), min_objects=2,
            max_objects=3, queries_per_object=(2, 3), progress=False)
        data = dict(image_dir=summary["image_dir"], mask_dir=summary["mask_dir"],
                    query_file=summary["test_query_file"], bbox_file=summary["bbox_file"],
                    imcrop_file=summary["imcrop_file"], imsize_file=summary["imsize_file"],
                    vocab_file=summary["vocab_file"])
        keras.utils.set_random_seed(0)
        net = TextObjSegNet()  # the paper's sizes, random weights
        common = dict(**data, input_H=FLAGS.input_size, input_W=FLAGS.input_size,
                      jit_compile=FLAGS.jit_compile, progress=False)
        variants = {
            "per query (original loop)": dict(batch_queries=False),
            "VGG once, 1 query/call": dict(batch_queries=True, query_batch_size=1),
            f"VGG once, {FLAGS.query_batch_size} queries/call": dict(
                batch_queries=True, query_batch_size=FLAGS.query_batch_size),
        }
        # Warm-up on one image: traces the functions (shared by all variants, batch size
        # dynamic) and compiles XLA.
        evaluation.evaluate_seg(net, max_images=1, **common)
        # Image by image, the variants in rotating order: load changes on a shared machine
        # then hit every variant alike.
        queries = json.loads(open(data["query_file"]).read())
        images = list(dict.fromkeys(k.split("_", 1)[0] for k in queries))[:num_images]
        runs = {name: ([], 0.0) for name in variants}
        for n, image in enumerate(images):
            one = os.path.join(root, f"query_{image}.json")
            with open(one, "w") as f:
                json.dump({k: v for k, v in queries.items() if k.split("_", 1)[0] == image}, f)
            names = list(variants)
            for name in names[n % len(names):] + names[:n % len(names)]:
                start = time.perf_counter()
                results = evaluation.evaluate_seg(net, **variants[name],
                                                  **dict(common, query_file=one))
                records, seconds = runs[name]
                runs[name] = (records + results["per_query"],
                              seconds + time.perf_counter() - start)

    gpus = tf.config.list_physical_devices("GPU")
    device = (tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
              if gpus else f"CPU ({os.cpu_count()} cores)")
    base_records, base_seconds = runs["per query (original loop)"]
    print(f"device: {device}; TF {tf.__version__}; input {FLAGS.input_size}x{FLAGS.input_size}; "
          f"jit_compile={FLAGS.jit_compile}; {len(images)} images, {len(base_records)} queries "
          f"({len(base_records) / len(images):.1f} per image)")
    base_rate = len(base_records) / base_seconds
    for name, (records, seconds) in runs.items():
        figures = evaluation.seg_metrics([r["I"] for r in records], [r["U"] for r in records])
        rate = len(records) / seconds
        print(f"{name:>28}: {rate:8.3f} queries/s ({seconds:7.1f} s)  x{rate / base_rate:5.2f}  "
              f"overall IoU {figures['overall IoU']:.6f}  "
              f"same per-query I, U as per query: {records == base_records}")


if __name__ == "__main__":
    app.run(main)
