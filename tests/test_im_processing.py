"""Resizing/cropping against an independent numpy re-expression of scikit-image 2016's warp.

scikit-image 0.10-0.12 `resize(im, [h, w])` (order=1) ran `_warp_fast` per channel: output
pixel (r, c) samples the input at ((r + 0.5) * H / h - 0.5, (c + 0.5) * W / w - 0.5) with
bilinear weights, pixels outside the image read as cval = 0, input converted to float64 by
`img_as_float` (uint8 / 255). Then a clip (see `ref_clip`).
"""

import numpy as np
import pytest
import skimage
import skimage.transform

from text_objseg_tf2.util import im_processing as imp

MEAN = np.array([123.68, 116.779, 103.939], dtype=np.float32)


def ref_as_float(im):
    im = np.asarray(im)
    if im.dtype == np.uint8:
        return im.astype(np.float64) / 255.0  # 0.12 divided in place by 255
    return im.astype(np.float64)  # bool and [0, 1] floats


def ref_warp(im, out_h, out_w):
    """The 2016 bilinear sampling, written as the Cython loop's arithmetic, vectorised."""
    f = ref_as_float(im)
    grey = f.ndim == 2
    if grey:
        f = f[:, :, None]
    H, W, C = f.shape
    r = (np.arange(out_h) + 0.5) * (H / out_h) - 0.5
    c = (np.arange(out_w) + 0.5) * (W / out_w) - 0.5
    r0, r1 = np.floor(r).astype(int), np.ceil(r).astype(int)
    c0, c1 = np.floor(c).astype(int), np.ceil(c).astype(int)
    dr, dc = (r - r0)[:, None, None], (c - c0)[None, :, None]
    padded = np.zeros((H + 2, W + 2, C))  # one ring of cval = 0 around the image
    padded[1:-1, 1:-1] = f

    def pix(rr, cc):  # out-of-range reads give 0 (rr, cc never go below -1 or above H, W)
        return padded[(rr + 1)[:, None], (cc + 1)[None, :]]

    top = (1 - dc) * pix(r0, c0) + dc * pix(r0, c1)
    bottom = (1 - dc) * pix(r1, c0) + dc * pix(r1, c1)
    out = (1 - dr) * top + dr * bottom
    return out[:, :, 0] if grey else out


def ref_clip(warped, im, mode):
    if mode == "unit":  # scikit-image <= 0.10: fixed [0, 1]
        return np.clip(warped, 0, 1)
    f = ref_as_float(im)  # 0.11-0.13: the input's own range; exact cval (0) outputs kept
    lo, hi = f.min(), f.max()
    out = np.clip(warped, lo, hi)
    if not lo <= 0 <= hi:
        out[warped == 0] = 0
    return out


def ref_resize(im, out_h, out_w, mode="unit"):
    return ref_clip(ref_warp(im, out_h, out_w), im, mode)


def ref_ubyte(x):
    return np.clip(np.rint(x * 255), 0, 255)


def assert_ubyte_close(actual_u8, ref_float):
    """uint8 equal to round(ref * 255), except +/-1 where ref * 255 is a rounding tie."""
    expected = ref_ubyte(ref_float)
    diff = np.abs(actual_u8.astype(np.int64) - expected)
    frac = ref_float * 255 - np.floor(ref_float * 255)
    tie = np.abs(frac - 0.5) < 1e-9
    assert np.all(diff[~tie] == 0)
    assert np.all(diff[tie] <= 1)


def rand_uint8(rng, shape, low=0, high=256):
    return rng.integers(low, high, size=shape).astype(np.uint8)


CASES = [((7, 9, 3), (13, 5)), ((17, 11), (4, 29)), ((30, 40, 3), (7, 9)), ((5, 6, 3), (5, 6)),
         ((3, 4), (1, 1)), ((1, 1, 3), (4, 6)), ((12, 8), (36, 24)), ((40, 30), (9, 9))]


def test_reference_agrees_with_explicit_skimage():
    """The re-expression is meaningful: it equals today's resize with every 2016 setting."""
    rng = np.random.default_rng(0)
    for shape, out in CASES:
        im = rand_uint8(rng, shape)
        today = skimage.transform.resize(im, out, order=1, mode="constant", cval=0,
                                         anti_aliasing=False, clip=False, preserve_range=False)
        np.testing.assert_allclose(np.clip(today, 0, 1), ref_resize(im, *out), rtol=0,
                                   atol=1e-12)


