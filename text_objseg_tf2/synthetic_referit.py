"""A small synthetic ReferIt ("mini-ReferIt") written in the release's exact file layout.

Each image is a textured, desaturated background with 2-4 coloured shapes (circle, square,
triangle; big or small); every shape is a referred region with several expressions that
identify it uniquely ("red circle on the left", "the big blue square", "bottom right shape").
The files are the ones the original scripts read, in the same formats:

    <output_dir>/images/<id>.jpg                      JPEG, RGB (a few greyscale, mode 'L')
    <output_dir>/mask/<id>_<k>.mat                    MATLAB v5, key 'segimg_t' (uint8),
                                                      object pixels == 0, others 1
    <output_dir>/referit_query_{trainval,test,train,val,all}.json   {imcrop: [expressions]}
    <output_dir>/referit_bbox.json                    {imcrop: [xmin, ymin, xmax, ymax]} inclusive
    <output_dir>/referit_imcrop.json                  {"<id>.jpg": [imcrop, ...]}
    <output_dir>/referit_imsize.json                  {"<id>.jpg": [width, height]}
    <output_dir>/referit_{all,trainval,train,val,test}_imlist.txt   one image id per line
    <output_dir>/vocabulary_referit.txt               <pad> <go> <eos> <unk>, then every token
                                                      of all queries by frequency
    <output_dir>/referit_edgeboxes_top100/<id>.txt    up to 100 "xmin ymin xmax ymax" lines

Everything is a pure function of the arguments (same bytes for the same seed), and every
file is written atomically. Only numpy, Pillow, scipy.io and json are used.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import os
import re

import numpy as np
import scipy.io
from PIL import Image, ImageDraw
from tqdm import tqdm

# Saturated object colours; backgrounds are desaturated so colour words are learnable.
COLORS = {
    "red": (205, 35, 35),
    "green": (35, 165, 55),
    "blue": (35, 75, 205),
    "yellow": (230, 205, 40),
    "purple": (135, 55, 175),
}
# Colours whose luminance stays well below the light background of greyscale scenes.
GREY_SCENE_COLORS = ("red", "green", "blue", "purple")
SHAPES = ("circle", "square", "triangle")
SPECIAL_TOKENS = ("<pad>", "<go>", "<eos>", "<unk>")  # first lines of vocabulary_referit.txt
FIRST_IMAGE_ID = 1000

# The original's tokeniser (util/text_processing.py): split on (\W+), drop blank pieces.
_SPLIT_REGEX = re.compile(r"(\W+)")
# The original's util.io.save_json layout (one element per line).
_JSON_SEPARATORS = (",\n", ":\n")
# scipy.io.savemat stamps the creation time into the 116-byte text header; a fixed header
# keeps the .mat bytes a function of the seed (the header is informational only).
_MAT_HEADER = b"MATLAB 5.0 MAT-file, Platform: posix, Created by: text_objseg_tf2 synthetic_referit"
_LOCATION_MARGIN = 0.12  # an extreme object must lead the next one by this fraction of W/H


@dataclasses.dataclass
class _Object:
    shape: str
    color: str
    size: str | None  # "big", "small" or None (in between: never described by size)
    mask: np.ndarray  # bool [H, W]
    bbox: list  # [xmin, ymin, xmax, ymax], inclusive pixels
    center: tuple  # (x, y) in [0, 1] image coordinates
    attrs: dict = dataclasses.field(default_factory=dict)  # describable attributes


def make_synthetic_referit(
    output_dir,
    num_train_images=200,
    num_test_images=50,
    seed=0,
    image_size=(96, 200),
    max_aspect=1.5,
    min_objects=2,
    max_objects=4,
    big_scale=(0.40, 0.48),
    small_scale=(0.24, 0.30),
    queries_per_object=(2, 4),
    greyscale_fraction=0.05,
    num_proposals=100,
    jpeg_quality=90,
    val_fraction=0.1,
    background_clutter=1.0,
    progress=True,
):
    """Write a synthetic mini-ReferIt under `output_dir`; return a summary dict.

    Args:
      output_dir: destination folder (created; existing files of the same names are replaced).
      num_train_images, num_test_images: images in the trainval and test splits (ids are
        consecutive integers from 1000, trainval first).
      seed: everything (scenes, expressions, order of the JSON keys) derives from it.
      image_size: (min, max) length in pixels of each image side.
      max_aspect: largest long/short side ratio.
      min_objects, max_objects: shapes per image (at most 4: one per grid cell).
      big_scale, small_scale: (min, max) shape side as a fraction of the image's short side
        (capped by its grid cell, a half or a quarter of the image); keep the ranges apart
        so that "big" and "small" stay true across images.
      queries_per_object: (min, max) distinct expressions per shape.
      greyscale_fraction: fraction of images saved as greyscale JPEGs (at least one per split
        when the split has 2+ images); their expressions never mention colours.
      num_proposals: maximum EdgeBox-style proposals per image (the release keeps the top 100).
      jpeg_quality: Pillow JPEG quality (fixed, so the bytes are deterministic).
      val_fraction: fraction of trainval images listed in the train/val sub-splits.
      background_clutter: scale of the background's tint, blotches and noise (0: flat grey
        with no lines), for runs whose VGG features are random rather than pretrained.
      progress: show a tqdm bar.

    Returns:
      dict with counts and the paths under the original parameter names (image_dir,
      mask_dir, bbox_proposal_dir end with '/', as the original concatenated strings).
    """
    _check_args(num_train_images, num_test_images, image_size, max_aspect, min_objects,
                max_objects, big_scale, small_scale, queries_per_object, greyscale_fraction,
                num_proposals, jpeg_quality, val_fraction)
    output_dir = os.fspath(output_dir)
    image_dir = os.path.join(output_dir, "images")
    mask_dir = os.path.join(output_dir, "mask")
    proposal_dir = os.path.join(output_dir, "referit_edgeboxes_top100")
    for d in (image_dir, mask_dir, proposal_dir):
        os.makedirs(d, exist_ok=True)

    num_images = num_train_images + num_test_images
    split_rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    grey = _greyscale_indices(split_rng, num_train_images, 0, greyscale_fraction)
    grey |= _greyscale_indices(split_rng, num_test_images, num_train_images, greyscale_fraction)
    num_val = int(round(val_fraction * num_train_images)) if num_train_images > 1 else 0
    val_idx = set(split_rng.choice(num_train_images, num_val, replace=False).tolist())

    queries, bboxes, imcrops, imsizes = {}, {}, {}, {}
    num_objects = 0
    for idx in tqdm(range(num_images), desc="synthetic ReferIt", unit="image",
                    disable=not progress):
        image_id = FIRST_IMAGE_ID + idx
        imname = f"{image_id}.jpg"
        rng = np.random.default_rng(np.random.SeedSequence([seed, 1, idx]))
        is_grey = idx in grey
        width, height = _image_size(rng, image_size, max_aspect)
        objects = _layout_objects(rng, width, height, min_objects, max_objects,
                                  big_scale, small_scale, is_grey)
        image = _render(rng, width, height, objects, is_grey, background_clutter)
        _atomic_write(os.path.join(image_dir, imname), _jpeg_bytes(image, jpeg_quality))

        _assign_attributes(objects, is_grey)
        names = []
        for k, obj in enumerate(objects, start=1):
            imcrop = f"{image_id}_{k}"
            names.append(imcrop)
            segimg_t = np.where(obj.mask, 0, 1).astype(np.uint8)
            _atomic_write(os.path.join(mask_dir, imcrop + ".mat"), _mat_bytes(segimg_t))
            bboxes[imcrop] = obj.bbox
            queries[imcrop] = _expressions(rng, obj, objects, queries_per_object)
        num_objects += len(objects)
        # The release lists each image's regions in no particular order.
        imcrops[imname] = [names[i] for i in rng.permutation(len(names))]
        imsizes[imname] = [width, height]
        boxes = _proposals(rng, width, height, objects, num_proposals)
        _atomic_write(os.path.join(proposal_dir, f"{image_id}.txt"),
                      "".join(" ".join(map(str, b)) + "\n" for b in boxes).encode())

    ids = [FIRST_IMAGE_ID + i for i in range(num_images)]
    splits = {
        "trainval": ids[:num_train_images],
        "train": [ids[i] for i in range(num_train_images) if i not in val_idx],
        "val": [ids[i] for i in range(num_train_images) if i in val_idx],
        "test": ids[num_train_images:],
        "all": ids,
    }
    # Query files list regions in a shuffled order, like the release's files.
    crop_names = list(queries)
    crop_order = [crop_names[i] for i in split_rng.permutation(len(crop_names))]
    split_of = {}
    for name, members in splits.items():
        for image_id in members:
            split_of.setdefault(image_id, set()).add(name)
    for name in ("trainval", "train", "val", "test", "all"):
        subset = {c: queries[c] for c in crop_order if name in split_of[int(c.split("_")[0])]}
        _write_json(os.path.join(output_dir, f"referit_query_{name}.json"), subset)
        _atomic_write(os.path.join(output_dir, f"referit_{name}_imlist.txt"),
                      "".join(f"{i}\n" for i in splits[name]).encode())
    _write_json(os.path.join(output_dir, "referit_bbox.json"),
                {c: bboxes[c] for c in crop_order})
    _write_json(os.path.join(output_dir, "referit_imcrop.json"), imcrops)
    _write_json(os.path.join(output_dir, "referit_imsize.json"), imsizes)
    vocab = build_vocabulary(q for qs in queries.values() for q in qs)
    _atomic_write(os.path.join(output_dir, "vocabulary_referit.txt"),
                  "".join(w + "\n" for w in vocab).encode())

    num_queries = {s: sum(len(queries[c]) for c in queries
                          if s in split_of[int(c.split("_")[0])]) for s in ("trainval", "test")}
    return {
        "output_dir": output_dir,
        "num_images": num_images,
        "num_train_images": num_train_images,
        "num_test_images": num_test_images,
        "num_greyscale_images": len(grey),
        "num_objects": num_objects,
        "num_trainval_queries": num_queries["trainval"],
        "num_test_queries": num_queries["test"],
        "vocab_size": len(vocab),
        "image_dir": os.path.join(image_dir, ""),
        "mask_dir": os.path.join(mask_dir, ""),
        "bbox_proposal_dir": os.path.join(proposal_dir, ""),
        "query_file": os.path.join(output_dir, "referit_query_trainval.json"),
        "test_query_file": os.path.join(output_dir, "referit_query_test.json"),
        "bbox_file": os.path.join(output_dir, "referit_bbox.json"),
        "imcrop_file": os.path.join(output_dir, "referit_imcrop.json"),
        "imsize_file": os.path.join(output_dir, "referit_imsize.json"),
        "vocab_file": os.path.join(output_dir, "vocabulary_referit.txt"),
    }


def tokenize(sentence):
    """Lower-cased, stripped tokens as the original's `(\\W+)` split sees them."""
    return [w.strip().lower() for w in _SPLIT_REGEX.split(sentence.strip()) if w.strip()]


