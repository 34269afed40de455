"""Batch builders vs an independent straight-line re-expression of the original scripts.

The reference functions below follow exp-referit/build_training_batches_{seg,det}.py of the
release step by step, with scipy.io.loadmat, re.split and scikit-image's resize configured as
the 2016 version (SPEC, "Preprocessing"); they do not call text_objseg_tf2.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import scipy.io
import skimage
import skimage.io
import skimage.transform
from PIL import Image

from text_objseg_tf2 import batch_builders
from text_objseg_tf2.synthetic_referit import make_synthetic_referit

H = W = 64
T = 8
SEG_N = 4
DET_N = 16

# ---------------------------------------------------------------------------------------------
# Independent reference (the original algorithm, straight-line)
# ---------------------------------------------------------------------------------------------


def ref_read_image(path):
    im = skimage.io.imread(path)
    if im.ndim == 3 and im.shape[2] == 4:  # RGBA: alpha dropped
        im = im[:, :, :3]
    if im.dtype == np.uint16:  # 16-bit: as img_as_ubyte converts it
        im = skimage.img_as_ubyte(im)
    return im


def ref_resize(im, shape):
    # 2016 scikit-image: img_as_float (uint8 / 255), bilinear, constant 0 border, no
    # anti-aliasing, clip to [0, 1].
    if im.dtype == np.uint8:
        im = im.astype(np.float64) / 255
    out = skimage.transform.resize(im, tuple(shape) + im.shape[2:], order=1, mode="constant",
                                   cval=0, anti_aliasing=False, clip=False)
    return np.clip(out, 0, 1)


def ref_resize_and_pad(im, h, w):
    im_h, im_w = im.shape[:2]
    scale = min(h / im_h, w / im_w)
    rh, rw = int(np.round(im_h * scale)), int(np.round(im_w * scale))
    ph, pw = int(np.floor(h - rh) / 2), int(np.floor(w - rw) / 2)
    resized = ref_resize(im, [rh, rw])
    out = np.zeros((h, w) + im.shape[2:], dtype=resized.dtype)
    out[ph:ph + rh, pw:pw + rw, ...] = resized
    return out


def ref_vocab(vocab_file):
    with open(vocab_file) as f:
        words = [w.strip() for w in f.readlines()]
    return {words[n]: n for n in range(len(words))}


def ref_sentence(sentence, vocab, T):
    words = [w.lower() for w in re.split(r"(\W+)", sentence.strip()) if len(w.strip()) > 0]
    if words[-1] == ".":
        words = words[:-1]
    ids = [vocab.get(w, vocab["<unk>"]) for w in words][:T]
    return [vocab["<pad>"]] * (T - len(ids)) + ids


def ref_seg_batches(info, T, N, input_H, input_W, drop=lambda sample: False):
    query_dict = json.load(open(info["query_file"]))
    vocab = ref_vocab(info["vocab_file"])
    samples = []
    for imcrop_name in query_dict:
        for description in query_dict[imcrop_name]:
            samples.append((imcrop_name.split("_", 1)[0] + ".jpg", imcrop_name + ".mat",
                            description))
    np.random.seed(3)
    shuffle_idx = np.random.permutation(len(samples))
    samples = [samples[n] for n in shuffle_idx]
    samples = [s for s in samples if not drop(s)]
    batches = []
    for n_batch in range(len(samples) // N):
        text_seq_batch = np.zeros((T, N), dtype=np.int32)
        imcrop_batch = np.zeros((N, input_H, input_W, 3), dtype=np.uint8)
        label_coarse_batch = np.zeros((N, input_H // 32, input_W // 32, 1), dtype=bool)
        label_fine_batch = np.zeros((N, input_H, input_W, 1), dtype=bool)
        for i in range(N):
            imname, mask_name, description = samples[n_batch * N + i]
            im = ref_read_image(os.path.join(info["image_dir"], imname))
            mask = (scipy.io.loadmat(os.path.join(info["mask_dir"], mask_name))["segimg_t"] == 0)
            mask = mask.astype(np.float32)
            processed_im = skimage.img_as_ubyte(ref_resize_and_pad(im, input_H, input_W))
            if processed_im.ndim == 2:
                processed_im = processed_im[:, :, np.newaxis]
            processed_mask = ref_resize_and_pad(mask, input_H, input_W)
            subsampled = skimage.transform.downscale_local_mean(processed_mask, (32, 32))
            text_seq_batch[:, i] = ref_sentence(description, vocab, T)
            imcrop_batch[i, ...] = processed_im  # H x W x 1 broadcasts for grey images
            label_coarse_batch[i, ...] = (subsampled > 0)[:, :, np.newaxis]
            label_fine_batch[i, ...] = (processed_mask > 0)[:, :, np.newaxis]
        batches.append({"text_seq_batch": text_seq_batch, "imcrop_batch": imcrop_batch,
                        "label_coarse_batch": label_coarse_batch,
                        "label_fine_batch": label_fine_batch})
    return batches, samples


def ref_iou(boxes, gt):
    a = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    b = (gt[:, 2] - gt[:, 0] + 1) * (gt[:, 3] - gt[:, 1] + 1)
    iw = np.maximum(np.minimum(boxes[:, 2], gt[:, 2]) - np.maximum(boxes[:, 0], gt[:, 0]) + 1, 0)
    ih = np.maximum(np.minimum(boxes[:, 3], gt[:, 3]) - np.maximum(boxes[:, 1], gt[:, 1]) + 1, 0)
    return iw * ih / (a + b - iw * ih)


def ref_det_batches(info, T, N, pos_iou=0.7, neg_iou=1e-6, neg_to_pos_ratio=1.0,
                    max_batches=None):
    query_dict = json.load(open(info["query_file"]))
    bbox_dict = json.load(open(info["bbox_file"]))
    imcrop_dict = json.load(open(info["imcrop_file"]))
    imsize_dict = json.load(open(info["imsize_file"]))
    vocab = ref_vocab(info["vocab_file"])
    imlist = []
    for name in query_dict:  # images in order of first appearance
        imname = name.split("_", 1)[0] + ".jpg"
        if imname not in imlist:
            imlist.append(imname)
    pos, neg = [], []
    for imname in imlist:
        proposals = np.loadtxt(os.path.join(info["bbox_proposal_dir"], imname[:-4] + ".txt"))
        proposals = proposals.astype(int).reshape((-1, 4))
        for imcrop_name in imcrop_dict[imname]:
            if imcrop_name not in query_dict:
                continue
            gt = np.array(bbox_dict[imcrop_name]).reshape((1, 4))
            ious = ref_iou(proposals, gt)
            pos_boxes = np.concatenate((gt, proposals[ious >= pos_iou, :]), axis=0)
            neg_boxes = proposals[ious < neg_iou, :]
            for description in query_dict[imcrop_name]:
                for b in pos_boxes:
                    pos.append((imname, imsize_dict[imname], b, description, 1))
                for b in neg_boxes:
                    neg.append((imname, imsize_dict[imname], b, description, 0))
    np.random.seed(3)
    idx = np.random.choice(len(neg), min(len(neg), int(neg_to_pos_ratio * len(pos))),
                           replace=False)
    samples = pos + [neg[n] for n in idx]
    np.random.seed(3)
    perm = np.random.permutation(len(samples))
    samples = [samples[n] for n in perm]
    batches = []
    for n_batch in range(len(samples) // N)[:max_batches]:
        text_seq_batch = np.zeros((T, N), dtype=np.int32)
        imcrop_batch = np.zeros((N, 224, 224, 3), dtype=np.uint8)
        spatial_batch = np.zeros((N, 8), dtype=np.float32)
        label_batch = np.zeros((N, 1), dtype=bool)
        for i in range(N):
            imname, (im_w, im_h), box, description, label = samples[n_batch * N + i]
            im = ref_read_image(os.path.join(info["image_dir"], imname))
            if im.ndim == 2:
                im = np.stack([im] * 3, axis=2)  # the original crashed here
            xmin, ymin, xmax, ymax = box
            imcrop = skimage.img_as_ubyte(ref_resize(im[ymin:ymax + 1, xmin:xmax + 1, :],
                                                     [224, 224]))
            x1, y1 = xmin * 2.0 / im_w - 1, ymin * 2.0 / im_h - 1
            x2, y2 = xmax * 2.0 / im_w - 1, ymax * 2.0 / im_h - 1
            text_seq_batch[:, i] = ref_sentence(description, vocab, T)
            imcrop_batch[i] = imcrop
            spatial_batch[i] = [x1, y1, x2, y2, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]
            label_batch[i] = label
        batches.append({"text_seq_batch": text_seq_batch, "imcrop_batch": imcrop_batch,
                        "spatial_batch": spatial_batch, "label_batch": label_batch})
    return batches, samples


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("mini_referit")
    return make_synthetic_referit(root / "data", num_train_images=5, num_test_images=1, seed=3,
                                  image_size=(40, 72), num_proposals=12,
                                  greyscale_fraction=0.3, progress=False)


def copy_dataset(info, dst):
    shutil.copytree(info["output_dir"], dst)
    return {k: (v.replace(info["output_dir"], str(dst)) if isinstance(v, str) else v)
            for k, v in info.items()}


def seg_kwargs(info, folder, **kw):
    args = dict(image_dir=info["image_dir"], mask_dir=info["mask_dir"],
                query_file=info["query_file"], vocab_file=info["vocab_file"],
                data_folder=str(folder), data_prefix="seg", T=T, N=SEG_N, input_H=H,
                input_W=W, progress=False)
    args.update(kw)
    return args


def det_kwargs(info, folder, **kw):
    args = dict(image_dir=info["image_dir"], bbox_proposal_dir=info["bbox_proposal_dir"],
                query_file=info["query_file"], bbox_file=info["bbox_file"],
                imcrop_file=info["imcrop_file"], imsize_file=info["imsize_file"],
                vocab_file=info["vocab_file"], data_folder=str(folder), data_prefix="det",
                T=T, N=DET_N, progress=False)
    args.update(kw)
    return args


@pytest.fixture(scope="module")
def det_dataset(tmp_path_factory):
    # det crops cost ~20 ms each (224 x 224 bilinear): a smaller set than seg's
    root = tmp_path_factory.mktemp("mini_referit_det")
    return make_synthetic_referit(root / "data", num_train_images=3, num_test_images=1, seed=5,
                                  image_size=(40, 64), num_proposals=8,
                                  greyscale_fraction=0.34, progress=False)


@pytest.fixture(scope="module")
def seg_built(dataset, tmp_path_factory):
    folder = tmp_path_factory.mktemp("seg1")
    report = batch_builders.build_batches("seg", **seg_kwargs(dataset, folder))
    return folder, report


@pytest.fixture(scope="module")
def det_built(det_dataset, tmp_path_factory):
    folder = tmp_path_factory.mktemp("det1")
    report = batch_builders.build_batches("det", **det_kwargs(det_dataset, folder))
    return folder, report


def load_all(folder, prefix, num):
    out = []
    for n in range(num):
        with np.load(os.path.join(folder, f"{prefix}_{n}.npz")) as f:
            out.append({k: f[k] for k in f.files})
    return out


def batch_files(folder, prefix):
    names = sorted(n for n in os.listdir(folder) if re.fullmatch(rf"{prefix}_\d+\.npz", n))
    return {n: open(os.path.join(folder, n), "rb").read() for n in names}


def assert_batches_equal(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert sorted(g) == sorted(w)
        for key in w:
            assert g[key].dtype == w[key].dtype, key
            assert g[key].shape == w[key].shape, key
            np.testing.assert_array_equal(g[key], w[key], err_msg=key)


# ---------------------------------------------------------------------------------------------
# Faithfulness
# ---------------------------------------------------------------------------------------------


def test_seg_batches_match_original_algorithm(dataset, seg_built):
    folder, report = seg_built
    want, samples = ref_seg_batches(dataset, T, SEG_N, H, W)
    assert report.num_batches == len(want) >= 5 and report.num_built == len(want)
    assert report.num_samples == len(samples)
    assert_batches_equal(load_all(folder, "seg", len(want)), want)
    assert not os.path.exists(os.path.join(folder, f"seg_{len(want)}.npz"))
    # Greyscale images are in the batches, tiled to 3 channels as numpy broadcast them.
    grey = [i for i, s in enumerate(samples[:len(want) * SEG_N])
            if Image.open(os.path.join(dataset["image_dir"], s[0])).mode == "L"]
    assert grey
    ims = np.concatenate([b["imcrop_batch"] for b in want])
    for i in grey:
        assert np.array_equal(ims[i, ..., 0], ims[i, ..., 2]) and ims[i].any()


def test_det_batches_match_original_algorithm(det_dataset, det_built):
    dataset = det_dataset
    folder, report = det_built
    want, samples = ref_det_batches(dataset, T, DET_N)
    assert report.num_batches == len(want) >= 4
    assert_batches_equal(load_all(folder, "det", len(want)), want)
    labels = np.concatenate([b["label_batch"] for b in want])
    assert labels.any() and not labels.all()
    assert any(Image.open(os.path.join(dataset["image_dir"], s[0])).mode == "L"
               for s in samples[:len(want) * DET_N])


def test_det_negative_subsampling_ratio(det_dataset, tmp_path):
    dataset = det_dataset
    report = batch_builders.build_batches(
        "det", **det_kwargs(dataset, tmp_path, neg_to_pos_ratio=0.5, max_new_batches=2))
    want, samples = ref_det_batches(dataset, T, DET_N, neg_to_pos_ratio=0.5, max_batches=2)
    labels = [s[4] for s in samples]
    assert labels.count(0) == int(0.5 * labels.count(1))
    assert report.num_samples == len(samples) and report.num_built == 2
    assert_batches_equal(load_all(tmp_path, "det", 2), want)


def test_det_sample_order_is_query_order_then_imcrop_order():
    query = {"2_2": ["b two"], "1_1": ["a one", "a uno"], "2_1": ["b one"]}
    imcrop = {"2.jpg": ["2_1", "2_3", "2_2"], "1.jpg": ["1_1"]}
    bbox = {"2_1": [0, 0, 4, 4], "2_2": [6, 5, 9, 9], "1_1": [0, 0, 9, 9]}
    imsize = {"1.jpg": [10, 10], "2.jpg": [10, 10]}
    props = {"1.jpg": np.array([[0, 0, 9, 8], [0, 0, 1, 1]]),
             "2.jpg": np.array([[0, 0, 4, 4], [6, 6, 9, 9]])}
    pos, neg = batch_builders.collect_det_samples(query, bbox, imcrop, imsize, props.get)
    got = [(s.imcrop_name, s.description, s.bbox) for s in (pos[i] for i in range(len(pos)))]
    assert got == [("2_1", "b one", (0, 0, 4, 4)), ("2_1", "b one", (0, 0, 4, 4)),
                   ("2_2", "b two", (6, 5, 9, 9)), ("2_2", "b two", (6, 6, 9, 9)),
                   ("1_1", "a one", (0, 0, 9, 9)), ("1_1", "a one", (0, 0, 9, 8)),
                   ("1_1", "a uno", (0, 0, 9, 9)), ("1_1", "a uno", (0, 0, 9, 8))]
    assert [(neg[i].imcrop_name, neg[i].bbox) for i in range(len(neg))] == [
        ("2_1", (6, 6, 9, 9)), ("2_2", (0, 0, 4, 4))]
    assert not neg.labels.any() and pos.labels.all()


# ---------------------------------------------------------------------------------------------
# Parallel building, resume, manifest
# ---------------------------------------------------------------------------------------------


def test_two_workers_give_identical_files(dataset, det_dataset, seg_built, det_built,
                                          tmp_path):
    for kind, data, (folder, _), kwargs, prefix in (
            ("seg", dataset, seg_built, seg_kwargs, "seg"),
            ("det", det_dataset, det_built, det_kwargs, "det")):
        out = tmp_path / kind
        batch_builders.build_batches(kind, **kwargs(data, out, num_workers=2))
        assert batch_files(out, prefix) == batch_files(folder, prefix)


def test_resume_after_interruption(dataset, seg_built, tmp_path):
    folder, report = seg_built
    first = batch_builders.build_batches("seg", **seg_kwargs(dataset, tmp_path,
                                                             max_new_batches=3))
    assert first.num_built == 3 and not first.complete
    second = batch_builders.build_batches("seg", **seg_kwargs(dataset, tmp_path,
                                                              max_new_batches=2))
    assert second.num_existing == 3 and second.num_built == 2
    # A killed run: one file truncated, one deleted, a stale temp file left behind.
    path = lambda n: tmp_path / f"seg_{n}.npz"  # noqa: E731
    data = path(1).read_bytes()
    path(1).write_bytes(data[:len(data) // 2])
    os.remove(path(2))
    (tmp_path / ".seg_4.npz.12345.tmp").write_bytes(b"partial")
    mtimes = {n: os.stat(path(n)).st_mtime_ns for n in (0, 3, 4)}
    third = batch_builders.build_batches("seg", **seg_kwargs(dataset, tmp_path,
                                                             num_workers=2))
    assert third.complete and third.num_existing == 3
    assert third.num_built == report.num_batches - 3
    assert batch_files(tmp_path, "seg") == batch_files(folder, "seg")
    assert {n: os.stat(path(n)).st_mtime_ns for n in (0, 3, 4)} == mtimes
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_resume_with_other_parameters_refuses(dataset, tmp_path):
    batch_builders.build_batches("seg", **seg_kwargs(dataset, tmp_path, max_new_batches=1))
    with pytest.raises(ValueError, match=r"other parameters.*'N': 4.*'N': 5"):
        batch_builders.build_batches("seg", **seg_kwargs(dataset, tmp_path, N=5))


def test_foreign_batches_without_manifest_refused(dataset, tmp_path):
    np.savez(tmp_path / "seg_0.npz", text_seq_batch=np.zeros((T, SEG_N), np.int32))
    with pytest.raises(ValueError, match="without a manifest"):
        batch_builders.build_batches("seg", **seg_kwargs(dataset, tmp_path))


def test_batch_file_check(tmp_path):
    spec = batch_builders.det_batch_spec(3, 2)
    arrays = {k: np.zeros(shape, dtype) for k, (shape, dtype) in spec.items()}
    good = tmp_path / "a.npz"
    batch_builders.write_npz_atomic(str(good), arrays)
    assert batch_builders.batch_file_is_complete(str(good), spec)
    with np.load(good) as f:  # a plain npz, readable as the original's
        assert f["imcrop_batch"].shape == (2, 224, 224, 3)
    assert not batch_builders.batch_file_is_complete(str(good), batch_builders.det_batch_spec(3, 3))
    np.savez(tmp_path / "b.npz", **dict(arrays, label_batch=np.zeros((2, 1), np.int64)))
    assert not batch_builders.batch_file_is_complete(str(tmp_path / "b.npz"), spec)
    (tmp_path / "c.npz").write_bytes(good.read_bytes()[:-100])
    assert not batch_builders.batch_file_is_complete(str(tmp_path / "c.npz"), spec)


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def broken(dataset, tmp_path):
    """A copy of the dataset with one image missing and one mask corrupt."""
    info = copy_dataset(dataset, tmp_path / "data")
    query = json.load(open(info["query_file"]))
    regions = list(query)
    missing_image = regions[0].split("_", 1)[0] + ".jpg"
    corrupt_region = next(r for r in regions if not r.startswith(missing_image[:-4] + "_"))
    os.remove(os.path.join(info["image_dir"], missing_image))
    with open(os.path.join(info["mask_dir"], corrupt_region + ".mat"), "wb") as f:
        f.write(b"MATLAB 5.0 MAT-file, garbage")
    return info, missing_image, corrupt_region, query


def test_missing_image_names_file_and_query(broken, dataset, tmp_path):
    info, missing_image, corrupt_region, query = broken
    shutil.copy(os.path.join(dataset["mask_dir"], corrupt_region + ".mat"), info["mask_dir"])
    with pytest.raises(FileNotFoundError) as err:
        batch_builders.build_batches("seg", **seg_kwargs(info, tmp_path / "out"))
    assert missing_image in str(err.value) and "query '" in str(err.value)
    with pytest.raises(FileNotFoundError, match=missing_image):  # raised in a worker process
        batch_builders.build_batches("seg", **seg_kwargs(info, tmp_path / "out2",
                                                         num_workers=2))
    with pytest.raises(FileNotFoundError, match=missing_image):
        batch_builders.build_batches("det", **det_kwargs(info, tmp_path / "out_det"))


def test_corrupt_mask_names_file_and_query(broken, dataset, tmp_path):
    info, missing_image, corrupt_region, query = broken
    shutil.copy(os.path.join(dataset["image_dir"], missing_image), info["image_dir"])
    with pytest.raises(ValueError) as err:
        batch_builders.build_batches("seg", **seg_kwargs(info, tmp_path / "out"))
    msg = str(err.value)
    assert corrupt_region + ".mat" in msg and f"of region {corrupt_region}" in msg
    assert "query '" in msg


def test_skip_bad_samples(broken, tmp_path):
    info, missing_image, corrupt_region, _ = broken
    report = batch_builders.build_batches("seg", **seg_kwargs(info, tmp_path / "out",
                                                              skip_bad_samples=True,
                                                              num_workers=2))
    bad = lambda s: s[0] == missing_image or s[1] == corrupt_region + ".mat"  # noqa: E731
    want, kept = ref_seg_batches_skipping(info, bad)
    all_samples = ref_seg_batches(info, T, 10**9, H, W)[1]
    assert report.num_skipped_samples == sum(map(bad, all_samples)) > 0
    assert report.num_samples == len(kept)
    assert_batches_equal(load_all(tmp_path / "out", "seg", len(want)), want)
    text = "\n".join(report.summary_lines())
    assert missing_image in text and corrupt_region + ".mat" in text
    assert f"skipped {report.num_skipped_samples} bad samples" in text


def ref_seg_batches_skipping(info, bad):
    # Hide the bad files from the reference: it only reads the kept samples.
    return ref_seg_batches(info, T, SEG_N, H, W, drop=bad)


def test_skip_bad_samples_det_missing_proposals(det_dataset, tmp_path):
    info = copy_dataset(det_dataset, tmp_path / "data")
    query = json.load(open(info["query_file"]))
    first_image = next(iter(query)).split("_", 1)[0]
    os.remove(os.path.join(info["bbox_proposal_dir"], first_image + ".txt"))
    with pytest.raises(FileNotFoundError, match=first_image + ".txt"):
        batch_builders.build_batches("det", **det_kwargs(info, tmp_path / "a"))
    report = batch_builders.build_batches("det", **det_kwargs(info, tmp_path / "b",
                                                              skip_bad_samples=True,
                                                              max_new_batches=1))
    assert report.num_built == 1 and len(report.bad_files) == 1
    assert "image left out" in "\n".join(report.summary_lines())


def test_empty_expression(dataset, tmp_path):
    info = copy_dataset(dataset, tmp_path / "data")
    query = json.load(open(info["query_file"]))
    region = list(query)[1]
    query[region] = query[region] + ["   "]
    with open(info["query_file"], "w") as f:
        json.dump(query, f)
    with pytest.raises(ValueError, match=f"'   ' of region {region}"):
        batch_builders.build_batches("seg", **seg_kwargs(info, tmp_path / "a"))
    report = batch_builders.build_batches("seg", **seg_kwargs(info, tmp_path / "b",
                                                              skip_bad_samples=True))
    assert report.num_skipped_samples == 1


def test_rgba_cmyk_and_16bit_images(dataset, tmp_path):
    info = copy_dataset(dataset, tmp_path / "data")
    query = json.load(open(info["query_file"]))
    images = list(dict.fromkeys(r.split("_", 1)[0] + ".jpg" for r in query))
    rgb = [im for im in images
           if Image.open(os.path.join(info["image_dir"], im)).mode == "RGB"][:2]
    rgba_path = os.path.join(info["image_dir"], rgb[0])
    arr = np.asarray(Image.open(rgba_path))
    alpha = np.full(arr.shape[:2] + (1,), 77, np.uint8)
    Image.fromarray(np.concatenate([arr, alpha], axis=2), "RGBA").save(rgba_path, format="PNG")
    cmyk_path = os.path.join(info["image_dir"], rgb[1])
    Image.open(cmyk_path).convert("CMYK").save(cmyk_path, format="JPEG", quality=95)
    deep_path = os.path.join(info["image_dir"], next(im for im in images if im not in rgb))
    grey = np.asarray(Image.open(deep_path).convert("L")).astype(np.uint16)
    deep = grey * 256 + np.arange(grey.size, dtype=np.uint16).reshape(grey.shape) % 256
    Image.fromarray(deep).save(deep_path, format="PNG")
    assert skimage.io.imread(deep_path).dtype == np.uint16
    batch_builders.build_batches("seg", **seg_kwargs(info, tmp_path / "out"))

    cmyk_rgb = np.asarray(Image.open(cmyk_path).convert("RGB"))
    original = ref_read_image

    def read(path):
        return cmyk_rgb if path == cmyk_path else original(path)

    globals()["ref_read_image"] = read
    try:
        want, samples = ref_seg_batches(info, T, SEG_N, H, W)
    finally:
        globals()["ref_read_image"] = original
    assert {s[0] for s in samples[:len(want) * SEG_N]} >= set(rgb) | {
        os.path.basename(deep_path)}
    assert_batches_equal(load_all(tmp_path / "out", "seg", len(want)), want)


# ---------------------------------------------------------------------------------------------
# The absl apps
# ---------------------------------------------------------------------------------------------


def run_script(repo_root, name, flags):
    env = dict(os.environ, PYTHONPATH=str(repo_root))
    return subprocess.run([sys.executable, os.path.join("exp-referit", name)] + flags,
                          cwd=repo_root, env=env, capture_output=True, text=True, timeout=120)


def test_scripts(repo_root, dataset, det_dataset, seg_built, det_built, tmp_path):
    d = dataset
    seg = run_script(repo_root, "build_training_batches_seg.py", [
        f"--image_dir={d['image_dir']}", f"--mask_dir={d['mask_dir']}",
        f"--query_file={d['query_file']}", f"--vocab_file={d['vocab_file']}",
        f"--imsize_file={d['imsize_file']}", f"--data_folder={tmp_path / 'seg'}",
        "--data_prefix=seg", f"--T={T}", f"--N={SEG_N}", f"--input_H={H}", f"--input_W={W}",
        "--num_workers=2"])
    assert seg.returncode == 0, seg.stderr
    assert "seg:" in seg.stdout
    assert batch_files(tmp_path / "seg", "seg") == batch_files(seg_built[0], "seg")
    d = det_dataset
    det = run_script(repo_root, "build_training_batches_det.py", [
        f"--image_dir={d['image_dir']}", f"--bbox_proposal_dir={d['bbox_proposal_dir']}",
        f"--query_file={d['query_file']}", f"--bbox_file={d['bbox_file']}",
        f"--imcrop_file={d['imcrop_file']}", f"--imsize_file={d['imsize_file']}",
        f"--vocab_file={d['vocab_file']}", f"--data_folder={tmp_path / 'det'}",
        "--data_prefix=det", "--pos_iou=0.7", "--neg_iou=1e-6", "--neg_to_pos_ratio=1.0",
        f"--N={DET_N}", f"--T={T}", "--num_workers=2"])
    assert det.returncode == 0, det.stderr
    assert batch_files(tmp_path / "det", "det") == batch_files(det_built[0], "det")
    d = dataset
    bad = run_script(repo_root, "build_training_batches_seg.py", [
        f"--image_dir={tmp_path}", f"--mask_dir={d['mask_dir']}",
        f"--query_file={d['query_file']}", f"--vocab_file={d['vocab_file']}",
        f"--data_folder={tmp_path / 'bad'}", f"--input_H={H}", f"--input_W={W}"])
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines()[-1].startswith("error: image ")
