"""Batch building with 1 worker vs several, side by side in one run, on a synthetic ReferIt.

Builds the same batches twice (end to end: index, manifest, images, files), checks the files
are byte-identical and prints the speed-up. Goal: >= 1.7x with 2 workers on 2 cores.

    python benchmarks/bench_batch_builder.py --num_images=40 --input_size=512
"""

import os
import resource
import shutil
import tempfile
import time

from absl import app, flags

from text_objseg_tf2 import batch_builders
from text_objseg_tf2.synthetic_referit import make_synthetic_referit

flags.DEFINE_string("kind", "seg", "'seg' or 'det' batches.")
flags.DEFINE_integer("num_images", 40, "Synthetic trainval images.")
flags.DEFINE_integer("input_size", 512, "input_H = input_W of seg batches.")
flags.DEFINE_integer("N", 10, "Samples per batch.")
flags.DEFINE_integer("num_workers", 2, "Workers of the parallel run.")
flags.DEFINE_integer("min_side", 300, "Smallest synthetic image side (ReferIt: ~360).")
flags.DEFINE_integer("max_side", 480, "Largest synthetic image side (ReferIt: ~480).")
flags.DEFINE_integer("repeats", 1, "Alternate the two builds this many times; best time kept "
                     "(fairer on a machine shared with other jobs).")
flags.DEFINE_string("work_dir", None, "Scratch folder (default: a temporary one, removed).")

FLAGS = flags.FLAGS


def _build(kind, info, folder, num_workers):
    kwargs = dict(image_dir=info["image_dir"], query_file=info["query_file"],
                  vocab_file=info["vocab_file"], data_folder=folder, data_prefix="bench",
                  T=20, N=FLAGS.N, num_workers=num_workers, progress=False)
    if kind == "seg":
        kwargs.update(mask_dir=info["mask_dir"], input_H=FLAGS.input_size,
                      input_W=FLAGS.input_size)
    else:
        kwargs.update(bbox_proposal_dir=info["bbox_proposal_dir"], bbox_file=info["bbox_file"],
                      imcrop_file=info["imcrop_file"], imsize_file=info["imsize_file"])
    cpu_self, cpu_children = _cpu()
    start = time.perf_counter()
    report = batch_builders.build_batches(kind, **kwargs)
    seconds = time.perf_counter() - start
    self_after, children_after = _cpu()
    return seconds, (self_after - cpu_self, children_after - cpu_children), report


def _cpu():
    """CPU seconds (user + system) of this process and of its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def _files(folder):
    names = sorted(n for n in os.listdir(folder) if n.endswith(".npz"))
    return {n: open(os.path.join(folder, n), "rb").read() for n in names}


def main(argv):
    del argv
    work = FLAGS.work_dir or tempfile.mkdtemp(prefix="bench_batch_builder_")
    try:
        info = make_synthetic_referit(os.path.join(work, "data"),
                                      num_train_images=FLAGS.num_images, num_test_images=1,
                                      seed=0, image_size=(FLAGS.min_side, FLAGS.max_side),
                                      progress=False)
        load_before = os.getloadavg()[0]
        t1 = tn = float("inf")
        for _ in range(FLAGS.repeats):
            for name in ("w1", "wn"):
                shutil.rmtree(os.path.join(work, name), ignore_errors=True)
            seconds, cpu1, report = _build(FLAGS.kind, info, os.path.join(work, "w1"), 1)
            t1 = min(t1, seconds)
            seconds, cpun, _ = _build(FLAGS.kind, info, os.path.join(work, "wn"),
                                      FLAGS.num_workers)
            tn = min(tn, seconds)
        identical = _files(os.path.join(work, "w1")) == _files(os.path.join(work, "wn"))
        samples = report.num_batches * FLAGS.N
        print(f"{FLAGS.kind} batches: {report.num_batches} x N={FLAGS.N}"
              + (f" at {FLAGS.input_size}x{FLAGS.input_size}" if FLAGS.kind == "seg" else "")
              + f", {FLAGS.num_images} images, {os.cpu_count()} CPUs, load average "
              f"{load_before:.1f} -> {os.getloadavg()[0]:.1f} (other jobs skew the ratio)")
        print(f"best of {FLAGS.repeats}, end to end (index, manifest, images, files)")
        print(f"1 worker : {t1:7.2f} s  ({samples / t1:6.1f} samples/s)")
        print(f"{FLAGS.num_workers} workers: {tn:7.2f} s  ({samples / tn:6.1f} samples/s)")
        print(f"files identical: {identical}")
        print(f"speed-up: {t1 / tn:.2f}x (wall clock)")
        # Contention-free bound from CPU seconds (Amdahl): the parent's own CPU time is the
        # serial part, the workers' CPU time is split over num_workers cores.
        serial, parallel = cpun
        print(f"CPU seconds: 1 worker {sum(cpu1):.2f}; {FLAGS.num_workers} workers: parent "
              f"{serial:.2f} + workers {parallel:.2f}")
        print(f"speed-up on {FLAGS.num_workers} idle cores from CPU seconds: "
              f"{sum(cpu1) / (serial + parallel / FLAGS.num_workers):.2f}x")
        if not identical:
            raise SystemExit("error: the parallel build wrote different files")
    finally:
        if FLAGS.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    app.run(main)
