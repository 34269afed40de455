"""Segment the region of one image that a sentence describes (the release's demo notebook as a
command).

    python -m text_objseg_tf2.predict \\
        --pretrained_model=./exp-referit/tfmodel/referit_fc8_seg_highres_iter_18000.tfmodel \\
        --image=demo/38100.jpg --query="sky above the bridge" \\
        --output_mask=mask.png --output_scores=scores.npy --output_overlay=overlay.png

Preprocessing and post-processing are the original evaluation's: the image is resized and
zero-padded into the `input_H x input_W` frame (2016 scikit-image arithmetic), the high-res
scores are thresholded at `score_thresh` (>= 1e-9) and the 0/1 map is mapped back to the image's
size with `resize_and_crop`; a pixel is in the mask where that is non-zero (the evaluation's
`compute_mask_IU` counted it so). A low-res checkpoint is run as the high-res model with the
bilinear upsampling filter (the high-res model's initialisation).
"""

import os
import weakref

import numpy as np
from absl import app, flags

from text_objseg_tf2 import flags as shared_flags

DEFAULT_MODEL = "./exp-referit/tfmodel/referit_fc8_seg_highres_iter_18000.tfmodel"
DEFAULT_VOCAB = "./exp-referit/data/vocabulary_referit.txt"

# Built Keras high-res models per net and input size, so repeated calls do not rebuild them.
_MODELS = weakref.WeakKeyDictionary()


def vocabulary_size(vocab_dict):
    """Rows the vocabulary addresses (its largest index + 1; a file's line count)."""
    if not vocab_dict:
        raise ValueError("the vocabulary is empty")
    return max(vocab_dict.values()) + 1


def check_vocabulary(vocab_dict, num_vocab, vocab_file="the vocabulary"):
    """The vocabulary must address exactly the embedding's rows (else the ids mean other
    words, or index past the table)."""
    size = vocabulary_size(vocab_dict)
    if size != int(num_vocab):
        raise ValueError(f"{vocab_file} has {size} words but the model's word embedding has "
                         f"{num_vocab} rows: use the vocabulary the model was trained with")


def _highres_model(net_or_model, input_H, input_W, T):
    """`(keras model, num_vocab or None, (T, H, W))` for a TextObjSegNet or a built model."""
    from text_objseg_tf2.models.text_objseg_model import TextObjSegNet

    if isinstance(net_or_model, TextObjSegNet):
        cache = _MODELS.setdefault(net_or_model, {})
        key = (int(input_H), int(input_W), int(T))
        if key not in cache:
            cache[key] = net_or_model.highres_model(*key)
        return cache[key], net_or_model.num_vocab, key[2], key[0], key[1]
    model = net_or_model
    inputs = {t.name: t for t in model.inputs}
    if set(inputs) != {"text_seq_batch", "imcrop_batch"}:
        raise ValueError("predict needs a TextObjSegNet or its highres_model(); got a model "
                         f"with inputs {sorted(inputs)}")
    T = int(inputs["text_seq_batch"].shape[0])
    H, W = (int(d) for d in inputs["imcrop_batch"].shape[1:3])
    out_shape = tuple(model.outputs[0].shape[1:3])
    if out_shape != (H, W):
        raise ValueError(f"predict needs the high-res model (scores of the input's size "
                         f"{H}x{W}); this model gives {out_shape[0]}x{out_shape[1]} scores")
    num_vocab = None
    try:
        num_vocab = int(model.get_layer("word_embedding").embedding.shape[0])
    except (ValueError, AttributeError):
        pass
    return model, num_vocab, T, H, W


def predict(net_or_model, vocab_dict, image, query, input_H=512, input_W=512, T=20,
            score_thresh=1e-9):
    """`(scores, mask)` of one image and one referring expression.

    net_or_model: a `TextObjSegNet` (its high-res model is used) or its built `highres_model`
      (whose input shape then sets input_H, input_W and T).
    vocab_dict: `{word: id}` (text_processing.load_vocab_dict_from_file); its size must match
      the embedding's rows.
    image: a path or a uint8 H x W (grey) / H x W x 3 array.
    Returns float32 scores `[input_H, input_W]` in the padded frame and the bool mask at the
    image's own size.
    """
    from text_objseg_tf2.models import vgg_net
    from text_objseg_tf2.util import io, text_processing

    model, num_vocab, T, input_H, input_W = _highres_model(net_or_model, input_H, input_W, T)
    if num_vocab is not None:
        check_vocabulary(vocab_dict, num_vocab)
    if isinstance(image, (str, os.PathLike)):
        image = io.load_image(image)
    image = np.asarray(image)
    text = np.array(text_processing.preprocess_sentence(query, vocab_dict, T),
                    dtype=np.int32)[:, np.newaxis]
    imcrop = preprocess_image(image, input_H, input_W) - vgg_net.channel_mean
    scores = model([text, imcrop[np.newaxis]])
    scores = np.asarray(scores, dtype=np.float32)[0, :, :, 0]
    return scores, scores_to_mask(scores, image.shape[:2], score_thresh)


def preprocess_image(image, input_H, input_W):
    """uint8 `[input_H, input_W, 3]` as the original evaluation fed it (resize_and_pad of 2016,
    img_as_ubyte, grey tiled to 3 channels), as float32."""
    import skimage

    from text_objseg_tf2.util import im_processing

    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3)):
        raise ValueError(f"image must be H x W or H x W x 3, got shape {image.shape}")
    processed = skimage.img_as_ubyte(im_processing.resize_and_pad(image, input_H, input_W))
    if processed.ndim == 2:
        processed = processed[:, :, np.newaxis]
    if processed.shape[2] == 1:
        processed = np.tile(processed, (1, 1, 3))
    return processed.astype(np.float32)


