"""File helpers: round trips, atomic writes, clear errors, image modes."""

import json
import os

import numpy as np
import pytest
import scipy.io
from PIL import Image

from text_objseg_tf2.util import io


def test_str_list_round_trip(tmp_path):
    path = tmp_path / "list.txt"
    items = ["38100.jpg", "with space.jpg", "", "é.jpg"]
    io.save_str_list(items, str(path))
    assert path.read_text(encoding="utf-8") == "38100.jpg\nwith space.jpg\n\né.jpg\n"
    assert io.load_str_list(str(path)) == items


def test_load_str_list_last_line_without_newline(tmp_path):
    path = tmp_path / "list.txt"
    path.write_text("a.jpg\nb.jpg")
    assert io.load_str_list(str(path)) == ["a.jpg", "b.jpg"]  # the original gave "b.jp"


def test_json_round_trip_and_layout(tmp_path):
    path = tmp_path / "q.json"
    obj = {"19135_1": ["sky"], "27247_6": ["rocks on left, next to group", "rock™"]}
    io.save_json(obj, str(path))
    assert io.load_json(str(path)) == obj
    # The original's layout (as in the released referit_*.json files), ASCII-escaped.
    assert path.read_text() == json.dumps(obj, separators=(",\n", ":\n"))
    assert path.read_text().startswith('{"19135_1":\n["sky"],\n"27247_6"')


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    path = tmp_path / "out.json"
    io.save_json({"a": 1}, str(path))
    with pytest.raises(TypeError):
        io.save_json({"a": object()}, str(path))
    assert io.load_json(str(path)) == {"a": 1}  # old content intact
    assert sorted(os.listdir(tmp_path)) == ["out.json"]  # no temp file left


def test_atomic_write_permissions_follow_umask(tmp_path):
    path = tmp_path / "out.txt"
    io.save_str_list(["x"], str(path))
    umask = os.umask(0)
    os.umask(umask)
    assert (os.stat(path).st_mode & 0o777) == (0o666 & ~umask)


def test_atomic_savez_keeps_exact_name(tmp_path):
    arrays = {"text_seq_batch": np.arange(6, dtype=np.int32).reshape(3, 2),
              "label_batch": np.array([[True], [False]])}
    for name in ["batch_0.npz", "batch_1"]:
        io.atomic_savez(str(tmp_path / name), **arrays)
        with np.load(tmp_path / name) as data:
            assert sorted(data.files) == sorted(arrays)
            for key, value in arrays.items():
                assert data[key].dtype == value.dtype
                np.testing.assert_array_equal(data[key], value)
    assert sorted(os.listdir(tmp_path)) == ["batch_0.npz", "batch_1"]


def test_missing_files_name_the_file(tmp_path):
    missing = str(tmp_path / "missing.x")
    for fn in (io.load_str_list, io.load_json, io.load_referit_gt_mask, io.load_proposal_mask,
               io.load_image):
        with pytest.raises(FileNotFoundError, match="missing.x"):
            fn(missing)


def test_corrupt_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        io.load_json(str(path))


def test_referit_gt_mask(tmp_path):
    segimg = np.array([[0, 1, 2], [3, 0, 0]], dtype=np.uint8)
    path = tmp_path / "8756_2.mat"
    scipy.io.savemat(path, {"segimg_t": segimg})
    mask = io.load_referit_gt_mask(str(path))
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, [[True, False, False], [False, True, True]])


def test_referit_gt_mask_errors(tmp_path):
    path = tmp_path / "nokey.mat"
    scipy.io.savemat(path, {"other": np.zeros((2, 2))})
    with pytest.raises(ValueError, match=r"nokey\.mat.*segimg_t"):
        io.load_referit_gt_mask(str(path))
    bad = tmp_path / "corrupt.mat"
    bad.write_bytes(b"MATLAB 5.0 MAT-file garbage" + bytes(200))
    with pytest.raises(ValueError, match="corrupt.mat"):
        io.load_referit_gt_mask(str(bad))
    empty = tmp_path / "empty.mat"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.mat"):
        io.load_referit_gt_mask(str(empty))


