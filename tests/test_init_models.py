"""The two init scripts between the training stages (exp-referit/init_referit_seg_*.py)."""

import os
import subprocess
import sys

import numpy as np
import pytest
import release_files as rf

from text_objseg_tf2 import checkpoints

LOWRES_FROM_DET = rf.load_script("init_referit_seg_lowres_from_det")
HIGHRES_FROM_LOWRES = rf.load_script("init_referit_seg_highres_from_lowres")


def _run(script, *args):
    return rf.run_absl_main(script.define_flags, script.main, list(args))


def test_lowres_from_det_is_a_plain_reshape(tmp_path):
    det_path, det = rf.cached_checkpoint("det", "v2", "tf1.0")
    out = tmp_path / "referit_fc8_seg_lowres_init.weights.h5"
    _run(LOWRES_FROM_DET, f"--det_model={det_path}", f"--seg_model={out}")
    params, kind, sizes = checkpoints.read_weights(out)
    assert kind == "seg_lowres" and sizes == rf.SMALL
    assert set(params) == set(det)
    assert params["vgg_local/fc6/weights"].shape == (7, 7, 512, 4096)
    assert params["classifier/mlp_l1/weights"].shape == (1, 1, 1018, 6)
    for name, value in det.items():
        assert np.array_equal(params[name], value.reshape(params[name].shape)), name


def test_highres_from_lowres_adds_the_bilinear_filter(tmp_path):
    low_path, low = rf.cached_checkpoint("seg_lowres", "v2", "release")
    out = tmp_path / "referit_fc8_seg_highres_init.tfmodel"
    _run(HIGHRES_FROM_LOWRES, f"--lowres_model={low_path}", f"--highres_model={out}",
         "--tf1_version=v2", "--lstm_spelling=tf1.2", "--num_vocab=30")
    assert os.path.isfile(str(out) + ".index")
    got = rf.read_with_tf(str(out))
    assert set(got) == set(low) | {"classifier/upsample32s/weights"}
    f = np.concatenate([np.arange(32), np.arange(32, 0, -1)]) / 32
    np.testing.assert_array_equal(got["classifier/upsample32s/weights"][:, :, 0, 0],
                                  np.outer(f, f).astype(np.float32))
    for name, value in low.items():
        assert np.array_equal(got[name], value), name


@pytest.mark.parametrize("script,args,message", [
    (LOWRES_FROM_DET, ["--det_model=LOWRES"], "holds a seg_lowres model; initialising "
                                               "seg_lowres needs a det model"),
    (HIGHRES_FROM_LOWRES, ["--lowres_model=DET"], "holds a det model"),
    (HIGHRES_FROM_LOWRES, ["--lowres_model=LOWRES", "--num_vocab=8803"],
     "num_vocab=8803 but the weights have 30"),
    (LOWRES_FROM_DET, ["--det_model=/nonexistent/det.tfmodel"], "not found"),
])
def test_wrong_input_is_a_one_line_error(tmp_path, script, args, message):
    paths = {"LOWRES": rf.cached_checkpoint("seg_lowres", "v2", "release")[0],
             "DET": rf.cached_checkpoint("det", "v2", "tf1.0")[0]}
    args = [a.split("=")[0] + "=" + paths.get(a.split("=")[1], a.split("=")[1]) for a in args]
    out_flag = "--seg_model" if script is LOWRES_FROM_DET else "--highres_model"
    with pytest.raises(SystemExit) as info:
        _run(script, *args, f"{out_flag}={tmp_path / 'out.tfmodel'}")
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not os.listdir(tmp_path)


def test_scripts_keep_the_original_parameters():
    from absl import flags

    for script, names in ((LOWRES_FROM_DET, ("det_model", "seg_model")),
                          (HIGHRES_FROM_LOWRES, ("lowres_model", "highres_model"))):
        fv = flags.FlagValues()
        script.define_flags(fv)
        fv(["prog"])
        assert (fv.T, fv.N, fv.num_vocab, fv.embed_dim, fv.lstm_dim, fv.mlp_hidden_dims) == \
            (20, 1, 8803, 1000, 1000, 500)
        for name in names:
            assert fv[name].value.startswith("./exp-referit/tfmodel/referit_fc8_")
    fv = flags.FlagValues()
    LOWRES_FROM_DET.define_flags(fv)
    fv(["prog"])
    assert fv.det_model.endswith("referit_fc8_det_iter_25000.tfmodel")
    assert fv.seg_model.endswith("referit_fc8_seg_lowres_init.tfmodel")


def test_script_runs_as_a_program():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run(
        [sys.executable, "exp-referit/init_referit_seg_highres_from_lowres.py",
         "--lowres_model=/nonexistent.tfmodel"],
        cwd=root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "error: weights file not found: /nonexistent.tfmodel" in proc.stderr