def scores_to_mask(scores, image_size, score_thresh=1e-9):
    """The evaluation's prediction: `scores >= score_thresh` as 0/1 floats, resize_and_crop to
    `image_size` (h, w), non-zero pixels -> True."""
    from text_objseg_tf2.util import im_processing

    pred_raw = (np.asarray(scores) >= score_thresh).astype(np.float32)
    predicts = im_processing.resize_and_crop(pred_raw, int(image_size[0]), int(image_size[1]))
    return predicts > 0


def overlay(image, mask, color=(255, 0, 0), alpha=0.5):
    """uint8 RGB image with the mask's pixels blended towards `color`."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, np.newaxis]
    if image.shape[2] == 1:
        image = np.tile(image, (1, 1, 3))
    if image.shape[:2] != mask.shape:
        raise ValueError(f"mask {mask.shape} does not fit the image {image.shape[:2]}")
    out = image.astype(np.float32)
    out[mask] = (1 - alpha) * out[mask] + alpha * np.asarray(color, np.float32)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _save_png(array, path):
    from PIL import Image

    from text_objseg_tf2.util.io import atomic_write

    with atomic_write(path, "wb") as f:
        Image.fromarray(array).save(f, format="PNG")


def _save_npy(array, path):
    from text_objseg_tf2.util.io import atomic_write

    with atomic_write(path, "wb") as f:
        np.save(f, array)


def load_segmentation_net(pretrained_model, vocab_dict=None, vocab_file="the vocabulary"):
    """The high-res net of a segmentation weights file (a low-res one gets the bilinear
    filter). A det (region) model is refused, and so is a vocabulary of another size, before
    any network is built."""
    from text_objseg_tf2 import checkpoints

    info = checkpoints.inspect_weights(pretrained_model, kind="seg_highres")
    if info.kind == "det":
        raise ValueError(f"{info.path} holds the det (region) model; predict needs a "
                         "segmentation model (seg_lowres or seg_highres)")
    if vocab_dict is not None:
        check_vocabulary(vocab_dict, info.sizes["num_vocab"], vocab_file)
    return checkpoints.net_from_params(checkpoints.read_values(info, as_tensors=True),
                                       info.kind, "seg_highres",
                                       source=f"weights file {info.path}")


def define_flags(flag_values=None):
    fv = flag_values if flag_values is not None else flags.FLAGS
    flags.DEFINE_string("pretrained_model", DEFAULT_MODEL,
                        "Segmentation weights: a TF1 checkpoint of the release (V1/V2, any LSTM "
                        "names) or this project's weights file (seg_highres, or seg_lowres run "
                        "with the bilinear filter).", flag_values=fv)
    flags.DEFINE_string("vocab_file", DEFAULT_VOCAB, "Vocabulary (one word per line).",
                        flag_values=fv)
    flags.DEFINE_string("image", None, "Input image.", flag_values=fv)
    flags.DEFINE_string("query", None, "Referring expression.", flag_values=fv)
    flags.DEFINE_string("output_mask", None, "PNG of the mask (0/255) at the image's size.",
                        flag_values=fv)
    flags.DEFINE_string("output_scores", None, ".npy of the float32 scores [input_H, input_W] "
                        "in the padded frame.", flag_values=fv)
    flags.DEFINE_string("output_overlay", None, "PNG of the mask drawn over the image.",
                        flag_values=fv)
    flags.DEFINE_integer("T", 20, "Words per sentence.", flag_values=fv)
    flags.DEFINE_integer("input_H", 512, "Network input height (a multiple of 32).",
                         flag_values=fv)
    flags.DEFINE_integer("input_W", 512, "Network input width (a multiple of 32).",
                         flag_values=fv)
    flags.DEFINE_float("score_thresh", 1e-9, "Scores >= this are in the mask.", flag_values=fv)
    shared_flags.define_gpu_flag(fv)
    flags.adopt_module_key_flags(shared_flags, flag_values=fv)  # list it in --help
    for name in ("image", "query"):
        flags.mark_flag_as_required(name, flag_values=fv)


def main(argv, flag_values=None):
    fv = flag_values if flag_values is not None else flags.FLAGS
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    shared_flags.apply_gpu_flag(fv.gpu_id)
    from text_objseg_tf2.util import io, text_processing

    try:
        vocab_dict = text_processing.load_vocab_dict_from_file(fv.vocab_file)
        text_processing.preprocess_sentence(fv.query, vocab_dict, fv.T)  # empty query: fail now
        image = io.load_image(fv.image)
        net = load_segmentation_net(fv.pretrained_model, vocab_dict, fv.vocab_file)
        scores, mask = predict(net, vocab_dict, image, fv.query, input_H=fv.input_H,
                               input_W=fv.input_W, T=fv.T, score_thresh=fv.score_thresh)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    if fv.output_scores:
        _save_npy(scores, fv.output_scores)
    if fv.output_mask:
        _save_png(mask.astype(np.uint8) * 255, fv.output_mask)
    if fv.output_overlay:
        _save_png(overlay(image, mask), fv.output_overlay)
    print(f"query {fv.query!r}: {mask.mean():.1%} of the image's {mask.shape[1]}x"
          f"{mask.shape[0]} pixels, scores in [{scores.min():.3g}, {scores.max():.3g}]")


def run():
    """Console script `text_objseg_predict`."""
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