@pytest.mark.parametrize("shape, out", CASES)
@pytest.mark.parametrize("mode", ["unit", "input"])
def test_resize_2016_uint8(shape, out, mode):
    rng = np.random.default_rng(1)
    im = rand_uint8(rng, shape, low=20)  # min > 0: the two clip modes differ at the border
    got = imp.resize_2016(im, out, clip_mode=mode)
    assert got.dtype == np.float64 and got.shape == out + shape[2:]
    np.testing.assert_allclose(got, ref_resize(im, *out, mode=mode), rtol=0, atol=1e-12)


def test_clip_modes_differ_only_when_input_min_above_zero():
    im = np.full((4, 4), 200, dtype=np.uint8)
    unit, inp = imp.resize_2016(im, (8, 8), "unit"), imp.resize_2016(im, (8, 8), "input")
    assert unit[0, 0] == pytest.approx(200 / 255 * 0.75 ** 2)  # corner blends with black
    assert inp[0, 0] == 200 / 255 and np.all(inp == 200 / 255)  # 0.11-0.13 undid the blend
    im[0, 0] = 0  # (the input clip also trims 1-ulp overshoots above the maximum)
    np.testing.assert_allclose(imp.resize_2016(im, (8, 8), "unit"),
                               imp.resize_2016(im, (8, 8), "input"), rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="clip_mode"):
        imp.resize_2016(im, (8, 8), "today")


def test_float_bool_and_uint8_conversion():
    rng = np.random.default_rng(2)
    mask32 = (rng.random((9, 7)) > 0.5).astype(np.float32)
    got = imp.resize_2016(mask32, (20, 3))
    assert got.dtype == np.float64  # today's resize would keep float32
    np.testing.assert_allclose(got, ref_resize(mask32, 20, 3), rtol=0, atol=1e-12)
    np.testing.assert_allclose(imp.resize_2016(mask32.astype(bool), (20, 3)), got, atol=0)
    # uint8 -> float is x / 255 (0.12), not today's x * (1 / 255): pinned on an identity resize.
    ramp = np.arange(256, dtype=np.uint8).reshape(16, 16)
    same = imp.resize_2016(ramp, (16, 16))
    np.testing.assert_array_equal(same, ramp / 255.0)
    assert np.any(same != ramp * (1 / 255.0))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        imp.resize_2016(np.full((3, 3), 2.0), (4, 4))


def test_pinned_difference_from_todays_defaults():
    """A library upgrade must not silently change numbers: today's defaults are different."""
    rng = np.random.default_rng(3)
    im = rand_uint8(rng, (40, 48, 3), low=30)
    # Downscale: today's default anti-aliases (and reflects at the border).
    down = imp.resize_2016(im, (10, 12))
    np.testing.assert_allclose(down, ref_resize(im, 10, 12), atol=1e-12)
    default_down = skimage.transform.resize(im, (10, 12))
    assert np.mean(np.abs(default_down - down) > 1 / 255) > 0.5
    # Upscale: identical inside, different at the border (reflect vs constant 0) ...
    up = imp.resize_2016(im, (80, 96))
    default_up = skimage.transform.resize(im, (80, 96))
    np.testing.assert_allclose(default_up[1:-1, 1:-1], up[1:-1, 1:-1], atol=1e-12)
    assert np.all(np.abs(default_up[0] - up[0]) > 1e-3)
    # ... and today's clip=True clips to the input's range, undoing the border blend.
    today_clip = skimage.transform.resize(im, (80, 96), order=1, mode="constant",
                                          anti_aliasing=False)
    assert np.all(today_clip[0] >= im.min() / 255) and np.any(up[0] < im.min() / 255)


def ref_pad(im, H, W):
    h, w = im.shape[:2]
    scale = min(H / h, W / w)
    rh, rw = round(h * scale), round(w * scale)  # Python 3 round: halves to even, like np
    top, left = (H - rh) // 2, (W - rw) // 2
    out = np.zeros((H, W) + im.shape[2:])
    out[top:top + rh, left:left + rw] = ref_resize(im, rh, rw)
    return out


def ref_crop(im, H, W):
    h, w = im.shape[:2]
    scale = max(H / h, W / w)
    rh, rw = round(h * scale), round(w * scale)
    top, left = (rh - H) // 2, (rw - W) // 2
    return ref_resize(im, rh, rw)[top:top + H, left:left + W]