def build_vocabulary(sentences):
    """<pad>, <go>, <eos>, <unk>, then every token by decreasing count (ties alphabetical)."""
    counts = {}
    for sentence in sentences:
        for token in tokenize(sentence):
            counts[token] = counts.get(token, 0) + 1
    words = sorted(counts, key=lambda w: (-counts[w], w))
    return list(SPECIAL_TOKENS) + [w for w in words if w not in SPECIAL_TOKENS]


# ---------------------------------------------------------------------------------------
# Scene layout and rendering


def _check_args(num_train, num_test, image_size, max_aspect, min_objects, max_objects,
                big_scale, small_scale, queries_per_object, greyscale_fraction, num_proposals,
                jpeg_quality, val_fraction):
    if num_train < 0 or num_test < 0 or num_train + num_test < 1:
        raise ValueError(f"need at least one image, got num_train_images={num_train}, "
                         f"num_test_images={num_test}")
    if not 32 <= image_size[0] <= image_size[1]:
        raise ValueError(f"image_size must be (min, max) with 32 <= min <= max, got {image_size}")
    if max_aspect < 1:
        raise ValueError(f"max_aspect must be >= 1, got {max_aspect}")
    if not 1 <= min_objects <= max_objects <= 4:
        raise ValueError(f"need 1 <= min_objects <= max_objects <= 4, got {min_objects}, "
                         f"{max_objects}")
    for name, (lo, hi) in (("big_scale", big_scale), ("small_scale", small_scale)):
        if not 0 < lo <= hi < 1:
            raise ValueError(f"{name} must be (min, max) in (0, 1), got {(lo, hi)}")
    if small_scale[1] >= big_scale[0]:
        raise ValueError(f"small_scale {small_scale} must lie below big_scale {big_scale}, or "
                         f"'big' and 'small' would be ambiguous")
    if not 1 <= queries_per_object[0] <= queries_per_object[1]:
        raise ValueError(f"queries_per_object must be (min, max) >= 1, got {queries_per_object}")
    if not 0 <= greyscale_fraction <= 1 or not 0 <= val_fraction < 1:
        raise ValueError("greyscale_fraction must be in [0, 1] and val_fraction in [0, 1)")
    if num_proposals < 1:
        raise ValueError(f"num_proposals must be >= 1, got {num_proposals}")
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be in [1, 100], got {jpeg_quality}")


