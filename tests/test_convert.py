"""The convert command: release TF1 checkpoints <-> this project's weights file, bit for bit."""

import numpy as np
import pytest
import release_files as rf
import tensorflow as tf

from text_objseg_tf2 import checkpoints, convert


def _convert(*args):
    return rf.run_absl_main(convert.define_flags, convert.main, list(args))


def test_tf1_to_keras_to_tf1_is_bit_identical(tmp_path):
    path, original = rf.cached_checkpoint("seg_highres", "v2", "tf1.2")
    keras_path = tmp_path / "referit_seg_highres.weights.h5"
    _convert(f"--input={path}", f"--output={keras_path}", "--to=keras")
    info = checkpoints.inspect_weights(keras_path)
    assert info.form == "keras" and info.kind == "seg_highres" and info.sizes == rf.SMALL
    back = tmp_path / "back"
    _convert(f"--input={keras_path}", f"--output={back}", "--to=tf1", "--lstm_spelling=tf1.2")
    assert (tmp_path / "back.index").is_file()  # not a .tfmodel name: V2
    stored = tf.train.load_checkpoint(str(back)).get_variable_to_shape_map()
    assert rf.LSTM_SPELLINGS["tf1.2"][0] in stored
    got = rf.read_with_tf(str(back))
    assert set(got) == set(original)
    assert all(np.array_equal(got[n], original[n]) for n in original)


def test_convert_errors_are_one_line(tmp_path):
    path, _ = rf.cached_checkpoint("seg_highres", "v2", "tf1.2")
    cases = [
        ([f"--input={path}", f"--output={tmp_path / 'x.h5'}", "--to=keras"], ".weights.h5"),
        ([f"--input={path}", f"--output={tmp_path / 'x'}", "--to=tf1", "--model=det"],
         "seg_highres model cannot be used as a det model"),
        ([f"--input={tmp_path / 'absent'}", f"--output={tmp_path / 'x'}", "--to=tf1"],
         "not found"),
    ]
    for args, message in cases:
        with pytest.raises(SystemExit) as info:
            _convert(*args)
        assert message in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(Exception, match="--to"):
        _convert(f"--input={path}", f"--output={tmp_path / 'x'}")


def test_output_naming_rules():
    assert checkpoints.output_format("a/m.weights.h5") == "keras"
    assert checkpoints.output_format("a/m.tfmodel") == "tf1"
    assert checkpoints.output_format("a/m.weights.h5", "tf1") == "tf1"
    assert checkpoints.tf1_version_for("a/m.tfmodel") == "v1"
    assert checkpoints.tf1_version_for("a/model") == "v2"
    assert checkpoints.tf1_version_for("a/m.tfmodel", "v2") == "v2"
    with pytest.raises(ValueError, match="unknown TF1 checkpoint version"):
        checkpoints.tf1_version_for("m", "v3")