PAD_CASES = [((20, 30, 3), 16, 16), ((30, 20), 16, 16), ((5, 48), 16, 16),  # 5*1/3: round
             ((3, 32), 16, 16),  # 3 * 0.5 = 1.5 rounds to 2 (half to even)
             ((5, 32), 16, 16),  # 2.5 rounds to 2
             ((9, 9, 3), 32, 32), ((40, 7, 3), 24, 16)]


@pytest.mark.parametrize("shape, H, W", PAD_CASES)
def test_resize_and_pad(shape, H, W):
    rng = np.random.default_rng(4)
    im = rand_uint8(rng, shape)
    got = imp.resize_and_pad(im, H, W)
    assert got.dtype == np.float64 and got.shape == (H, W) + shape[2:]
    expected = ref_pad(im, H, W)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert_ubyte_close(skimage.img_as_ubyte(got), expected)


def test_pad_rounding_is_half_to_even():
    got = imp.resize_and_pad(np.full((5, 32), 255, np.uint8), 16, 16)
    assert np.count_nonzero(got.any(axis=1)) == 2  # 2.5 -> 2 rows (round half up: 3)
    assert np.flatnonzero(got.any(axis=1)).tolist() == [7, 8]


@pytest.mark.parametrize("shape, H, W", [((16, 16), 20, 30), ((16, 16), 30, 20),
                                         ((16, 16, 3), 5, 48), ((32, 32), 7, 7),
                                         ((8, 8), 3, 32)])
def test_resize_and_crop(shape, H, W):
    rng = np.random.default_rng(5)
    pred = (rng.random(shape) > 0.5).astype(np.float32)
    got = imp.resize_and_crop(pred, H, W)
    assert got.shape == (H, W) + shape[2:] and got.dtype == np.float64
    np.testing.assert_allclose(got, ref_crop(pred, H, W), rtol=0, atol=1e-12)


def ref_crop_bboxes(im, boxes, size, mean):
    if im.ndim == 2:
        im = np.repeat(im[:, :, None], 3, axis=2)
    out = np.zeros((len(boxes), size, size, 3), np.float32)
    floats = []
    for n, (x0, y0, x1, y1) in enumerate(boxes):
        f = ref_resize(im[y0:y1 + 1, x0:x1 + 1], size, size)
        floats.append(f)
        out[n] = ref_ubyte(f)
    return out - mean, floats


@pytest.mark.parametrize("shape", [(20, 24, 3), (20, 24)])
def test_crop_bboxes_subtract_mean(shape):
    rng = np.random.default_rng(6)
    im = rand_uint8(rng, shape, low=10)
    boxes = np.array([[0, 0, 23, 19], [3, 2, 9, 15], [5, 5, 5, 5], [20, 1, 23, 3],
                      [0, 10, 30, 40]])  # last box exceeds the image: the slice clips it
    got = imp.crop_bboxes_subtract_mean(im, boxes, 8, MEAN)
    expected, floats = ref_crop_bboxes(im, boxes, 8, MEAN)
    assert got.dtype == np.float32 and got.shape == (5, 8, 8, 3)
    for n in range(len(boxes)):
        u8 = np.rint(got[n] + MEAN).astype(np.int64)
        assert_ubyte_close(u8, floats[n])
    assert np.max(np.abs(got - expected)) <= 1  # 0 except on rounding ties
    # A list box works too, and greyscale crops are the tiled channels.
    one = imp.crop_bboxes_subtract_mean(im, [3, 2, 9, 15], 8, MEAN)
    np.testing.assert_array_equal(one[0], got[1])
    if len(shape) == 2:
        np.testing.assert_array_equal(got[..., 0] + MEAN[0] - (got[..., 1] + MEAN[1]), 0)


@pytest.mark.parametrize("box", [[5, 5, 4, 9], [-1, 0, 3, 3], [24, 0, 30, 5], [0, 20, 5, 25]])
def test_crop_bboxes_empty_box_is_an_error(box):
    with pytest.raises(ValueError, match="empty crop"):
        imp.crop_bboxes_subtract_mean(np.zeros((20, 24, 3), np.uint8), box, 8, MEAN)


def test_bboxes_from_masks():
    masks = np.zeros((2, 6, 7), dtype=bool)
    masks[0, 1:4, 2:6] = True
    masks[1, 5, 0] = True
    got = imp.bboxes_from_masks(masks)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, [[2, 1, 5, 3], [0, 5, 0, 5]])
    np.testing.assert_array_equal(imp.bboxes_from_masks(masks[0]), [[2, 1, 5, 3]])
    with pytest.raises(ValueError, match="empty"):
        imp.bboxes_from_masks(np.zeros((4, 4)))