def _greyscale_indices(rng, count, offset, fraction):
    if count < 2 or fraction <= 0:
        return set()
    num = min(count, max(1, int(round(fraction * count))))
    return {offset + int(i) for i in rng.choice(count, num, replace=False)}


def _image_size(rng, image_size, max_aspect):
    lo, hi = image_size
    while True:
        width, height = (int(v) for v in rng.integers(lo, hi + 1, size=2))
        if max(width, height) <= max_aspect * min(width, height):
            return width, height


def _layout_objects(rng, width, height, min_objects, max_objects, big_scale, small_scale,
                    is_grey):
    """One shape per cell of a jittered 2x2 grid (or two halves along the long side), so
    shapes never overlap (>= 4 px apart)."""
    target = int(rng.integers(min_objects, max_objects + 1))
    palette = GREY_SCENE_COLORS if is_grey else tuple(COLORS)
    if is_grey:
        target = min(target, len(SHAPES))  # greyscale shapes are told apart by shape
    colors = [palette[i] for i in rng.permutation(len(palette))]
    shapes = ([SHAPES[i] for i in rng.permutation(len(SHAPES))] if is_grey
              else [SHAPES[int(i)] for i in rng.integers(len(SHAPES), size=len(palette))])
    xs = [0, int(round(rng.uniform(0.45, 0.55) * width)), width]
    ys = [0, int(round(rng.uniform(0.45, 0.55) * height)), height]
    if target <= 1:
        cells = [(0, 0, width, height)]
    elif target == 2 and rng.random() < 0.6:  # side by side along the long side
        cells = ([(xs[0], 0, xs[1], height), (xs[1], 0, xs[2], height)] if width >= height
                 else [(0, ys[0], width, ys[1]), (0, ys[1], width, ys[2])])
    else:
        grid = [(xs[i], ys[j], xs[i + 1], ys[j + 1]) for j in range(2) for i in range(2)]
        cells = [grid[i] for i in sorted(rng.choice(4, target, replace=False))]
    objects = []
    for k, (cx0, cy0, cx1, cy1) in enumerate(cells):
        size = "big" if rng.random() < 0.5 else "small"
        lo, hi = big_scale if size == "big" else small_scale
        cell_w, cell_h = cx1 - cx0, cy1 - cy0
        side = max(8, min(int(round(rng.uniform(lo, hi) * min(width, height))),
                          cell_w - 4, cell_h - 4))
        # keep 2 px from the cell's borders, so neighbours are >= 4 px apart
        x0 = int(rng.integers(cx0 + 2, cx1 - side - 1)) if cx1 - side - 1 > cx0 + 2 else cx0 + 2
        y0 = int(rng.integers(cy0 + 2, cy1 - side - 1)) if cy1 - side - 1 > cy0 + 2 else cy0 + 2
        if size == "big" and side < 0.9 * big_scale[0] * min(width, height):
            size = None  # squeezed by its cell: neither clearly big nor small
        mask = _shape_mask(shapes[k], (x0, y0, x0 + side - 1, y0 + side - 1), width, height)
        ys_, xs_ = np.nonzero(mask)
        bbox = [int(xs_.min()), int(ys_.min()), int(xs_.max()), int(ys_.max())]
        center = (float(xs_.mean() + 0.5) / width, float(ys_.mean() + 0.5) / height)
        objects.append(_Object(shapes[k], colors[k], size, mask, bbox, center))
    return objects


