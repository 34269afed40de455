"""The pipeline's controls and checks (the full run is exp-referit/run_pipeline.py)."""

import numpy as np
import pytest
import scipy.io

from text_objseg_tf2 import pipeline
from text_objseg_tf2.util import io


def _mask_file(path, mask):
    scipy.io.savemat(path, {"segimg_t": np.where(mask, 0, 1).astype(np.uint8)})


def test_whole_image_baseline(tmp_path):
    (tmp_path / "mask").mkdir()
    a = np.zeros((10, 10), bool)
    a[:5, :] = True  # IoU of the whole image: 50 / 100
    b = np.zeros((4, 5), bool)
    b[0, 0] = True  # 1 / 20
    _mask_file(tmp_path / "mask" / "1_1.mat", a)
    _mask_file(tmp_path / "mask" / "2_1.mat", b)
    io.save_json({"1_1": ["x", "y"], "2_1": ["z"]}, str(tmp_path / "q.json"))
    got = pipeline.whole_image_baseline(
        {"test_query_file": str(tmp_path / "q.json"), "mask_dir": str(tmp_path / "mask")})
    assert got["overall IoU"] == pytest.approx((50 + 50 + 1) / (100 + 100 + 20))
    assert got["precision@0.5"] == pytest.approx(2 / 3)
    assert got["precision@0.6"] == 0


def test_blind_batches_replace_only_the_text(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    rng = np.random.default_rng(0)
    for n in range(2):
        io.atomic_savez(str(src / f"seg_{n}.npz"),
                        text_seq_batch=rng.integers(0, 9, (5, 3)).astype(np.int32),
                        imcrop_batch=rng.integers(0, 255, (3, 4, 4, 3)).astype(np.uint8))
    blind = np.array([0, 0, 0, 0, 3], np.int32)
    assert pipeline._blind_batches(str(src), "seg", str(dst), blind) == 2
    for n in range(2):
        with np.load(src / f"seg_{n}.npz") as a, np.load(dst / f"seg_{n}.npz") as b:
            np.testing.assert_array_equal(a["imcrop_batch"], b["imcrop_batch"])
            np.testing.assert_array_equal(b["text_seq_batch"], np.tile(blind[:, None], (1, 3)))


def test_blind_query_maps_to_one_unknown_word():
    from text_objseg_tf2.util import text_processing

    vocab = {"<pad>": 0, "<unk>": 1, "red": 2}
    ids = text_processing.preprocess_sentence(pipeline.BLIND_QUERY, vocab, 4)
    assert ids == [0, 0, 0, 1]


def test_check_learning_and_table():
    results = {"overall_iou": 0.40, "precision_at_0.5": 0.35,
               "whole_image_overall_iou": 0.10, "whole_image_precision_at_0.5": 0.0,
               "text_blind_overall_iou": 0.30, "text_blind_precision_at_0.5": 0.2}
    pipeline.check_learning(results, 0.05)
    with pytest.raises(pipeline.LearningCheckError, match="text-blind"):
        pipeline.check_learning(results, 0.15)
    table = pipeline.results_table(results)
    assert "text-blind control" in table and "0.4000" in table


def test_synthetic_settings_say_what_is_scaled_down():
    settings = pipeline.synthetic_settings("/tmp/x", lowres_max_iter=7)
    assert settings.lowres_max_iter == 7 and settings.input_H == 192
    lines = "\n".join(pipeline.scaled_down_lines(settings))
    assert "input_H: 192 (paper: 512)" in lines
    assert "lowres_max_iter: 7 (paper: 30000)" in lines


def test_demo_query_names_a_colour_on_synthetic_data():
    queries = {"1001_2": ["small square", "the blue circle"], "1000_1": ["top shape"],
               "1002_1": ["red one"]}
    assert pipeline.demo_query(queries, synthetic=True) == ("1001_2", "the blue circle")
    assert pipeline.demo_query(queries, synthetic=False) == ("1000_1", "top shape")
    assert pipeline.demo_query({"9_1": ["left shape"]}, synthetic=True) == ("9_1", "left shape")


def test_scaled_down_lines_name_the_stand_in_vgg():
    lines = "\n".join(pipeline.scaled_down_lines(pipeline.synthetic_settings("/tmp/x")))
    assert "det_max_batches: 20 (default: all)" in lines
    assert "jit_compile: False (default: True)" in lines
    assert "start_lr: 0.1 (paper: 0.01)" in lines
    assert "seg_fix_convnet: True (paper: False)" in lines
    assert "colour stand-in" in lines


def test_cache_features_needs_a_fixed_vgg_in_the_segmentation_stages():
    with pytest.raises(ValueError, match="--seg_fix_convnet"):
        pipeline.PipelineSettings(work_dir="/tmp/x", cache_features=True)
    with pytest.raises(ValueError, match="--seg_fix_convnet"):
        pipeline.synthetic_settings("/tmp/x", seg_fix_convnet=False)
