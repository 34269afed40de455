"""Test helpers that write files in the formats the TF1 release shipped.

The release's `*.tfmodel` files are single-file V1 checkpoints written by `tf.train.Saver` of
TF 0.x with the variable names of its graph, the LSTM as `RNN/MultiRNNCell/Cell0/...`, plus the
training state its Saver also stored (the unnamed global step `Variable` and the momentum
slots). `vgg_params.npz` is `np.savez(processed_W=dict, processed_B=dict)`. These writers use
TF1's own graph-mode Saver (not the code under test) so the loader is proven on files made
the way the release made them.
"""

import atexit
import functools
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saver_pb2

LSTM_SPELLINGS = {
    "release": ("lstm_lang/RNN/MultiRNNCell/Cell0/BasicLSTMCell/Linear/Matrix",
                "lstm_lang/RNN/MultiRNNCell/Cell0/BasicLSTMCell/Linear/Bias"),
    "tf1.0": ("lstm_lang/rnn/multi_rnn_cell/cell_0/basic_lstm_cell/weights",
              "lstm_lang/rnn/multi_rnn_cell/cell_0/basic_lstm_cell/biases"),
    "tf1.2": ("lstm_lang/rnn/multi_rnn_cell/cell_0/basic_lstm_cell/kernel",
              "lstm_lang/rnn/multi_rnn_cell/cell_0/basic_lstm_cell/bias"),
}


def respell(params, lstm_spelling):
    """`params` (release names) with the LSTM under `lstm_spelling`."""
    old_m, old_b = LSTM_SPELLINGS["release"]
    new_m, new_b = LSTM_SPELLINGS[lstm_spelling]
    return {({old_m: new_m, old_b: new_b}).get(k, k): v for k, v in params.items()}


def write_tf1_saver_checkpoint(params, path, version="v1", lstm_spelling="release",
                               training_state=False):
    """Saves `{name: array}` with tf.compat.v1.train.Saver in graph mode, as TF1 did.

    `training_state` adds what the release's training Saver also stored: the global step
    (`Variable`, int32) and a `<name>/Momentum` slot for each weight. Returns the path (V1:
    the file; V2: the prefix).
    """
    params = respell(params, lstm_spelling)
    write_version = saver_pb2.SaverDef.V1 if version == "v1" else saver_pb2.SaverDef.V2
    graph = tf.Graph()
    with graph.as_default():
        var_list, feeds = {}, {}
        for i, (name, value) in enumerate(sorted(params.items())):
            value = np.asarray(value)
            # Initialised from a fed placeholder: the values are not embedded in the graph.
            ph = tf.compat.v1.placeholder(tf.as_dtype(value.dtype), value.shape)
            var_list[name] = tf.compat.v1.Variable(ph, name=f"v{i}")
            feeds[ph] = value
            if training_state:
                var_list[name + "/Momentum"] = tf.compat.v1.Variable(
                    tf.ones(value.shape, value.dtype), name=f"v{i}_momentum")
        if training_state:
            var_list["Variable"] = tf.compat.v1.Variable(18000, name="global_step")
        saver = tf.compat.v1.train.Saver(var_list, write_version=write_version)
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer(), feed_dict=feeds)
            saved = saver.save(sess, os.fspath(path), write_meta_graph=False, write_state=False)
    return saved


def write_vgg_params_npz(path, weights, biases):
    """`vgg_params.npz` as the release wrote it: two pickled dicts of arrays."""
    with open(path, "wb") as f:
        np.savez(f, processed_W=weights, processed_B=biases)
    return path


def vgg_from_params(params):
    """`(weights, biases)` dicts keyed by layer name, fc weights as matrices (npz layout)."""
    weights, biases = {}, {}
    for key, value in params.items():
        if key.startswith("vgg_local/"):
            _, layer, what = key.split("/")
            if what == "weights":
                weights[layer] = value.reshape(-1, value.shape[-1]) if layer.startswith(
                    "fc") else value
            else:
                biases[layer] = value
    return weights, biases


def write_keras_legacy_h5(path, model):
    """A Keras 1/2 weights file (`layer_names` / `weight_names` attributes, datasets at
    `<layer>/<layer>/kernel:0`), the layout of the published keras.applications files."""
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [layer.name.encode() for layer in model.layers]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for layer in model.layers:
            group = f.create_group(layer.name)
            names = [f"{layer.name}/{w.name}:0".encode() for w in layer.weights]
            group.attrs["weight_names"] = names
            for name, w in zip(names, layer.weights, strict=True):
                group.create_dataset(name.decode(), data=np.asarray(w.numpy()))
    return path


# ---------------------------------------------------------------------------------------------
# Shared synthetic weights and files, made once per test process (several test modules use
# them; VGG alone is 138M parameters, so everything is cached).
# ---------------------------------------------------------------------------------------------