def _shape_mask(shape, box, width, height):
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    x0, y0, x1, y1 = box
    if shape == "circle":
        draw.ellipse([x0, y0, x1, y1], fill=255)
    elif shape == "square":
        draw.rectangle([x0, y0, x1, y1], fill=255)
    else:
        draw.polygon([(x0, y1), (x1, y1), ((x0 + x1) / 2.0, y0)], fill=255)
    return np.asarray(canvas) > 0


def _render(rng, width, height, objects, is_grey, clutter=1.0):
    """Background: tinted grey, low-frequency blotches, faint lines, pixel noise (all scaled
    by `clutter`; the random draws are the same whatever its value)."""
    base = rng.uniform(175, 215) if is_grey else rng.uniform(70, 190)
    tint = rng.normal(0, 10, size=3)
    coarse = rng.normal(0, 22, size=(4, 4, 3))
    blotch = np.stack([np.asarray(Image.fromarray(coarse[..., c].astype(np.float32), "F")
                                  .resize((width, height), Image.BILINEAR))
                       for c in range(3)], axis=-1)
    image = base + clutter * (tint + blotch + rng.normal(0, 8, size=(height, width, 3)))
    canvas = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(2, 6))):
        grey = int(np.clip(base + rng.normal(0, 35), 0, 255))
        pts = [(float(rng.uniform(0, width)), float(rng.uniform(0, height))) for _ in range(2)]
        line_width = int(rng.integers(1, 3))
        if clutter > 0:
            draw.line(pts, fill=(grey, grey, grey), width=line_width)
    image = np.asarray(canvas).astype(np.float64)
    for obj in objects:  # flat colour, a soft linear shading and pixel noise
        color = np.array(COLORS[obj.color], np.float64) + np.clip(rng.normal(0, 10, 3), -20, 20)
        direction = rng.normal(size=2)
        direction /= np.linalg.norm(direction) + 1e-9
        x0, y0, x1, y1 = obj.bbox
        yy, xx = np.mgrid[0:y1 - y0 + 1, 0:x1 - x0 + 1]
        shade = 14 * (direction[0] * xx + direction[1] * yy) / max(x1 - x0, y1 - y0, 1)
        fill = color + shade[..., None] + rng.normal(0, 6, size=xx.shape + (3,))
        inside = obj.mask[y0:y1 + 1, x0:x1 + 1]
        image[y0:y1 + 1, x0:x1 + 1][inside] = fill[inside]
    image = Image.fromarray(np.clip(np.round(image), 0, 255).astype(np.uint8), "RGB")
    return image.convert("L") if is_grey else image


