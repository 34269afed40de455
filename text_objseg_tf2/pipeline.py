"""The whole pipeline of the paper in one call: data → batches → det → low-res → high-res →
evaluation → SavedModel → demo, each step skipped when its output exists.

`run_pipeline(settings)` drives the library functions the experiment scripts call one by one.
With `synthetic=True` it makes the built-in mini-ReferIt, runs every step at reduced sizes (the
settings say which) and proves learning: the trained model must beat, on the synthetic test
split, both the trivial whole-image prediction and a text-blind control (the same training with
every query replaced by an unknown word).
"""

import dataclasses
import logging
import os
import shutil
import time

import numpy as np

from text_objseg_tf2.util import io as io_util

log = logging.getLogger("text_objseg_tf2.pipeline")

# An expression made of one word that no vocabulary holds: it maps to a single `<unk>`.
BLIND_QUERY = "qqqunknownqqq"


@dataclasses.dataclass
class PipelineSettings:
    """Every knob of a pipeline run (the absl app exposes each as a flag)."""

    work_dir: str
    synthetic: bool = True
    force: bool = False
    # Synthetic data.
    num_train_images: int = 60
    num_test_images: int = 20
    num_proposals: int = 30
    background_clutter: float = 1.0
    seed: int = 0
    # Real data (paths of the original layout, used without --synthetic).
    image_dir: str = "./exp-referit/referit-dataset/images/"
    mask_dir: str = "./exp-referit/referit-dataset/mask/"
    data_dir: str = "./exp-referit/data/"
    convnet_params: str = "./models/convert_caffemodel/params/vgg_params.npz"
    # Model and training sizes (defaults: the paper's; `synthetic_settings` scales them down).
    T: int = 20
    input_H: int = 512
    input_W: int = 512
    embed_dim: int = 1000
    lstm_dim: int = 1000
    mlp_hidden_dims: int = 500
    det_N: int = 50
    seg_N: int = 10
    det_max_iter: int = 25000
    lowres_max_iter: int = 30000
    highres_max_iter: int = 18000
    det_lr_decay_step: int = 10000
    lowres_lr_decay_step: int = 10000
    highres_lr_decay_step: int = 6000
    start_lr: float = 0.01
    seg_fix_convnet: bool = False
    cache_features: bool = False
    feature_cache_mb: int = 4096
    det_max_batches: int = 0
    num_workers: int = 2
    eval_max_images: int = 0
    det_eval_max_images: int = 0
    # Learning proof (synthetic).
    text_blind_control: bool = False
    min_margin: float = 0.05
    jit_compile: bool = True

    def __post_init__(self):
        if self.cache_features and not self.seg_fix_convnet:
            raise ValueError("--cache_features needs --seg_fix_convnet (the release trains "
                             "fc6-fc8 in the segmentation stages, so their features change)")


# Settings of `--synthetic`: everything that is scaled down from the paper, and why.
SYNTHETIC_OVERRIDES = dict(
    input_H=192, input_W=192,          # 6x6 feature map instead of 16x16: 7x less VGG work
    embed_dim=64, lstm_dim=64, mlp_hidden_dims=64,  # a vocabulary of a few dozen words
    det_N=10, seg_N=10,
    background_clutter=0.0,            # flat backgrounds: the stand-in VGG sees colour only
    det_max_batches=20,                # 200 of the det samples (224x224 crops are costly)
    det_max_iter=400, lowres_max_iter=3000, highres_max_iter=1000,
    det_lr_decay_step=10000, lowres_lr_decay_step=10000, highres_lr_decay_step=10000,
    start_lr=0.1,                      # at 0.01 the head needs ~8000 low-res steps
    seg_fix_convnet=True,              # the stand-in VGG stays fixed in every stage ...
    cache_features=True,               # ... so its features are computed once per batch
    text_blind_control=True,
    det_eval_max_images=5,             # 224x224 crops of every proposal are the costliest part
    jit_compile=False,                 # XLA's CPU convs are slow on small maps (128x128: 3 s
                                       # vs 0.15 s per image)
)