def test_crop_masks_subtract_mean():
    rng = np.random.default_rng(7)
    im = rand_uint8(rng, (12, 14, 3))
    mask = np.zeros((12, 14), np.uint8)
    mask[2:9, 3:11] = rng.integers(0, 2, size=(7, 8))
    mask[2, 3] = mask[8, 10] = 1
    masked = np.where(mask[:, :, None] == 1, im, MEAN.astype(np.uint8))  # 123, 116, 103
    expected, floats = ref_crop_bboxes(masked, [[3, 2, 10, 8]], 6, MEAN)
    got = imp.crop_masks_subtract_mean(im, mask, 6, MEAN)
    assert got.shape == (1, 6, 6, 3) and got.dtype == np.float32
    assert_ubyte_close(np.rint(got[0] + MEAN).astype(np.int64), floats[0])
    np.testing.assert_array_equal(imp.crop_masks_subtract_mean(im, mask.astype(bool), 6, MEAN),
                                  got)


def test_bad_input_errors():
    with pytest.raises(ValueError, match="H x W"):
        imp.resize_2016(np.zeros((2, 2, 2, 2)), (3, 3))
    with pytest.raises(ValueError, match="resize"):
        imp.resize_2016(np.zeros((2, 2)), (0, 3))
    with pytest.raises(ValueError, match="H x W"):
        imp.resize_and_pad(np.zeros(5), 4, 4)
    with pytest.raises(ValueError, match="elongated"):
        imp.resize_and_pad(np.zeros((1000, 1)), 4, 4)
    with pytest.raises(ValueError, match="channels"):
        imp.crop_bboxes_subtract_mean(np.zeros((4, 4, 4), np.uint8), [0, 0, 1, 1], 4, MEAN)
    with pytest.raises(ValueError, match="integer"):
        imp.crop_bboxes_subtract_mean(np.zeros((4, 4), np.uint8), [0, 0, 1.5, 1], 4, MEAN)
    with pytest.raises(ValueError, match="do not fit"):
        imp.crop_masks_subtract_mean(np.zeros((4, 4), np.uint8), np.ones((3, 4)), 4, MEAN)

