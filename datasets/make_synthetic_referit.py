"""Write the built-in synthetic mini-ReferIt in the release's file layout.

    python datasets/make_synthetic_referit.py --output_dir=/tmp/mini-referit
        --num_train_images=200 --num_test_images=50 --seed=0

The output folder holds images/, mask/, referit_edgeboxes_top100/ and the exp-referit/data
annotation files; point the experiment scripts' --image_dir, --mask_dir, --query_file, ...
flags at it. See text_objseg_tf2/synthetic_referit.py for the scene and expression design.
"""

import json
import sys

from absl import app, flags

from text_objseg_tf2.synthetic_referit import make_synthetic_referit

flags.DEFINE_string("output_dir", "./exp-referit/data/synthetic-referit/",
                    "Folder to write the dataset to (created).")
flags.DEFINE_integer("num_train_images", 200, "Images in the trainval split.")
flags.DEFINE_integer("num_test_images", 50, "Images in the test split.")
flags.DEFINE_integer("seed", 0, "Random seed; the same seed gives the same bytes.")
flags.DEFINE_integer("min_image_size", 96, "Smallest image side in pixels.")
flags.DEFINE_integer("max_image_size", 200, "Largest image side in pixels.")
flags.DEFINE_float("max_aspect", 1.5, "Largest long/short side ratio of an image.")
flags.DEFINE_integer("min_objects", 2, "Fewest shapes per image (1-4).")
flags.DEFINE_integer("max_objects", 4, "Most shapes per image (1-4).")
flags.DEFINE_float("big_scale_min", 0.40, "Smallest side of a big shape (x image short side).")
flags.DEFINE_float("big_scale_max", 0.48, "Largest side of a big shape (x image short side).")
flags.DEFINE_float("small_scale_min", 0.24, "Smallest side of a small shape (x short side).")
flags.DEFINE_float("small_scale_max", 0.30, "Largest side of a small shape (x short side).")
flags.DEFINE_integer("min_queries_per_object", 2, "Fewest expressions per shape.")
flags.DEFINE_integer("max_queries_per_object", 4, "Most expressions per shape.")
flags.DEFINE_float("greyscale_fraction", 0.05, "Fraction of images saved as greyscale.")
flags.DEFINE_integer("num_proposals", 100, "Most proposal boxes per image.")
flags.DEFINE_integer("jpeg_quality", 90, "JPEG quality of the images.")
flags.DEFINE_float("val_fraction", 0.1, "Fraction of trainval images in the val sub-split.")

FLAGS = flags.FLAGS


def main(argv):
    del argv
    try:
        summary = make_synthetic_referit(
            FLAGS.output_dir,
            num_train_images=FLAGS.num_train_images,
            num_test_images=FLAGS.num_test_images,
            seed=FLAGS.seed,
            image_size=(FLAGS.min_image_size, FLAGS.max_image_size),
            max_aspect=FLAGS.max_aspect,
            min_objects=FLAGS.min_objects,
            max_objects=FLAGS.max_objects,
            big_scale=(FLAGS.big_scale_min, FLAGS.big_scale_max),
            small_scale=(FLAGS.small_scale_min, FLAGS.small_scale_max),
            queries_per_object=(FLAGS.min_queries_per_object, FLAGS.max_queries_per_object),
            greyscale_fraction=FLAGS.greyscale_fraction,
            num_proposals=FLAGS.num_proposals,
            jpeg_quality=FLAGS.jpeg_quality,
            val_fraction=FLAGS.val_fraction,
        )
    except ValueError as e:
        sys.exit(f"error: {e}")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    app.run(main)