# ---------------------------------------------------------------------------------------
# Referring expressions


def _assign_attributes(objects, is_grey):
    """Attributes an expression may use: colour (not in greyscale scenes), shape, size and
    the extreme positions (left/right/top/bottom) an object holds by a clear margin."""
    for obj in objects:
        obj.attrs = {"shape": obj.shape}
        if obj.size is not None:
            obj.attrs["size"] = obj.size
        if not is_grey:
            obj.attrs["color"] = obj.color
    if len(objects) < 2:
        return
    for axis, (low, high) in ((0, ("left", "right")), (1, ("top", "bottom"))):
        key = "h" if axis == 0 else "v"
        order = sorted(objects, key=lambda o: o.center[axis])
        if order[1].center[axis] - order[0].center[axis] >= _LOCATION_MARGIN:
            order[0].attrs[key] = low
        if order[-1].center[axis] - order[-2].center[axis] >= _LOCATION_MARGIN:
            order[-1].attrs[key] = high


def _unique_subsets(obj, objects):
    """Non-empty attribute subsets that single out `obj` among `objects`."""
    keys = sorted(obj.attrs)
    result = []
    for r in range(1, len(keys) + 1):
        for subset in itertools.combinations(keys, r):
            if any(k in ("h", "v") for k in subset):
                result.append(subset)  # extremes are unique by construction
                continue
            # an object of in-between size could be called big or small: it matches both
            matches = [o for o in objects
                       if all(o.attrs.get(k) == obj.attrs[k]
                              or (k == "size" and o.attrs.get(k) is None) for k in subset)]
            if matches == [obj]:
                result.append(subset)
    return result


def _expressions(rng, obj, objects, queries_per_object):
    subsets = _unique_subsets(obj, objects)
    if not subsets:  # cannot happen with distinct colours / shapes; kept as a guard
        raise AssertionError("synthetic scene has an object that cannot be referred to")
    weights = np.array([(3.0 if "color" in s else 1.0) * (0.4 if len(s) >= 4 else 1.0)
                        for s in subsets])
    weights /= weights.sum()
    wanted = int(rng.integers(queries_per_object[0], queries_per_object[1] + 1))
    found = []
    for _ in range(20 * wanted):
        subset = subsets[int(rng.choice(len(subsets), p=weights))]
        text = _realise(rng, {k: obj.attrs[k] for k in subset})
        if text not in found:
            found.append(text)
            if len(found) == wanted:
                break
    return found