def test_proposal_mask(tmp_path):
    masks = np.zeros((4, 5, 3), dtype=np.uint8)  # MATLAB layout H x W x N
    masks[1, 2, 0] = masks[3, 4, 2] = 1
    path = tmp_path / "p.mat"
    scipy.io.savemat(path, {"mask": masks})
    got = io.load_proposal_mask(str(path))
    assert got.shape == (3, 4, 5)
    np.testing.assert_array_equal(got, masks.transpose(2, 0, 1))
    scipy.io.savemat(path, {"mask": masks[:, :, :1]})  # MATLAB drops the trailing 1
    assert io.load_proposal_mask(str(path)).shape == (1, 4, 5)


@pytest.fixture()
def rgb():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (6, 7, 3)).astype(np.uint8)


def test_load_image_rgb_and_grey(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / "c.png")
    Image.fromarray(rgb[:, :, 1]).save(tmp_path / "g.png")
    got = io.load_image(str(tmp_path / "c.png"))
    assert got.dtype == np.uint8 and got.shape == (6, 7, 3)
    np.testing.assert_array_equal(got, rgb)
    grey = io.load_image(tmp_path / "g.png")
    assert grey.shape == (6, 7)
    np.testing.assert_array_equal(grey, rgb[:, :, 1])


def test_load_image_jpeg_like_pil(tmp_path, rgb):
    path = tmp_path / "im.jpg"
    Image.fromarray(rgb).save(path, quality=90)
    with Image.open(path) as im:
        expected = np.asarray(im)
    np.testing.assert_array_equal(io.load_image(str(path)), expected)


def test_load_image_rgba_drops_alpha(tmp_path, rgb):
    rgba = np.concatenate([rgb, np.full((6, 7, 1), 7, np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(io.load_image(str(tmp_path / "a.png")), rgb)
    la = np.stack([rgb[:, :, 0], rgb[:, :, 1]], axis=2)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(io.load_image(str(tmp_path / "la.png")), rgb[:, :, 0])


def test_load_image_cmyk(tmp_path):
    cmyk = np.zeros((3, 4, 4), np.uint8)
    cmyk[0, :, 0] = 255  # cyan -> (0, 255, 255)
    cmyk[1, :, 3] = 255  # black -> (0, 0, 0)
    Image.fromarray(cmyk, "CMYK").save(tmp_path / "k.tif")
    got = io.load_image(str(tmp_path / "k.tif"))
    assert got.shape == (3, 4, 3)
    np.testing.assert_array_equal(got[0], np.tile([0, 255, 255], (4, 1)))
    np.testing.assert_array_equal(got[1], 0)
    np.testing.assert_array_equal(got[2], 255)


def test_load_image_16_bit(tmp_path):
    values = np.array([[0, 255, 256, 65535], [1000, 40000, 511, 512]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "d.png")
    got = io.load_image(str(tmp_path / "d.png"))
    assert got.dtype == np.uint8 and got.shape == (2, 4)
    np.testing.assert_array_equal(got, values >> 8)  # skimage.img_as_ubyte(uint16)


def test_load_image_palette(tmp_path, rgb):
    colour = Image.fromarray(rgb).quantize(colors=16)
    colour.save(tmp_path / "p.png")
    got = io.load_image(str(tmp_path / "p.png"))
    assert got.shape == (6, 7, 3)
    np.testing.assert_array_equal(got, np.asarray(colour.convert("RGB")))
    grey_palette = Image.new("P", (3, 2))
    grey_palette.putpalette([v for g in range(256) for v in (g, g, g)])
    grey_palette.putdata([0, 10, 20, 30, 40, 250])
    grey_palette.save(tmp_path / "gp.png")
    got = io.load_image(str(tmp_path / "gp.png"))
    np.testing.assert_array_equal(got, [[0, 10, 20], [30, 40, 250]])


def test_load_image_bilevel(tmp_path):
    Image.fromarray(np.array([[True, False]])).save(tmp_path / "b.png")
    np.testing.assert_array_equal(io.load_image(str(tmp_path / "b.png")), [[255, 0]])


def test_load_image_errors(tmp_path, rgb):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match="broken.jpg"):
        io.load_image(str(bad))
    Image.fromarray(rgb).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.jpg"):
        io.load_image(str(tmp_path / "cut.jpg"))
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        io.load_image(str(tmp_path / "nope.jpg"))


def test_load_demo_image(demo_image_path):
    im = io.load_image(str(demo_image_path))
    assert im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] == 3
