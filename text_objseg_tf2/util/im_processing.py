"""Image resizing, padding and cropping with the scikit-image arithmetic of the original release.

The original called ``skimage.transform.resize(im, [h, w])`` with the 2016 defaults: the image
converted to float64 in [0, 1] (``img_as_float``), bilinear interpolation (``order=1``) with
pixel centres mapped as ``(x + 0.5) * scale - 0.5``, ``mode='constant'`` (outside pixels are
0, so border pixels blend with black), no anti-aliasing, then a clip. Today's defaults differ
(reflect padding, Gaussian anti-aliasing on downscale, float32 kept as float32, a different
clip rule), so :func:`resize_2016` spells every setting out.

The clip differs between versions. scikit-image <= 0.10 clipped to the fixed range [0, 1] (a
no-op for bilinear interpolation of [0, 1] data): ``clip_mode="unit"``, what SPEC asks for and
the default. scikit-image 0.11-0.13 (2015-2017) clipped to the input's own [min, max], keeping
outputs exactly equal to cval: ``clip_mode="input"``. The author's environment had 0.12 (the
release's demo notebook shows a warning from line 110 of skimage/util/dtype.py, which is that
warning only in 0.12), so "input" is the likelier match of the released numbers. The two differ
only for images whose minimum is above 0, at the blended border (crops, mostly). Both modes
match the real libraries to 1e-12 (tests/test_im_processing.py, golden values).
"""

import numpy as np
import skimage
import skimage.transform

CLIP_MODES = ("unit", "input")
DEFAULT_CLIP_MODE = "unit"


def _as_float_2016(im):
    """float64 copy of `im` with the img_as_float conventions of scikit-image 0.10-0.12."""
    im = np.asarray(im)
    kind = im.dtype.kind
    if kind == "b":
        return im.astype(np.float64)
    if kind == "u":
        # 0.12 divided (`image /= imax`); today's img_as_float multiplies by 1/imax, which
        # differs in the last bit for some values.
        return im.astype(np.float64) / np.iinfo(im.dtype).max
    if kind == "i":
        info = np.iinfo(im.dtype)
        return (im.astype(np.float64) * 2.0 + 1.0) / (info.max - info.min)
    if kind == "f":
        im = im.astype(np.float64)
        if im.size and not np.all(np.isfinite(im)):
            raise ValueError("image contains NaN or infinite values")
        if im.size and (im.min() < -1.0 or im.max() > 1.0):
            raise ValueError(
                "float images must lie in [-1, 1] (as img_as_float required), got "
                f"[{im.min():g}, {im.max():g}]"
            )
        return im
    raise ValueError(f"unsupported image dtype {im.dtype}")


def resize_2016(im, output_shape, clip_mode=DEFAULT_CLIP_MODE):
    """Bilinear resize of an H x W or H x W x C image to `output_shape` = (h, w), float64.

    Reproduces ``skimage.transform.resize(im, [h, w])`` of 2016 (see module docstring);
    channels are resized independently. Bool masks are resized as 0/1 floats, as in 2016
    (today's scikit-image would use nearest neighbour for bool).
    """
    im = np.asarray(im)
    if im.ndim not in (2, 3):
        raise ValueError(f"image must be H x W or H x W x C, got shape {im.shape}")
    if len(output_shape) != 2:
        raise ValueError(f"output_shape must be (height, width), got {output_shape}")
    out_h, out_w = (int(s) for s in output_shape)
    if out_h < 1 or out_w < 1 or im.shape[0] < 1 or im.shape[1] < 1:
        raise ValueError(f"cannot resize an image of shape {im.shape} to {output_shape}")
    if clip_mode not in CLIP_MODES:
        raise ValueError(f"clip_mode must be one of {CLIP_MODES}, got {clip_mode!r}")
    im = _as_float_2016(im)
    out_shape = (out_h, out_w) + im.shape[2:]
    # float64 input: preserve_range has no effect and no conversion happens.
    out = skimage.transform.resize(
        im, out_shape, order=1, mode="constant", cval=0.0, clip=False,
        preserve_range=True, anti_aliasing=False,
    )
    if clip_mode == "unit":
        return np.clip(out, 0.0, 1.0)
    lo, hi = im.min(), im.max()
    clipped = np.clip(out, lo, hi)
    if not lo <= 0.0 <= hi:
        # 0.11-0.13 kept outputs equal to cval (0) when cval lay outside the input range.
        clipped[out == 0.0] = 0.0
    return clipped