# Settings this port adds (not in the paper): their reference value is the port's default.
PORT_ONLY_SETTINGS = ("background_clutter", "cache_features", "det_max_batches",
                      "text_blind_control", "det_eval_max_images", "jit_compile")


def synthetic_settings(work_dir, **overrides):
    """`PipelineSettings` of a `--synthetic` run (SYNTHETIC_OVERRIDES, then `overrides`)."""
    values = dict(SYNTHETIC_OVERRIDES)
    values.update(overrides)
    return PipelineSettings(work_dir=work_dir, synthetic=True, **values)


def scaled_down_lines(settings):
    """Human-readable list of what a synthetic run scales down from the paper's settings."""
    paper = PipelineSettings(work_dir="")
    lines = []
    for name in SYNTHETIC_OVERRIDES:
        got, want = getattr(settings, name), getattr(paper, name)
        if got != want:
            if name.endswith(("_max_batches", "_max_images")) and not want:
                want = "all"
            source = "default" if name in PORT_ONLY_SETTINGS else "paper"
            lines.append(f"  {name}: {got} ({source}: {want})")
    lines.append("  VGG-16: a hand-set colour stand-in, data/vgg_params_colour.npz (paper: "
                 "ImageNet weights, vgg_params.npz)")
    return lines


class _Steps:
    """Runs named steps, skipping those whose outputs exist unless `force`."""

    def __init__(self, force):
        self.force = force
        self.timings = {}

    def run(self, name, outputs, fn):
        outputs = [outputs] if isinstance(outputs, str) else list(outputs)
        if not self.force and outputs and all(os.path.exists(p) for p in outputs):
            log.info("[skip] %s: %s exists", name, outputs[0])
            return None
        log.info("[step] %s", name)
        start = time.time()
        result = fn()
        self.timings[name] = round(time.time() - start, 1)
        log.info("[done] %s in %.1f s", name, self.timings[name])
        return result


def _data_paths(settings):
    """The files of the original layout: under `<work_dir>/data` for a synthetic run (with
    the colour stand-in VGG), else where the settings say."""
    if settings.synthetic:
        d = os.path.join(settings.work_dir, "data")
        image_dir, mask_dir = os.path.join(d, "images") + "/", os.path.join(d, "mask") + "/"
        convnet_params = os.path.join(d, "vgg_params_colour.npz")
    else:
        d = settings.data_dir
        image_dir, mask_dir = settings.image_dir, settings.mask_dir
        convnet_params = settings.convnet_params
    return dict(
        image_dir=image_dir, mask_dir=mask_dir, convnet_params=convnet_params,
        bbox_proposal_dir=os.path.join(d, "referit_edgeboxes_top100") + "/",
        trainval_query_file=os.path.join(d, "referit_query_trainval.json"),
        test_query_file=os.path.join(d, "referit_query_test.json"),
        bbox_file=os.path.join(d, "referit_bbox.json"),
        imcrop_file=os.path.join(d, "referit_imcrop.json"),
        imsize_file=os.path.join(d, "referit_imsize.json"),
        vocab_file=os.path.join(d, "vocabulary_referit.txt"))


def _num_vocab(vocab_file):
    from text_objseg_tf2.util import text_processing

    return len(text_processing.load_vocab_dict_from_file(vocab_file))


def _blind_batches(src_folder, src_prefix, dst_folder, blind_ids):
    """Copies batch files with every expression replaced by the blind query's ids."""
    os.makedirs(dst_folder, exist_ok=True)
    n = 0
    while os.path.exists(os.path.join(src_folder, f"{src_prefix}_{n}.npz")):
        dst = os.path.join(dst_folder, f"{src_prefix}_{n}.npz")
        if not os.path.exists(dst):
            with np.load(os.path.join(src_folder, f"{src_prefix}_{n}.npz")) as f:
                arrays = dict(f)
            arrays["text_seq_batch"] = np.tile(blind_ids[:, np.newaxis],
                                               (1, arrays["text_seq_batch"].shape[1]))
            io_util.atomic_savez(dst, **arrays)
        n += 1
    return n


