"""The synthetic mini-ReferIt: the release's layout and formats, read the way the original
scripts read them, expressions that are true and unique, determinism per seed."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import scipy.io
from PIL import Image

from text_objseg_tf2.synthetic_referit import make_synthetic_referit

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_TRAIN, NUM_TEST = 12, 5

# Independent re-statement of the vocabulary the expressions may use.
COLOR_RGB = {"red": (205, 35, 35), "green": (35, 165, 55), "blue": (35, 75, 205),
             "yellow": (230, 205, 40), "purple": (135, 55, 175)}
SHAPE_WORDS = {"circle", "square", "triangle"}
LOCATION_WORDS = {"left", "right", "top", "bottom"}
SPLIT = re.compile(r"(\W+)")  # the original's SENTENCE_SPLIT_REGEX


def tokens(sentence):
    return [w.strip().lower() for w in SPLIT.split(sentence.strip()) if w.strip()]


def load_json(path):
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic") / "referit"
    summary = make_synthetic_referit(str(out), NUM_TRAIN, NUM_TEST, seed=0, progress=False)
    d = {name: load_json(out / f"referit_{name}.json")
         for name in ("bbox", "imcrop", "imsize", "query_trainval", "query_test",
                      "query_train", "query_val", "query_all")}
    d["dir"], d["summary"] = out, summary
    return d


def gt_mask(data, imcrop):
    # util/io.py load_referit_gt_mask of the original
    return scipy.io.loadmat(str(data["dir"] / "mask" / f"{imcrop}.mat"))["segimg_t"] == 0


def image_array(data, imname):
    return np.asarray(Image.open(data["dir"] / "images" / imname))


def test_layout(data):
    out = data["dir"]
    expected = {"images", "mask", "referit_edgeboxes_top100", "vocabulary_referit.txt",
                "referit_bbox.json", "referit_imcrop.json", "referit_imsize.json"}
    expected |= {f"referit_query_{s}.json" for s in ("trainval", "test", "train", "val", "all")}
    expected |= {f"referit_{s}_imlist.txt" for s in ("trainval", "test", "train", "val", "all")}
    assert set(os.listdir(out)) == expected
    ids = [str(1000 + i) for i in range(NUM_TRAIN + NUM_TEST)]
    assert sorted(os.listdir(out / "images")) == sorted(f"{i}.jpg" for i in ids)
    assert sorted(os.listdir(out / "referit_edgeboxes_top100")) == sorted(f"{i}.txt" for i in ids)
    crops = [c for cs in data["imcrop"].values() for c in cs]
    assert sorted(os.listdir(out / "mask")) == sorted(f"{c}.mat" for c in crops)
    assert sorted(data["imcrop"]) == sorted(f"{i}.jpg" for i in ids)
    assert sorted(data["imsize"]) == sorted(f"{i}.jpg" for i in ids)
    assert set(data["bbox"]) == set(crops) == set(data["query_all"])
    for imname, names in data["imcrop"].items():
        assert 2 <= len(names) <= 4
        for c in names:  # imcrop names are <id>_<k>, as the original's split('_', 1) expects
            assert c.split("_", 1)[0] + ".jpg" == imname
    s = data["summary"]
    assert s["num_images"] == NUM_TRAIN + NUM_TEST and s["num_objects"] == len(crops)
    assert s["image_dir"] == str(out / "images") + os.sep
    assert s["num_trainval_queries"] == sum(len(v) for v in data["query_trainval"].values())


def test_splits_and_imlists(data):
    out = data["dir"]

    def imlist(name):  # the original's load_str_list: one id per line
        with open(out / f"referit_{name}_imlist.txt") as f:
            text = f.read()
        assert text.endswith("\n")
        return text[:-1].split("\n")

    trainval, test = imlist("trainval"), imlist("test")
    assert trainval == [str(1000 + i) for i in range(NUM_TRAIN)]
    assert test == [str(1000 + NUM_TRAIN + i) for i in range(NUM_TEST)]
    assert imlist("all") == trainval + test
    assert sorted(imlist("train") + imlist("val")) == sorted(trainval)
    assert not set(imlist("train")) & set(imlist("val")) and imlist("val")

    def images(query):
        return {c.split("_", 1)[0] for c in query}

    assert images(data["query_trainval"]) == set(trainval)
    assert images(data["query_test"]) == set(test)
    assert images(data["query_train"]) == set(imlist("train"))
    assert images(data["query_val"]) == set(imlist("val"))
    assert data["query_all"] == {**data["query_trainval"], **data["query_test"]}


def test_formats_match_the_release_files(data, referit_data_dir):
    # util/io.py save_json used separators (',\n', ':\n'): one element per line.
    for name in ("referit_bbox.json", "referit_imsize.json", "referit_query_test.json",
                 "referit_imcrop.json"):
        with open(data["dir"] / name) as f:
            ours = f.read(300)
        with open(referit_data_dir / name) as f:
            real = f.read(300)
        assert re.match(r'\{"[^"]+":\n\[', ours) and re.match(r'\{"[^"]+":\n\[', real)
        assert ours.split(":\n[", 1)[1][:1].isdigit() == real.split(":\n[", 1)[1][:1].isdigit()
    with open(referit_data_dir / "vocabulary_referit.txt") as f:
        real_head = [f.readline().strip() for _ in range(4)]
    with open(data["dir"] / "vocabulary_referit.txt") as f:
        assert [f.readline().strip() for _ in range(4)] == real_head
    # the release's imsize is [width, height]: its boxes fit only that way round
    real_bbox = load_json(referit_data_dir / "referit_bbox.json")
    real_size = load_json(referit_data_dir / "referit_imsize.json")
    assert all(b[2] < real_size[c.split("_", 1)[0] + ".jpg"][0] and
               b[3] < real_size[c.split("_", 1)[0] + ".jpg"][1] for c, b in real_bbox.items())
    assert any(w < h for w, h in real_size.values()) and any(w > h for w, h in real_size.values())
    assert all(isinstance(v, int) for b in list(real_bbox.values())[:100] for v in b)


def test_imsize_is_width_height(data):
    for imname, (width, height) in data["imsize"].items():
        with Image.open(data["dir"] / "images" / imname) as im:
            assert im.size == (width, height)
            assert im.format == "JPEG"
        assert image_array(data, imname).shape[:2] == (height, width)


def test_images_vary_in_size_and_include_greyscale(data):
    sizes = set(map(tuple, data["imsize"].values()))
    assert len(sizes) > 5 and any(w != h for w, h in sizes)
    assert all(96 <= v <= 200 for s in sizes for v in s)
    modes = {}
    for imname in data["imcrop"]:
        with Image.open(data["dir"] / "images" / imname) as im:
            modes[imname] = im.mode
    assert set(modes.values()) == {"RGB", "L"}
    grey_ids = {int(n[:-4]) for n, m in modes.items() if m == "L"}
    assert any(i < 1000 + NUM_TRAIN for i in grey_ids)  # one per split
    assert any(i >= 1000 + NUM_TRAIN for i in grey_ids)
    for imname in (n for n, m in modes.items() if m == "L"):
        assert image_array(data, imname).ndim == 2  # what skimage.io.imread gives
        for c in data["imcrop"][imname]:  # colours are not visible in greyscale
            for q in data["query_all"][c]:
                assert not set(tokens(q)) & set(COLOR_RGB), q


def test_masks_and_boxes(data):
    for imname, names in data["imcrop"].items():
        width, height = data["imsize"][imname]
        union = np.zeros((height, width), dtype=int)
        for c in names:
            raw = scipy.io.loadmat(str(data["dir"] / "mask" / f"{c}.mat"))["segimg_t"]
            assert raw.dtype == np.uint8 and raw.shape == (height, width)
            assert set(np.unique(raw)) == {0, 1}
            mask = raw == 0
            union += mask
            ys, xs = np.nonzero(mask)
            # inclusive [xmin, ymin, xmax, ymax], tight around the mask
            assert data["bbox"][c] == [xs.min(), ys.min(), xs.max(), ys.max()]
            assert all(isinstance(v, int) for v in data["bbox"][c])
            # large enough to be learnable at a 4x4 feature map
            assert mask.mean() > 0.015 and xs.max() - xs.min() + 1 >= 0.2 * min(width, height)
        assert union.max() == 1  # objects do not overlap


def object_properties(data, imname):
    """Colour, shape, size, centre of each region, measured from the files alone."""
    im = image_array(data, imname)
    width, height = data["imsize"][imname]
    props = {}
    for c in data["imcrop"][imname]:
        mask = gt_mask(data, c)
        xmin, ymin, xmax, ymax = data["bbox"][c]
        fill = mask.sum() / float((xmax - xmin + 1) * (ymax - ymin + 1))
        shape = "square" if fill > 0.95 else "circle" if fill > 0.7 else "triangle"
        interior = mask.copy()
        for axis in (0, 1):
            for shift in (-3, 3):
                interior &= np.roll(mask, shift, axis=axis)
        color = None
        if im.ndim == 3:
            median = np.median(im[interior].astype(float), axis=0)
            dist = {n: np.linalg.norm(median - rgb) for n, rgb in COLOR_RGB.items()}
            color, second = sorted(dist, key=dist.get)[:2]
            assert dist[color] < 60 and 2 * dist[color] < dist[second], (c, median)
        side = max(xmax - xmin, ymax - ymin) + 1
        ys, xs = np.nonzero(mask)
        props[c] = {"color": color, "shape": shape, "side": side / min(width, height),
                    "cx": (xs.mean() + 0.5) / width, "cy": (ys.mean() + 0.5) / height}
    return props


def test_expressions_are_true_and_unique(data):
    n_checked = 0
    for imname, names in data["imcrop"].items():
        props = object_properties(data, imname)

        def fits(p, words, props=props):
            if (words & set(COLOR_RGB)) and p["color"] not in words:
                return False
            if (words & SHAPE_WORDS) and p["shape"] not in words:
                return False
            for word, key, sign in (("left", "cx", 1), ("right", "cx", -1),
                                    ("top", "cy", 1), ("bottom", "cy", -1)):
                if word in words and sign * p[key] > min(sign * q[key] for q in props.values()):
                    return False
            # between the big and small ranges a shape may be called either
            return not ("big" in words and p["side"] <= 0.32 or
                        "small" in words and p["side"] >= 0.34)

        for c in names:
            for q in data["query_all"][c]:
                words = set(tokens(q))
                assert fits(props[c], words), (c, q, props[c])
                matches = [o for o in names if fits(props[o], words)]
                assert matches == [c], (q, matches)
                n_checked += 1
    assert n_checked == data["summary"]["num_trainval_queries"] + \
        data["summary"]["num_test_queries"]


def test_expressions_vary_like_referit(data):
    queries = [q for qs in data["query_all"].values() for q in qs]
    per_object = [len(qs) for qs in data["query_all"].values()]
    assert min(per_object) >= 2 and max(per_object) <= 4
    assert all(len(set(qs)) == len(qs) for qs in data["query_all"].values())
    assert any(q.endswith(".") for q in queries)
    assert any(q[0].isupper() for q in queries)
    assert any(set(tokens(q)) & LOCATION_WORDS for q in queries)
    assert any(set(tokens(q)) & SHAPE_WORDS and not set(tokens(q)) & set(COLOR_RGB)
               for q in queries)
    assert all(any(re.match(r"\w", t) for t in tokens(q)) for q in queries)


def test_vocabulary(data):
    with open(data["dir"] / "vocabulary_referit.txt") as f:
        text = f.read()
    assert text.endswith("\n")
    words = [w.strip() for w in text.splitlines()]  # load_vocab_dict_from_file strips lines
    assert words[:4] == ["<pad>", "<go>", "<eos>", "<unk>"]
    assert len(words) == len(set(words)) == data["summary"]["vocab_size"]
    for qs in data["query_all"].values():
        for q in qs:
            for t in tokens(q):
                if re.match(r"\w", t):
                    assert t in words, (t, q)


def test_proposals_parse_like_the_original(data):
    def iou(a, b):  # inclusive boxes, as the original's eval_tools.compute_bbox_iou
        iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
        ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
        if iw <= 0 or ih <= 0:
            return 0.0
        area = lambda r: (r[2] - r[0] + 1) * (r[3] - r[1] + 1)  # noqa: E731
        return iw * ih / (area(a) + area(b) - iw * ih)

    counts = []
    for imname, names in data["imcrop"].items():
        path = data["dir"] / "referit_edgeboxes_top100" / (imname[:-4] + ".txt")
        boxes = np.loadtxt(str(path)).astype(int).reshape((-1, 4))
        counts.append(len(boxes))
        width, height = data["imsize"][imname]
        assert 1 <= len(boxes) <= 100
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] < width).all()
        assert (boxes[:, 1] >= 0).all() and (boxes[:, 3] < height).all()
        assert (boxes[:, 0] <= boxes[:, 2]).all() and (boxes[:, 1] <= boxes[:, 3]).all()
        for c in names:
            ious = np.array([iou(b, data["bbox"][c]) for b in boxes])
            assert (ious >= 0.7).sum() >= 1  # det positives
            assert (ious < 1e-6).sum() >= 10  # det negatives (background)
    assert max(counts) == 100


def test_deterministic_per_seed(tmp_path):
    def snapshot(root):
        files = {}
        for dirpath, _, names in os.walk(root):
            for n in names:
                p = os.path.join(dirpath, n)
                with open(p, "rb") as f:
                    files[os.path.relpath(p, root)] = f.read()
        return files

    kwargs = dict(num_train_images=4, num_test_images=3, progress=False)
    make_synthetic_referit(tmp_path / "a", seed=5, **kwargs)
    make_synthetic_referit(tmp_path / "b", seed=5, **kwargs)
    make_synthetic_referit(tmp_path / "c", seed=6, **kwargs)
    a, b, c = (snapshot(tmp_path / n) for n in "abc")
    assert not any(".tmp" in name for name in a)
    assert a == b
    # same layout (the number of masks per image depends on the seed), other content
    def layout(files):
        return {k for k in files if not k.startswith("mask/")}

    assert layout(a) == layout(c)
    assert a["images/1000.jpg"] != c["images/1000.jpg"]
    assert a["referit_query_all.json"] != c["referit_query_all.json"]


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="max_objects"):
        make_synthetic_referit(tmp_path, 2, 1, 0, max_objects=5)
    with pytest.raises(ValueError, match="at least one image"):
        make_synthetic_referit(tmp_path, 0, 0, 0)
    assert not os.listdir(tmp_path)


def test_absl_app(tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    script = os.path.join(REPO_ROOT, "datasets", "make_synthetic_referit.py")
    out = tmp_path / "mini"
    run = subprocess.run([sys.executable, script, f"--output_dir={out}", "--num_train_images=3",
                          "--num_test_images=2", "--seed=1"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["num_images"] == 5 and len(os.listdir(out / "images")) == 5
    run = subprocess.run([sys.executable, script, f"--output_dir={out}", "--max_objects=9"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        "error: need 1 <= min_objects <= max_objects <= 4, got 2, 9"]
