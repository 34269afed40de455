"""File helpers: text lists, JSON, ReferIt .mat masks, images, and atomic writes."""

import contextlib
import json
import os
import uuid

import numpy as np
import scipy.io


@contextlib.contextmanager
def atomic_write(path, mode="w", **open_kwargs):
    """Opens a temp file next to `path`; on success it replaces `path`, on error it is removed.

    Readers never see a half-written file. The temp file gets the usual permissions (umask).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def atomic_savez(path, **arrays):
    """np.savez to exactly `path` (no ".npz" appended), atomically."""
    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays)


def _check_exists(filename, what):
    if not os.path.isfile(filename):
        raise FileNotFoundError(f"{what} not found: {filename}")


def load_str_list(filename):
    """Lines of a text file without their line endings."""
    _check_exists(filename, "list file")
    with open(filename, encoding="utf-8") as f:
        # The original cut the last character of every line, which ate a real character on a
        # last line without newline; only the newline is removed here.
        return [line[:-1] if line.endswith("\n") else line for line in f]


def save_str_list(str_list, filename):
    """Writes one string per line, each ending with a newline (atomically)."""
    with atomic_write(filename, "w", encoding="utf-8") as f:
        f.writelines(s + "\n" for s in str_list)


def load_json(filename):
    _check_exists(filename, "JSON file")
    with open(filename, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"corrupt JSON file {filename}: {e}") from None


def save_json(json_obj, filename):
    """Writes JSON in the original's layout (a newline after every ',' and ':'), atomically."""
    with atomic_write(filename, "w", encoding="utf-8") as f:
        json.dump(json_obj, f, separators=(",\n", ":\n"))


def _load_mat_key(mat_path, key):
    _check_exists(mat_path, "mask file")
    try:
        mat = scipy.io.loadmat(mat_path)
    except Exception as e:  # scipy raises ValueError, TypeError, OSError, ... on bad files
        raise ValueError(f"corrupt .mat file {mat_path}: {e}") from None
    if key not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise ValueError(f"mask file {mat_path} has no '{key}' (variables: {keys})")
    return np.asarray(mat[key])


def load_referit_gt_mask(mask_path):
    """ReferIt ground-truth mask (bool H x W): pixels where 'segimg_t' == 0."""
    segimg = _load_mat_key(mask_path, "segimg_t")
    if segimg.ndim != 2:
        raise ValueError(f"'segimg_t' in {mask_path} is not 2-D: shape {segimg.shape}")
    return segimg == 0


def load_proposal_mask(mask_path):
    """Proposal masks stored as 'mask' H x W x N, returned as N x H x W."""
    mask = _load_mat_key(mask_path, "mask")
    if mask.ndim == 2:
        mask = mask[:, :, np.newaxis]  # MATLAB drops a trailing singleton dimension
    if mask.ndim != 3:
        raise ValueError(f"'mask' in {mask_path} is not H x W x N: shape {mask.shape}")
    return mask.transpose((2, 0, 1))


def _palette_is_grey(pil_im):
    palette = np.asarray(pil_im.getpalette("RGB") or [], dtype=np.int64).reshape((-1, 3))
    used = np.unique(np.asarray(pil_im))
    used = used[used < len(palette)]
    colours = palette[used]
    return bool(np.all(colours[:, 0] == colours[:, 1]) and np.all(colours[:, 1] == colours[:, 2]))


def _pil_to_uint8(pil_im, filename):
    """uint8 H x W (grey) or H x W x 3 array from an opened, loaded Pillow image."""
    mode = pil_im.mode
    if mode in ("L", "RGB"):
        return np.asarray(pil_im, dtype=np.uint8)
    if mode in ("1", "LA", "La"):
        return np.asarray(pil_im.convert("L"), dtype=np.uint8)
    if mode == "P":
        # skimage's PIL plugin: a palette of greys gives a grey image.
        target = "L" if _palette_is_grey(pil_im) else "RGB"
        return np.asarray(pil_im.convert(target), dtype=np.uint8)
    if mode.startswith("I;16") or mode == "I":
        # 16-bit grey (PNG/TIFF): keep the top 8 bits, as skimage.img_as_ubyte(uint16) does.
        arr = np.asarray(pil_im).astype(np.int64)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise ValueError(f"image {filename}: integer pixels outside 0..65535")
        return (arr >> 8).astype(np.uint8)
    if mode == "F":
        raise ValueError(f"image {filename}: floating-point images (mode F) are not supported")
    # RGBA / RGBa / PA (alpha dropped, not composited), CMYK, YCbCr, LAB, HSV, RGBX, ...
    try:
        return np.asarray(pil_im.convert("RGB"), dtype=np.uint8)
    except (ValueError, OSError) as e:
        raise ValueError(f"image {filename}: cannot convert mode {mode} to RGB: {e}") from None


def load_image(path):
    """Reads an image as uint8 H x W (greyscale) or H x W x 3 (colour), like skimage.io.imread.

    The original read ReferIt JPEGs with skimage.io.imread (PIL plugin), which gives exactly
    this for 'L' and 'RGB' JPEGs. Other modes are made model-ready: palette -> grey or RGB,
    alpha dropped, CMYK -> RGB, 16-bit -> top 8 bits. Only the first frame of a multi-frame
    file is read. EXIF orientation is ignored, as skimage.io.imread did (the ReferIt masks
    are drawn on the stored pixels).
    """
    from PIL import Image, UnidentifiedImageError

    path = os.fspath(path)
    _check_exists(path, "image file")
    try:
        with Image.open(path) as pil_im:
            pil_im.load()
            return _pil_to_uint8(pil_im, path)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"cannot read image {path}: {e}") from None