def _blind_query_file(src, dst):
    query_dict = io_util.load_json(src)
    io_util.save_json({k: [BLIND_QUERY] * len(v) for k, v in query_dict.items()}, dst)


def whole_image_baseline(paths, iou_thresholds=(0.5, 0.6, 0.7, 0.8, 0.9)):
    """Overall IoU and precision@t of predicting every pixel of the image for every query."""
    query_dict = io_util.load_json(paths["test_query_file"])
    total_i = total_u = 0
    ious = []
    for imcrop_name, descriptions in query_dict.items():
        mask = io_util.load_referit_gt_mask(os.path.join(paths["mask_dir"], imcrop_name + ".mat"))
        inter, union = int(mask.sum()), int(mask.size)
        for _ in descriptions:
            total_i += inter
            total_u += union
            ious.append(inter / union)
    ious = np.array(ious)
    result = {f"precision@{t}": float(np.mean(ious >= t)) for t in iou_thresholds}
    result["overall IoU"] = total_i / total_u
    return result


class _Training:
    """The three training stages and their init steps under one folder."""

    def __init__(self, settings, paths, folder, batch_dirs, steps, num_vocab, tag,
                 feature_cache=None):
        self.s = settings
        self.feature_cache = feature_cache
        self.paths = paths
        self.folder = folder
        self.batch_dirs = batch_dirs
        self.steps = steps
        self.num_vocab = num_vocab
        self.tag = tag
        os.makedirs(folder, exist_ok=True)

    def path(self, name):
        return os.path.join(self.folder, name)

    def _train(self, stage, **overrides):
        from text_objseg_tf2 import training

        s = self.s
        common = dict(T=s.T, num_vocab=self.num_vocab, embed_dim=s.embed_dim,
                      lstm_dim=s.lstm_dim, mlp_hidden_dims=s.mlp_hidden_dims,
                      start_lr=s.start_lr, seed=s.seed, log_every=100,
                      cache_features=s.cache_features, feature_cache_mb=s.feature_cache_mb,
                      log_dir=os.path.join(self.folder, "tensorboard", stage))
        common.update(overrides)
        return training.train(stage, feature_cache=self.feature_cache, **common)

    def run_all(self):
        from text_objseg_tf2 import init_models

        s = self.s
        det = self.path(f"det_iter_{s.det_max_iter}.weights.h5")
        self.steps.run(f"{self.tag}train det", det, lambda: self._train(
            "det", N=s.det_N, max_iter=s.det_max_iter, lr_decay_step=s.det_lr_decay_step,
            fix_convnet=True, convnet_params=self.paths["convnet_params"],
            data_folder=self.batch_dirs["det"], data_prefix="det",
            snapshot=s.det_max_iter, snapshot_file=self.path("det_iter_%d.weights.h5")))
        lowres = self._seg_stage("seg_lowres", "low-res", det, init_models.init_seg_lowres_from_det,
                                 s.lowres_max_iter, s.lowres_lr_decay_step, "det")
        highres = self._seg_stage("seg_highres", "high-res", lowres,
                                  init_models.init_seg_highres_from_lowres,
                                  s.highres_max_iter, s.highres_lr_decay_step, "low-res")
        return det, highres

    def _seg_stage(self, stage, label, previous, init_fn, max_iter, lr_decay_step,
                   previous_label):
        """Initialises `stage` from the previous stage's weights, then trains it."""
        s = self.s
        init = self.path(f"{stage}_init.weights.h5")
        self.steps.run(f"{self.tag}init {label} from {previous_label}", init,
                       lambda: init_fn(previous, init))
        out = self.path(f"{stage}_iter_{max_iter}.weights.h5")
        self.steps.run(f"{self.tag}train {label}", out, lambda: self._train(
            stage, N=s.seg_N, input_H=s.input_H, input_W=s.input_W, max_iter=max_iter,
            lr_decay_step=lr_decay_step, pretrained_model=init, fix_convnet=s.seg_fix_convnet,
            data_folder=self.batch_dirs["seg"], data_prefix="seg", snapshot=max_iter,
            snapshot_file=self.path(f"{stage}_iter_%d.weights.h5")))
        return out

    def evaluate_seg(self, highres, query_file, name):
        from text_objseg_tf2 import evaluation

        s = self.s
        out = self.path(f"{name}.json")
        self.steps.run(f"{self.tag}evaluate segmentation", out, lambda: evaluation.evaluate_seg(
            highres, image_dir=self.paths["image_dir"], mask_dir=self.paths["mask_dir"],
            query_file=query_file, bbox_file=self.paths["bbox_file"],
            imcrop_file=self.paths["imcrop_file"], imsize_file=self.paths["imsize_file"],
            vocab_file=self.paths["vocab_file"], T=s.T, input_H=s.input_H, input_W=s.input_W,
            jit_compile=s.jit_compile, max_images=s.eval_max_images or None,
            visualize_dir=self.path("visualize") if not self.tag else None, visualize_num=8,
            results_json=out, per_query_csv=self.path(f"{name}_per_query.csv")))
        return io_util.load_json(out)