def _resized_size(im_h, im_w, scale):
    # np.round rounds halves to even, as the original's int(np.round(...)).
    return int(np.round(im_h * scale)), int(np.round(im_w * scale))


def _check_image(im, name="im"):
    im = np.asarray(im)
    if im.ndim not in (2, 3) or im.shape[0] < 1 or im.shape[1] < 1:
        raise ValueError(f"{name} must be a non-empty H x W or H x W x C array, got {im.shape}")
    return im


def resize_and_pad(im, input_h, input_w, clip_mode=DEFAULT_CLIP_MODE):
    """Resizes `im` to fit in input_h x input_w keeping its aspect ratio, centred on zeros."""
    im = _check_image(im)
    im_h, im_w = im.shape[:2]
    scale = min(input_h / im_h, input_w / im_w)
    resized_h, resized_w = _resized_size(im_h, im_w, scale)
    if resized_h < 1 or resized_w < 1:
        raise ValueError(f"image of shape {im.shape} is too elongated to fit {input_h}x{input_w}")
    # int(x / 2) truncates, as the original's int(np.floor(n) / 2).
    pad_h = int((input_h - resized_h) / 2)
    pad_w = int((input_w - resized_w) / 2)
    resized_im = resize_2016(im, (resized_h, resized_w), clip_mode)
    new_im = np.zeros((input_h, input_w) + im.shape[2:], dtype=resized_im.dtype)
    new_im[pad_h:pad_h + resized_h, pad_w:pad_w + resized_w, ...] = resized_im
    return new_im


def resize_and_crop(im, input_h, input_w, clip_mode=DEFAULT_CLIP_MODE):
    """Resizes `im` to cover input_h x input_w keeping its aspect ratio, then centre-crops.

    Inverse of resize_and_pad: maps a 512 x 512 prediction back to the image's own size.
    """
    im = _check_image(im)
    im_h, im_w = im.shape[:2]
    scale = max(input_h / im_h, input_w / im_w)
    resized_h, resized_w = _resized_size(im_h, im_w, scale)
    crop_h = int((resized_h - input_h) / 2)
    crop_w = int((resized_w - input_w) / 2)
    resized_im = resize_2016(im, (resized_h, resized_w), clip_mode)
    return np.array(resized_im[crop_h:crop_h + input_h, crop_w:crop_w + input_w, ...])


def _as_rgb_uint8(im):
    """img_as_ubyte(im) with greyscale tiled to 3 channels (the original crashed on grey)."""
    im = skimage.img_as_ubyte(_check_image(im))
    if im.ndim == 2:
        im = im[:, :, np.newaxis]
    if im.shape[2] == 1:
        im = np.tile(im, (1, 1, 3))
    if im.shape[2] != 3:
        raise ValueError(f"image must be greyscale or RGB, got {im.shape[2]} channels")
    return im


def _crop_resize(im, box, crop_size, clip_mode):
    """img_as_ubyte(resize(im[ymin:ymax+1, xmin:xmax+1])) for an inclusive box."""
    xmin, ymin, xmax, ymax = box
    imcrop = im[ymin:ymax + 1, xmin:xmax + 1, :]
    return skimage.img_as_ubyte(resize_2016(imcrop, (crop_size, crop_size), clip_mode))