SMALL = dict(num_vocab=30, embed_dim=12, lstm_dim=10, mlp_hidden_dims=6)
PAPER = dict(num_vocab=8803, embed_dim=1000, lstm_dim=1000, mlp_hidden_dims=500)
VGG_LAYERS = (("conv1_1", 3, 3, 64), ("conv1_2", 3, 64, 64), ("conv2_1", 3, 64, 128),
              ("conv2_2", 3, 128, 128), ("conv3_1", 3, 128, 256), ("conv3_2", 3, 256, 256),
              ("conv3_3", 3, 256, 256), ("conv4_1", 3, 256, 512), ("conv4_2", 3, 512, 512),
              ("conv4_3", 3, 512, 512), ("conv5_1", 3, 512, 512), ("conv5_2", 3, 512, 512),
              ("conv5_3", 3, 512, 512), ("fc6", 7, 512, 4096), ("fc7", 1, 4096, 4096),
              ("fc8", 1, 4096, 1000))
FC_MATRICES = ("vgg_local/fc6/weights", "vgg_local/fc7/weights", "vgg_local/fc8/weights",
               "classifier/mlp_l1/weights", "classifier/mlp_l2/weights")


@functools.cache
def vgg_arrays(seed=0):
    """Random He-scaled VGG-16 weights `{TF1 name: float32}` in conv layout (read-only)."""
    rng = np.random.default_rng(1000 + seed)
    out = {}
    for name, k, cin, cout in VGG_LAYERS:
        w = rng.standard_normal((k, k, cin, cout), dtype=np.float32)
        w *= np.float32(np.sqrt(2.0 / (k * k * cin)))
        out[f"vgg_local/{name}/weights"] = w
        out[f"vgg_local/{name}/biases"] = (rng.standard_normal(cout, dtype=np.float32)
                                           * np.float32(0.1))
    for value in out.values():
        value.setflags(write=False)
    return out


def make_params(kind, num_vocab, embed_dim, lstm_dim, mlp_hidden_dims, seed=0, vgg_seed=0):
    """Release-layout weights of `kind` (det keeps fc matrices); VGG shared via vgg_arrays."""
    rng = np.random.default_rng(seed)
    p = dict(vgg_arrays(vgg_seed))

    def normal(shape, std):
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(std))

    p["word_embedding/embedding"] = normal((num_vocab, embed_dim), 1.0)
    p[LSTM_SPELLINGS["release"][0]] = normal((embed_dim + lstm_dim, 4 * lstm_dim), 0.3)
    p[LSTM_SPELLINGS["release"][1]] = normal((4 * lstm_dim,), 0.3)
    d = lstm_dim + 1000 + 8
    p["classifier/mlp_l1/weights"] = normal((1, 1, d, mlp_hidden_dims), 0.3)
    p["classifier/mlp_l1/biases"] = normal((mlp_hidden_dims,), 0.1)
    p["classifier/mlp_l2/weights"] = normal((1, 1, mlp_hidden_dims, 1), 0.3)
    p["classifier/mlp_l2/biases"] = normal((1,), 0.1)
    if kind == "seg_highres":
        p["classifier/upsample32s/weights"] = normal((64, 64, 1, 1), 0.1)
    if kind == "det":
        for name in FC_MATRICES:
            p[name] = p[name].reshape(-1, p[name].shape[-1])
    return p


_TMP = []


def _tmp_dir():
    if not _TMP:
        path = tempfile.mkdtemp(prefix="text_objseg_release_files_")
        atexit.register(shutil.rmtree, path, ignore_errors=True)
        _TMP.append(path)
    return _TMP[0]


@functools.cache
def cached_checkpoint(kind, version="v2", lstm_spelling="release", sizes="small", seed=0):
    """`(path, params)`: a Saver-written checkpoint of `make_params(kind, ...)`, made once."""
    size_dict = SMALL if sizes == "small" else PAPER
    params = make_params(kind, **size_dict, seed=seed)
    name = f"{kind}_{version}_{lstm_spelling}_{sizes}_{seed}"
    path = os.path.join(_tmp_dir(), name + (".tfmodel" if version == "v1" else ""))
    path = write_tf1_saver_checkpoint(params, path, version=version,
                                      lstm_spelling=lstm_spelling)
    return path, params


def read_with_tf(path):
    """`{release name: array}` of a TF1 checkpoint, read with TF's reader (not the code under
    test), the LSTM renamed to the release spelling."""
    reader = tf.train.load_checkpoint(path)
    rename = {}
    for spelling in LSTM_SPELLINGS.values():
        rename.update(zip(spelling, LSTM_SPELLINGS["release"], strict=True))
    return {rename.get(n, n): reader.get_tensor(n)
            for n in reader.get_variable_to_shape_map()
            if n != "Variable" and not n.endswith("/Momentum")}


def write_vocab(path, num_vocab):
    """A vocabulary file of `num_vocab` words: <pad>, <unk>, then the ReferIt-like words."""
    words = ["<pad>", "<unk>", "sky", "above", "the", "bridge", "left", "man", "water", "tree"]
    words += [f"word{i}" for i in range(len(words), num_vocab)]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(words[:num_vocab]) + "\n")
    return path


def run_absl_main(define_flags, main, argv):
    """Runs an absl app's `main` in this process on fresh FlagValues: `argv` without the
    program name. Returns what main returns (SystemExit propagates)."""
    from absl import flags

    fv = flags.FlagValues()
    define_flags(fv)
    rest = fv(["prog", *[str(a) for a in argv]])
    return main(rest, fv)


def load_script(name):
    """The module of `exp-referit/<name>.py`, imported without running it."""
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "exp-referit", name + ".py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