def _seg_figures(results):
    """(overall IoU, precision@0.5) from an evaluation results dict."""
    metrics = results.get("metrics", results)
    return float(metrics["overall IoU"]), float(metrics["precision@0.5"])


def run_pipeline(settings):
    """Runs every step under `settings.work_dir`; returns the results dict it also writes to
    `<work_dir>/results.json`. Raises `LearningCheckError` when a synthetic run does not learn.
    """
    from text_objseg_tf2 import batch_builders, checkpoints, evaluation, export, vgg_params
    from text_objseg_tf2.training.feature_cache import FeatureCache
    from text_objseg_tf2.util import text_processing

    start = time.time()
    s = settings
    os.makedirs(s.work_dir, exist_ok=True)
    steps = _Steps(s.force)
    paths = _data_paths(s)

    if s.force:
        for name in ("data", "batches", "batches_text_blind", "models", "models_text_blind",
                     "saved_model", "demo"):
            if name != "data" or s.synthetic:
                shutil.rmtree(os.path.join(s.work_dir, name), ignore_errors=True)
    if s.synthetic:
        from text_objseg_tf2.synthetic_referit import make_synthetic_referit

        data_dir = os.path.join(s.work_dir, "data")
        steps.run("make synthetic mini-ReferIt", paths["vocab_file"], lambda: (
            make_synthetic_referit(data_dir, num_train_images=s.num_train_images,
                                   num_test_images=s.num_test_images, seed=s.seed,
                                   num_proposals=s.num_proposals,
                                   background_clutter=s.background_clutter)))
        steps.run("write the colour stand-in VGG-16", paths["convnet_params"], lambda: (
            vgg_params.save_vgg_params_npz(paths["convnet_params"],
                                           *vgg_params.colour_vgg_params(), compressed=True)))
    num_vocab = _num_vocab(paths["vocab_file"])

    batch_dirs = {"det": os.path.join(s.work_dir, "batches", "det"),
                  "seg": os.path.join(s.work_dir, "batches", "seg")}
    # The builders resume by themselves (complete files are kept), so they always run.
    steps.run("build det batches", [], lambda: (
        batch_builders.build_batches(
            "det", image_dir=paths["image_dir"], query_file=paths["trainval_query_file"],
            vocab_file=paths["vocab_file"], data_folder=batch_dirs["det"], data_prefix="det",
            T=s.T, N=s.det_N, bbox_proposal_dir=paths["bbox_proposal_dir"],
            bbox_file=paths["bbox_file"], imcrop_file=paths["imcrop_file"],
            imsize_file=paths["imsize_file"], num_workers=s.num_workers,
            max_batches=s.det_max_batches or None)))
    steps.run("build seg batches", [], lambda: (
        batch_builders.build_batches(
            "seg", image_dir=paths["image_dir"], mask_dir=paths["mask_dir"],
            query_file=paths["trainval_query_file"], vocab_file=paths["vocab_file"],
            data_folder=batch_dirs["seg"], data_prefix="seg", T=s.T, N=s.seg_N,
            input_H=s.input_H, input_W=s.input_W, num_workers=s.num_workers)))

    models_dir = os.path.join(s.work_dir, "models")
    # One cache for every stage and the control: they share the frozen VGG and the images.
    cache = FeatureCache(s.feature_cache_mb * 2**20) if s.cache_features else None
    main = _Training(s, paths, models_dir, batch_dirs, steps, num_vocab, tag="",
                     feature_cache=cache)
    det, highres = main.run_all()

    seg_results = main.evaluate_seg(highres, paths["test_query_file"], "eval_seg")
    det_json = os.path.join(models_dir, "eval_det.json")
    steps.run("evaluate detection", det_json, lambda: evaluation.evaluate_det(
        det, image_dir=paths["image_dir"], bbox_proposal_dir=paths["bbox_proposal_dir"],
        query_file=paths["test_query_file"], bbox_file=paths["bbox_file"],
        imcrop_file=paths["imcrop_file"], imsize_file=paths["imsize_file"],
        vocab_file=paths["vocab_file"], T=s.T, jit_compile=s.jit_compile,
        max_images=s.det_eval_max_images or None, results_json=det_json,
        per_query_csv=os.path.join(models_dir, "eval_det_per_query.csv")))
    det_results = io_util.load_json(det_json)

    vocab_dict = text_processing.load_vocab_dict_from_file(paths["vocab_file"])
    export_dir = os.path.join(s.work_dir, "saved_model")

    def _export():
        net, _ = checkpoints.load_pretrained(highres, kind="seg_highres")
        export.export_saved_model(net, vocab_dict, export_dir, input_H=s.input_H,
                                  input_W=s.input_W, T=s.T, jit_compile=s.jit_compile)
    steps.run("export SavedModel", os.path.join(export_dir, "saved_model.pb"), _export)

    demo = _demo(s, paths, highres, vocab_dict, steps)

    results = {
        "overall_iou": _seg_figures(seg_results)[0],
        "precision_at_0.5": _seg_figures(seg_results)[1],
        "segmentation": seg_results.get("metrics", seg_results),
        "detection": det_results.get("metrics", det_results),
        "demo": demo,
        "saved_model": export_dir,
        "weights": {"det": det, "seg_highres": highres},
    }
    if s.synthetic:
        baseline = whole_image_baseline(paths)
        results["whole_image_overall_iou"] = baseline["overall IoU"]
        results["whole_image_precision_at_0.5"] = baseline["precision@0.5"]
    if s.text_blind_control:
        blind_ids = np.array(text_processing.preprocess_sentence(BLIND_QUERY, vocab_dict, s.T),
                             dtype=np.int32)
        blind_dirs = {k: os.path.join(s.work_dir, "batches_text_blind", k) for k in batch_dirs}
        steps.run("text-blind batches", os.path.join(blind_dirs["seg"], "seg_0.npz"), lambda: [
            _blind_batches(batch_dirs[k], k, blind_dirs[k], blind_ids) for k in batch_dirs])
        blind = _Training(s, paths, os.path.join(s.work_dir, "models_text_blind"), blind_dirs,
                          steps, num_vocab, tag="text-blind: ", feature_cache=cache)
        blind_query = blind.path("referit_query_test_text_blind.json")
        _blind_query_file(paths["test_query_file"], blind_query)
        _, blind_highres = blind.run_all()
        blind_results = blind.evaluate_seg(blind_highres, blind_query, "eval_seg")
        results["text_blind_overall_iou"], results["text_blind_precision_at_0.5"] = (
            _seg_figures(blind_results))
    results["seconds"] = round(time.time() - start, 1)
    results["step_seconds"] = steps.timings
    if s.synthetic:
        results["scaled_down"] = [line.strip() for line in scaled_down_lines(s)]
    io_util.save_json(results, os.path.join(s.work_dir, "results.json"))
    return results