def _int_boxes(bboxes, im_shape):
    boxes = np.asarray(bboxes).reshape((-1, 4))
    if boxes.dtype.kind == "f":
        if not np.all(boxes == np.round(boxes)):
            raise ValueError("bounding boxes must have integer pixel coordinates")
    elif boxes.dtype.kind not in "iu":
        raise ValueError(f"bounding boxes must be numbers, got dtype {boxes.dtype}")
    boxes = boxes.astype(np.int64)
    im_h, im_w = im_shape[:2]
    for xmin, ymin, xmax, ymax in boxes:
        if xmin < 0 or ymin < 0 or xmax < xmin or ymax < ymin or xmin >= im_w or ymin >= im_h:
            raise ValueError(
                f"bounding box [{xmin}, {ymin}, {xmax}, {ymax}] (inclusive xmin, ymin, xmax, "
                f"ymax) gives an empty crop of an image of size {im_h}x{im_w}"
            )
    return boxes


def crop_bboxes_subtract_mean(im, bboxes, crop_size, image_mean, clip_mode=DEFAULT_CLIP_MODE):
    """Crops inclusive boxes [xmin, ymin, xmax, ymax], resizes each to crop_size, minus mean.

    Returns float32 [N, crop_size, crop_size, 3]: uint8 crops (img_as_ubyte of the resize)
    minus `image_mean`, as the original.
    """
    im = _as_rgb_uint8(im)
    boxes = _int_boxes(bboxes, im.shape)
    imcrop_batch = np.zeros((len(boxes), crop_size, crop_size, 3), dtype=np.float32)
    for n, box in enumerate(boxes):
        imcrop_batch[n] = _crop_resize(im, box, crop_size, clip_mode)
    imcrop_batch -= image_mean
    return imcrop_batch


def bboxes_from_masks(masks):
    """Inclusive [xmin, ymin, xmax, ymax] int32 boxes of the non-zero pixels of each mask."""
    masks = np.asarray(masks)
    if masks.ndim == 2:
        masks = masks[np.newaxis, ...]
    if masks.ndim != 3:
        raise ValueError(f"masks must be H x W or N x H x W, got shape {masks.shape}")
    bboxes = np.zeros((masks.shape[0], 4), dtype=np.int32)
    for n, mask in enumerate(masks):
        ys, xs = np.nonzero(mask)
        if len(ys) == 0:
            raise ValueError(f"mask {n} is empty: it has no bounding box")
        bboxes[n] = [xs.min(), ys.min(), xs.max(), ys.max()]
    return bboxes


def crop_masks_subtract_mean(im, masks, crop_size, image_mean, clip_mode=DEFAULT_CLIP_MODE):
    """Like crop_bboxes_subtract_mean on each mask's box, pixels outside the mask set to the mean.

    Outside pixels get ``image_mean.astype(uint8)`` (truncated), as the original. The original
    only worked for 0/1 uint8 masks; here any non-zero value is inside. It also resized to a
    hard-coded 224 (its crop_size); here crop_size is used.
    """
    masks = np.asarray(masks)
    if masks.ndim == 2:
        masks = masks[np.newaxis, ...]
    im = _as_rgb_uint8(im)
    if masks.ndim != 3 or masks.shape[1:] != im.shape[:2]:
        raise ValueError(f"masks of shape {masks.shape} do not fit an image of shape {im.shape}")
    bboxes = bboxes_from_masks(masks)
    fill = np.asarray(image_mean).astype(np.uint8)
    imcrop_batch = np.zeros((len(masks), crop_size, crop_size, 3), dtype=np.float32)
    for n, box in enumerate(bboxes):
        im_masked = np.where(masks[n, :, :, np.newaxis] != 0, im, fill).astype(np.uint8)
        imcrop_batch[n] = _crop_resize(im_masked, box, crop_size, clip_mode)
    imcrop_batch -= image_mean
    return imcrop_batch