def _realise(rng, attrs):
    """Turn chosen attributes into a phrase, with ReferIt-like casing and punctuation."""
    loc_words = [attrs[k] for k in ("v", "h") if k in attrs]
    loc = " ".join(loc_words)
    rest = {k: v for k, v in attrs.items() if k not in ("h", "v")}
    if not rest and rng.random() < 0.4:
        text = loc  # "left", "bottom right"
    elif set(rest) == {"color"} and not loc and rng.random() < 0.3:
        text = rest["color"]  # "red"
    else:
        words = ["the"] if rng.random() < 0.5 else []
        prefix_loc = bool(loc) and rng.random() < 0.5
        if prefix_loc:
            words.append(loc)
        words += [rest[k] for k in ("size", "color") if k in rest]
        nouns = ["shape", "one", "object"] if words else ["shape", "object"]  # no bare "one"
        words.append(rest.get("shape") or str(rng.choice(nouns)))
        text = " ".join(words)
        if loc and not prefix_loc:
            if len(loc_words) == 2:
                phrase = f"in the {loc}"
            elif "h" in attrs:
                phrase = f"on the {loc}"
            else:
                phrase = f"at the {loc}"
            text += (", " if rng.random() < 0.2 else " ") + phrase
    r = rng.random()
    if r < 0.05:
        text = text.upper()
    elif r < 0.3:
        text = text[0].upper() + text[1:]
    r = rng.random()
    if r < 0.15:
        text += "."
    elif r < 0.2:
        text += " ."
    return text


# ---------------------------------------------------------------------------------------
# EdgeBox-style proposals


def _box_iou(a, b):
    """IoU of inclusive pixel boxes (area uses +1, as the original's eval_tools)."""
    ix = min(a[2], b[2]) - max(a[0], b[0]) + 1
    iy = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if ix <= 0 or iy <= 0:
        return 0.0
    inter = ix * iy
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return inter / float(area_a + area_b - inter)


def _clip_box(box, width, height):
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, x1 = sorted((min(max(x0, 0), width - 1), min(max(x1, 0), width - 1)))
    y0, y1 = sorted((min(max(y0, 0), height - 1), min(max(y1, 0), height - 1)))
    return [x0, y0, x1, y1]


def _proposals(rng, width, height, objects, num_proposals):
    """Per object a few boxes with IoU >= 0.7 and a few partial ones; the rest background
    and multi-object boxes. Most images get the full count, some fewer (as EdgeBoxes)."""
    count = num_proposals if rng.random() < 0.8 else int(rng.integers(
        max(1, num_proposals // 2), num_proposals + 1))
    boxes = []
    for obj in objects:
        gt = obj.bbox
        w, h = gt[2] - gt[0] + 1, gt[3] - gt[1] + 1
        good = 0
        for _ in range(50):
            if good >= 3:
                break
            jitter = rng.normal(0, 0.06, size=4) * [w, h, w, h]
            cand = _clip_box(np.add(gt, jitter), width, height)
            if _box_iou(cand, gt) >= 0.7 and cand not in boxes:
                boxes.append(cand)
                good += 1
        for _ in range(2):  # partial: a half or an enlarged box
            if rng.random() < 0.5:
                cand = [gt[0], gt[1], gt[0] + w // 2, gt[3]]
            else:
                cand = [gt[0] - w // 2, gt[1] - h // 2, gt[2] + w // 2, gt[3] + h // 2]
            boxes.append(_clip_box(cand, width, height))
    if len(objects) >= 2:
        for a, b in itertools.combinations(objects, 2):
            boxes.append([min(a.bbox[0], b.bbox[0]), min(a.bbox[1], b.bbox[1]),
                          max(a.bbox[2], b.bbox[2]), max(a.bbox[3], b.bbox[3])])
    boxes = boxes[:count]
    while len(boxes) < count:
        bw = rng.uniform(0.1, 0.7) * width
        bh = rng.uniform(0.1, 0.7) * height
        x0 = rng.uniform(0, width - bw)
        y0 = rng.uniform(0, height - bh)
        boxes.append(_clip_box([x0, y0, x0 + bw - 1, y0 + bh - 1], width, height))
    return [boxes[i] for i in rng.permutation(len(boxes))]


# ---------------------------------------------------------------------------------------
# Deterministic, atomic file writing


def _jpeg_bytes(image, quality):
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _mat_bytes(segimg_t):
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"segimg_t": segimg_t}, do_compression=True)
    data = bytearray(buf.getvalue())
    data[:116] = _MAT_HEADER.ljust(116, b" ")
    return bytes(data)


def _write_json(path, obj):
    _atomic_write(path, json.dumps(obj, separators=_JSON_SEPARATORS).encode())


def _atomic_write(path, data):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