def demo_query(query_dict, synthetic):
    """`(imcrop name, expression)` the demo runs: the first test expression, or for the
    synthetic data the first that names a colour (what the colour stand-in VGG can see)."""
    from text_objseg_tf2.synthetic_referit import COLORS, tokenize

    for imcrop_name in sorted(query_dict):
        for query in query_dict[imcrop_name]:
            if not synthetic or set(tokenize(query)) & set(COLORS):
                return imcrop_name, query
    imcrop_name = sorted(query_dict)[0]
    return imcrop_name, query_dict[imcrop_name][0]


def _demo(s, paths, highres, vocab_dict, steps):
    """Runs `predict` on one test query (`demo_query`); writes the mask, scores and overlay."""
    from PIL import Image

    from text_objseg_tf2 import checkpoints, predict

    imcrop_name, query = demo_query(io_util.load_json(paths["test_query_file"]), s.synthetic)
    image_path = os.path.join(paths["image_dir"], imcrop_name.split("_", 1)[0] + ".jpg")
    demo_dir = os.path.join(s.work_dir, "demo")
    overlay_path = os.path.join(demo_dir, "overlay.png")

    def _run():
        os.makedirs(demo_dir, exist_ok=True)
        net, _ = checkpoints.load_pretrained(highres, kind="seg_highres")
        image = io_util.load_image(image_path)
        scores, mask = predict.predict(net, vocab_dict, image, query, input_H=s.input_H,
                                       input_W=s.input_W, T=s.T)
        np.save(os.path.join(demo_dir, "scores.npy"), scores)
        Image.fromarray(mask.astype(np.uint8) * 255).save(os.path.join(demo_dir, "mask.png"))
        Image.fromarray(predict.overlay(image, mask)).save(overlay_path)
    steps.run("demo", overlay_path, _run)
    return {"image": image_path, "query": query, "overlay": overlay_path}