# --- Golden values: the release's im_processing run under Python 2.7 with the REAL old
# scikit-image (0.12.3 as in the author's Anaconda, and 0.10.1), inputs from _ramp().
SK012_GREY_UP = (
    [[0.11764705882352942, 0.16302521008403378, 0.2459383753501403, 0.3288515406162469,
      0.4117647058823534, 0.3949579831932792],
     [0.37441643323996304, 0.5218487394957989, 0.6185807656395897, 0.7153127917833806,
      0.5588235294117656, 0.31512605042016867],
     [0.5088702147525674, 0.6831932773109239, 0.7799253034547149, 0.8766573295985056,
      0.6568627450980402, 0.3440709617180221],
     [0.3267973856209156, 0.46470588235294136, 0.5614379084967317, 0.6581699346405225,
      0.7549019607843135, 0.6895424836601316],
     [0.6722689075630259, 0.5627450980392157, 0.3429505135387486, 0.43968253968253945,
      0.5364145658263303, 0.5074696545284788],
     [0.7012138188608783, 0.6607843137254901, 0.5042950513538751, 0.6010270774976658,
      0.5078431372549022, 0.3253968253968259],
     [0.47619047619047655, 0.633613445378151, 0.7165266106442575, 0.7994397759103639,
      0.5025210084033611, 0.15406162464986]]
)
SK012_GREY_DOWN = (
    [[0.3836601307189548, 0.5261437908496734], [0.46470588235294114, 0.7549019607843135],
     [0.6934640522875817, 0.5405228758169935]]
)
SK012_COLOUR = (
    [[[0.18267973856209171, 0.3558823529411766, 0.4584967320261432],
      [0.5944444444444438, 0.7676470588235287, 0.44673202614379104],
      [0.3709150326797379, 0.5441176470588227, 0.7173202614379076],
      [0.6415032679738568, 0.32058823529411706, 0.4937908496732019],
      [0.6297385620915025, 0.7323529411764712, 0.27026143790849616]],
     [[0.3533333333333332, 0.5611764705882352, 0.7266666666666663],
      [0.5933333333333337, 0.6741176470588237, 0.5854901960784314],
      [0.6215686274509797, 0.6176470588235299, 0.6137254901960784],
      [0.649803921568628, 0.5611764705882347, 0.6419607843137258],
      [0.508627450980392, 0.6741176470588242, 0.5007843137254895]],
     [[0.5462745098039211, 0.6270588235294121, 0.8207843137254905],
      [0.4898039215686276, 0.4858823529411761, 0.5949019607843139],
      [0.715686274509804, 0.5705882352941182, 0.425490196078431],
      [0.5462745098039213, 0.6552941176470587, 0.651372549019609],
      [0.3203921568627444, 0.5141176470588232, 0.5949019607843136]],
     [[0.7815686274509802, 0.3541176470588239, 0.49137254901960814],
      [0.5556862745098037, 0.7211764705882349, 0.43490196078431426],
      [0.38627450980392175, 0.5235294117647059, 0.6607843137254898],
      [0.612156862745099, 0.3258823529411764, 0.49137254901960786],
      [0.5556862745098036, 0.692941176470589, 0.2654901960784313]],
     [[0.6356862745098043, 0.4199999999999997, 0.5854901960784311],
      [0.7486274509803916, 0.6600000000000003, 0.4443137254901961],
      [0.4803921568627446, 0.6882352941176466, 0.6843137254901964],
      [0.5086274509803925, 0.41999999999999943, 0.6278431372549014],
      [0.7486274509803923, 0.5329411764705888, 0.35960784313725447]],
     [[0.359150326797386, 0.46176470588235347, 0.6349673202614387],
      [0.7709150326797395, 0.4500000000000006, 0.4114379084967325],
      [0.5473856209150333, 0.7205882352941184, 0.5408496732026156],
      [0.323856209150327, 0.49705882352941216, 0.6702614379084973],
      [0.735620915032681, 0.2735294117647059, 0.446732026143791]]]
)
SK012_PAD = (
    [[0.0, 0.11764705882352942, 0.15453431372548995, 0.23312908496731988, 0.3117238562091497,
      0.3903186274509796, 0.37438725490195934, 0.0],
     [0.0, 0.3096405228758165, 0.44411764705882295, 0.5408496732026138, 0.6375816993464045,
      0.5404411764705879, 0.34926470588235287, 0.0],
     [0.0, 0.5657679738562091, 0.7514705882352944, 0.8482026143790852, 0.9449346405228761,
      0.6262254901960778, 0.23611111111111024, 0.0],
     [0.0, 0.40645424836601296, 0.5602941176470588, 0.6570261437908498, 0.7537581699346408,
      0.7120098039215684, 0.5383986928104565, 0.0],
     [0.0, 0.4779411764705883, 0.5075980392156864, 0.4658496732026144, 0.5625816993464052,
      0.6593137254901962, 0.6098856209150321, 0.0],
     [0.0, 0.7802287581699348, 0.5933823529411767, 0.27467320261437905, 0.3714052287581698,
      0.46813725490196073, 0.45057189542483606, 0.0],
     [0.0, 0.6670751633986922, 0.6791666666666669, 0.5820261437908503, 0.678758169934641,
      0.5262254901960783, 0.29125816993464004, 0.0],
     [0.0, 0.4513888888888877, 0.600612745098038, 0.6792075163398679, 0.7578022875816977,
      0.47634803921568497, 0.14603758169934597, 0.0]]
)
SK012_CROP = (
    [[0.8333333333333333, 0.4999999999999998, 0.0, 0.0, 0.5000000000000009, 0.8333333333333321,
      0.16666666666666474, 0.0, 0.0],
     [0.8333333333333329, 0.49999999999999994, 0.0, 0.0, 0.5000000000000009, 0.8333333333333321,
      0.16666666666666474, 0.0, 0.0],
     [0.8333333333333329, 0.5000000000000001, 0.0, 0.0, 0.5000000000000009, 0.8333333333333321,
      0.16666666666666563, 0.0, 0.0],
     [0.8333333333333328, 0.5000000000000002, 0.0, 0.0, 0.5000000000000009, 0.8333333333333321,
      0.16666666666666563, 0.0, 0.0],
     [0.8333333333333328, 0.5000000000000003, 0.0, 0.0, 0.5000000000000004, 0.8333333333333326,
      0.16666666666666563, 0.0, 0.0]]
)
SK012_CROPS_U8 = (
    [[[[167, 236, 99], [166, 214, 77], [145, 193, 56], [123, 171, 180], [102, 170, 220]],
      [[77, 132, 141], [201, 111, 182], [180, 89, 160], [158, 68, 139], [137, 191, 117]],
      [[166, 121, 88], [144, 134, 171], [122, 194, 149], [101, 172, 127], [79, 150, 106]],
      [[108, 110, 181], [87, 109, 159], [146, 136, 138], [205, 115, 116], [184, 93, 95]],
      [[143, 214, 78], [122, 193, 56], [112, 171, 138], [102, 150, 221], [80, 128, 199]]],
     [[[96, 125, 196], [164, 97, 168], [135, 137, 139], [199, 178, 110], [170, 149, 81]],
      [[165, 106, 122], [178, 207, 93], [153, 178, 64], [125, 154, 220], [96, 167, 192]],
      [[137, 208, 48], [108, 179, 227], [79, 150, 221], [50, 121, 192], [183, 92, 163]],
      [[108, 133, 204], [80, 104, 175], [143, 122, 147], [207, 93, 118], [178, 64, 121]],
      [[122, 151, 130], [190, 122, 101], [161, 94, 118], [132, 203, 136], [104, 175, 107]]],
     [[[130, 54, 80], [184, 56, 113], [178, 54, 107], [173, 54, 101], [120, 54, 70]],
      [[122, 75, 124], [173, 105, 176], [165, 98, 169], [158, 91, 162], [109, 62, 112]],
      [[62, 111, 161], [86, 157, 228], [79, 150, 221], [72, 143, 214], [54, 99, 148]],
      [[98, 148, 101], [138, 209, 142], [131, 202, 135], [124, 195, 127], [86, 135, 88]],
      [[98, 138, 54], [139, 195, 67], [133, 190, 62], [127, 184, 56], [88, 128, 54]]]]
)
SK010_GREY_UP = (
    [[0.08403361344537816, 0.16302521008403367, 0.2459383753501402, 0.32885154061624666,
      0.41176470588235314, 0.3949579831932762],
     [0.37441643323996254, 0.5218487394957985, 0.6185807656395893, 0.7153127917833801,
      0.558823529411764, 0.3151260504201674],
     [0.5088702147525672, 0.6831932773109242, 0.7799253034547153, 0.8766573295985064,
      0.6568627450980383, 0.34407096171801965],
     [0.3267973856209146, 0.464705882352941, 0.561437908496732, 0.6581699346405231,
      0.7549019607843137, 0.6895424836601295],
     [0.6722689075630242, 0.5627450980392161, 0.3429505135387487, 0.4396825396825399,
      0.5364145658263307, 0.5074696545284775],
     [0.7012138188608762, 0.6607843137254906, 0.504295051353875, 0.6010270774976656,
      0.5078431372549019, 0.32539682539682535],
     [0.4761904761904748, 0.6336134453781508, 0.7165266106442573, 0.7994397759103639,
      0.5025210084033611, 0.15406162464985998]]
)
SK010_PAD = (
    [[0.0, 0.07965686274509806, 0.1545343137254903, 0.2331290849673205, 0.3117238562091507,
      0.3903186274509809, 0.3743872549019602, 0.0],
     [0.0, 0.30964052287581706, 0.4441176470588236, 0.5408496732026147, 0.6375816993464056,
      0.5404411764705879, 0.3492647058823519, 0.0],
     [0.0, 0.5657679738562089, 0.7514705882352941, 0.848202614379085, 0.9449346405228758,
      0.6262254901960773, 0.23611111111111072, 0.0],
     [0.0, 0.4064542483660129, 0.5602941176470588, 0.6570261437908498, 0.7537581699346405,
      0.7120098039215684, 0.5383986928104566, 0.0],
     [0.0, 0.477941176470588, 0.5075980392156862, 0.4658496732026144, 0.5625816993464053,
      0.6593137254901963, 0.6098856209150314, 0.0],
     [0.0, 0.7802287581699342, 0.5933823529411765, 0.27467320261437916, 0.37140522875817006,
      0.46813725490196106, 0.45057189542483567, 0.0],
     [0.0, 0.6670751633986924, 0.6791666666666667, 0.5820261437908494, 0.6787581699346404,
      0.5262254901960779, 0.29125816993463993, 0.0],
     [0.0, 0.45138888888888895, 0.6006127450980399, 0.6792075163398701, 0.7578022875817003,
      0.4763480392156863, 0.14603758169934636, 0.0]]
)
SK010_CROPS_U8 = (
    [[[[167, 236, 99], [166, 214, 77], [145, 193, 56], [123, 171, 180], [102, 170, 220]],
      [[77, 132, 141], [201, 111, 182], [180, 89, 160], [158, 68, 139], [137, 191, 117]],
      [[166, 121, 88], [144, 134, 171], [122, 193, 149], [101, 172, 127], [79, 150, 106]],
      [[108, 110, 181], [87, 109, 159], [146, 136, 138], [205, 115, 116], [184, 93, 95]],
      [[143, 214, 78], [122, 193, 56], [112, 171, 138], [102, 150, 221], [80, 128, 199]]],
     [[[96, 125, 196], [164, 97, 168], [135, 137, 139], [199, 178, 110], [170, 149, 81]],
      [[165, 106, 122], [178, 207, 93], [153, 178, 64], [125, 154, 220], [96, 167, 192]],
      [[137, 208, 48], [108, 179, 227], [79, 150, 221], [50, 121, 192], [183, 92, 163]],
      [[108, 133, 204], [80, 104, 175], [143, 122, 147], [207, 93, 118], [178, 64, 121]],
      [[122, 151, 130], [190, 122, 101], [161, 94, 118], [132, 203, 136], [104, 175, 107]]],
     [[[130, 40, 80], [184, 56, 113], [178, 50, 107], [173, 45, 101], [120, 30, 70]],
      [[122, 75, 124], [173, 105, 176], [165, 98, 169], [158, 91, 162], [109, 62, 112]],
      [[62, 111, 161], [86, 157, 228], [79, 150, 221], [72, 143, 214], [49, 99, 148]],
      [[98, 148, 101], [138, 209, 142], [131, 202, 135], [124, 195, 127], [86, 135, 88]],
      [[98, 138, 48], [139, 195, 67], [133, 190, 62], [127, 184, 56], [88, 128, 38]]]]
)


