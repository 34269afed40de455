"""The whole pipeline in one command: data, batches, the three training stages with their init
steps, evaluation, SavedModel export and the demo, under --work_dir.

    python exp-referit/run_pipeline.py --synthetic          # built-in mini-ReferIt, < 10 min
    python exp-referit/run_pipeline.py --work_dir=runs/referit  # the paper's settings

A step whose output exists is skipped (--force redoes everything). With --synthetic the run
proves learning: it prints its overall IoU and precision@0.5 beside the whole-image prediction
and a text-blind control, writes them to <work_dir>/results.json, and exits non-zero unless the
model beats both by --min_margin.
"""

import dataclasses
import logging
import sys

from absl import app, flags

from text_objseg_tf2 import pipeline
from text_objseg_tf2.training import environment

_DEFAULTS = pipeline.PipelineSettings(work_dir="")
_HELP = {
    "synthetic": "Run on the built-in synthetic mini-ReferIt at reduced sizes (the run says "
                 "what is scaled down) and check that the model learns.",
    "work_dir": "Folder of every output (data, batches, weights, evaluation, SavedModel, demo).",
    "force": "Redo every step, even those whose outputs exist.",
    "num_train_images": "Synthetic: trainval images.",
    "num_test_images": "Synthetic: test images.",
    "num_proposals": "Synthetic: EdgeBox-style proposals per image.",
    "background_clutter": "Synthetic: background texture (0: flat grey; 1: tinted blotches, "
                          "lines and noise).",
    "seed": "Seed of the synthetic data and of training.",
    "image_dir": "Real data: ReferIt images.",
    "mask_dir": "Real data: ReferIt masks.",
    "data_dir": "Real data: folder of the annotation files and proposals (exp-referit/data).",
    "convnet_params": "Real data: VGG-16 parameters the det stage starts from (--synthetic "
                      "writes and uses a hand-set colour stand-in instead).",
    "T": "Words per expression.",
    "input_H": "Segmentation input height (multiple of 32).",
    "input_W": "Segmentation input width (multiple of 32).",
    "embed_dim": "Word embedding size.",
    "lstm_dim": "LSTM size.",
    "mlp_hidden_dims": "Classifier hidden size.",
    "det_N": "Det batch size.",
    "seg_N": "Segmentation batch size.",
    "det_max_iter": "Det training iterations.",
    "lowres_max_iter": "Low-res training iterations.",
    "highres_max_iter": "High-res training iterations.",
    "det_lr_decay_step": "Det learning-rate decay step.",
    "lowres_lr_decay_step": "Low-res learning-rate decay step.",
    "highres_lr_decay_step": "High-res learning-rate decay step.",
    "start_lr": "Initial learning rate of every stage.",
    "seg_fix_convnet": "Segmentation stages: keep all of VGG fixed (the original trains "
                       "fc6-fc8 there).",
    "cache_features": "Compute each batch's VGG features once and reuse them (needs a fixed "
                      "VGG in every stage; the same update up to float rounding, far cheaper "
                      "steps).",
    "feature_cache_mb": "Memory for --cache_features, in MB.",
    "det_max_batches": "Build only this many det batch files (0: all of them).",
    "num_workers": "Batch-building processes.",
    "eval_max_images": "Evaluate segmentation on the first K test images only (0: all).",
    "det_eval_max_images": "Evaluate detection on the first K test images only (0: all).",
    "text_blind_control": "Also train and evaluate the text-blind control.",
    "min_margin": "Synthetic: overall IoU must beat both controls by this much.",
    "jit_compile": "XLA-compile the image encoder in evaluation and in the SavedModel.",
}


def _define_flags():
    for field in dataclasses.fields(pipeline.PipelineSettings):
        name, default = field.name, getattr(_DEFAULTS, field.name)
        helptext = _HELP[name]
        if name == "work_dir":
            flags.DEFINE_string(name, "./runs/pipeline", helptext)
        elif name == "synthetic":
            flags.DEFINE_bool(name, False, helptext)
        else:
            synthetic = (f"; --synthetic: {pipeline.SYNTHETIC_OVERRIDES[name]}"
                         if name in pipeline.SYNTHETIC_OVERRIDES else "")
            helptext += f" (default {default}{synthetic})"
            if isinstance(default, bool):
                flags.DEFINE_bool(name, None, helptext)
            elif isinstance(default, int):
                flags.DEFINE_integer(name, None, helptext)
            elif isinstance(default, float):
                flags.DEFINE_float(name, None, helptext)
            else:
                flags.DEFINE_string(name, None, helptext)


_define_flags()
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    given = {f.name: FLAGS[f.name].value for f in dataclasses.fields(pipeline.PipelineSettings)
             if f.name not in ("work_dir", "synthetic") and FLAGS[f.name].value is not None}
    synthetic = bool(FLAGS.synthetic)
    if synthetic:
        settings = pipeline.synthetic_settings(FLAGS.work_dir, **given)
        print("--synthetic: scaled down from the paper's settings:")
        print("\n".join(pipeline.scaled_down_lines(settings)))
    else:
        settings = pipeline.PipelineSettings(work_dir=FLAGS.work_dir, synthetic=False, **given)
    # Before TensorFlow is imported: its oneDNN CPU kernels can abort on the high-res
    # upsampling gradient (see training/environment.py), as the high-res script does.
    environment.prepare("seg_highres")
    try:
        results = pipeline.run_pipeline(settings)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    print(f"results written to {settings.work_dir}/results.json "
          f"({results['seconds']:.0f} s)")
    print(pipeline.results_table(results))
    if synthetic:
        try:
            pipeline.check_learning(results, settings.min_margin)
        except pipeline.LearningCheckError as e:
            raise SystemExit(f"learning check FAILED: {e}") from None
        print(f"learning check passed: the model beats both controls by >= "
              f"{settings.min_margin}")


if __name__ == "__main__":
    app.run(main)