class LearningCheckError(RuntimeError):
    """The synthetic run did not beat its controls by the required margin."""


def check_learning(results, min_margin):
    """Raises LearningCheckError unless overall IoU beats both controls by `min_margin`."""
    iou = results["overall_iou"]
    failures = []
    for key, name in (("whole_image_overall_iou", "the whole-image prediction"),
                      ("text_blind_overall_iou", "the text-blind control")):
        if key in results and not iou >= results[key] + min_margin:
            failures.append(f"overall IoU {iou:.4f} does not beat {name} "
                            f"({results[key]:.4f}) by {min_margin}")
    if failures:
        raise LearningCheckError("; ".join(failures))


def results_table(results):
    """The side-by-side comparison printed at the end of a synthetic run."""
    rows = [("trained model", results["overall_iou"], results["precision_at_0.5"])]
    if "whole_image_overall_iou" in results:
        rows.append(("whole-image prediction", results["whole_image_overall_iou"],
                     results["whole_image_precision_at_0.5"]))
    if "text_blind_overall_iou" in results:
        rows.append(("text-blind control", results["text_blind_overall_iou"],
                     results["text_blind_precision_at_0.5"]))
    lines = [f"{'':<24}{'overall IoU':>12}{'prec@0.5':>10}"]
    lines += [f"{name:<24}{iou:>12.4f}{p:>10.4f}" for name, iou, p in rows]
    return "\n".join(lines)