def _ramp(shape, mult, lo):
    n = int(np.prod(shape))
    return ((np.arange(n) * mult) % (256 - lo) + lo).reshape(shape).astype(np.uint8)


@pytest.mark.parametrize("mode", ["input", "unit"])
def test_against_real_old_scikit_image(mode):
    """clip_mode="input" is scikit-image 0.12.3, "unit" is 0.10.1 (1e-12; uint8 +/-1 on ties,
    whose direction in 2016 came from the SVD noise of its estimated affine transform)."""
    grey, colour = _ramp((5, 4), 37, 30), _ramp((4, 6, 3), 53, 40)
    big = _ramp((9, 8, 3), 71, 25)
    mask = (_ramp((6, 6), 7, 0) % 3 == 0).astype(np.float32)
    golden = {"input": (SK012_GREY_UP, SK012_PAD, SK012_CROPS_U8),
              "unit": (SK010_GREY_UP, SK010_PAD, SK010_CROPS_U8)}[mode]
    close = {"rtol": 0, "atol": 1e-12}
    np.testing.assert_allclose(imp.resize_2016(grey, (7, 6), mode), golden[0], **close)
    np.testing.assert_allclose(imp.resize_and_pad(grey, 8, 8, mode), golden[1], **close)
    np.testing.assert_allclose(imp.resize_2016(grey, (3, 2), mode), SK012_GREY_DOWN, **close)
    np.testing.assert_allclose(imp.resize_2016(colour, (6, 5), mode), SK012_COLOUR, **close)
    np.testing.assert_allclose(imp.resize_and_crop(mask, 5, 9, mode), SK012_CROP, **close)
    boxes = np.array([[1, 2, 6, 7], [0, 0, 7, 8], [3, 3, 4, 5]])
    crops = imp.crop_bboxes_subtract_mean(big, boxes, 5, MEAN, mode)
    got_u8 = np.rint(crops + MEAN).astype(np.int64)
    floats = [ref_resize(big[y0:y1 + 1, x0:x1 + 1], 5, 5, mode) for x0, y0, x1, y1 in boxes]
    frac = np.stack(floats) * 255 % 1
    tie = np.abs(frac - 0.5) < 1e-9
    diff = np.abs(got_u8 - np.asarray(golden[2]))
    assert np.all(diff[~tie] == 0) and np.all(diff[tie] <= 1)
