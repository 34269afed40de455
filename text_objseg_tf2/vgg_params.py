"""ImageNet VGG-16 weights for the VGG layers: the release's `vgg_params.npz`, or the
`keras.applications` VGG16 weights file.

`vgg_params.npz` (from the release's `download_vgg_params.sh`) holds two entries, `processed_W`
and `processed_B`, each a pickled dict `{layer name: numpy array}` for conv1_1..conv5_3, fc6,
fc7, fc8, already converted from Caffe for RGB input (fc6 as a `[25088, 4096]` matrix). Pickle
can run code, so the file is read only if it has exactly this layout, and unpickled with an
unpickler that builds nothing but numpy arrays and dicts.

The `keras.applications` VGG16 file (`vgg16_weights_tf_dim_ordering_tf_kernels.h5`) is the
same Caffe network for BGR input; conv1_1's input channels are flipped for this project's RGB
input (the mean is the same numbers in the other order). Keras flattens pool5 `[7, 7, 512]` in
(h, w, c) order, as the release's fc6 matrix does, so fc1 is fc6 as it stands.
"""

import os
import pickle
import zipfile

import numpy as np

from text_objseg_tf2.models import vgg_net

VGG_LAYERS = tuple(name for name, *_ in vgg_net.VGG_CONV_LAYERS + vgg_net.VGG_FC_LAYERS)
# (kernel shape as the net holds it, fc matrix shape or None) per layer.
_SHAPES = {name: ((k, k, din, dout), (k * k * din, dout) if name.startswith("fc") else None)
           for name, k, din, dout in vgg_net.VGG_CONV_LAYERS + vgg_net.VGG_FC_LAYERS}
NPZ_KEYS = ("processed_W", "processed_B")

# keras.applications.VGG16 layer names -> the release's.
KERAS_VGG16_LAYERS = {
    **{f"block{n[4]}_conv{n[6]}": n for n in VGG_LAYERS if n.startswith("conv")},
    "fc1": "fc6", "fc2": "fc7", "predictions": "fc8",
}

# What an npz of numpy arrays in dicts may reference (numpy 1.x and 2.x module names; Python 3
# pickles of bytes use _codecs.encode).
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    ("builtins", "dict"), ("__builtin__", "dict"), ("copy_reg", "_reconstructor"),
    ("copyreg", "_reconstructor"), ("builtins", "object"), ("__builtin__", "object"),
}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _read_npz_dict(zf, key, path):
    """The dict pickled as a 0-d object array in `<key>.npy` of the npz `zf`."""
    with zf.open(key + ".npy") as stream:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
        if shape != () or dtype != np.dtype(object):
            raise ValueError(f"{path}: '{key}' must be a pickled dict (0-d object array), got "
                             f"shape {shape} dtype {dtype}")
        # Python 2 pickles (the release's) hold array bytes as str: latin1 maps them 1:1.
        obj = _ArraysOnlyUnpickler(stream, encoding="latin1").load()
    if isinstance(obj, np.ndarray) and obj.shape == ():
        obj = obj[()]
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: '{key}' holds a {type(obj).__name__}, not a dict")
    out = {}
    for name, value in obj.items():
        if isinstance(name, bytes):
            name = name.decode("latin1")
        if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
            raise ValueError(f"{path}: {key}[{name!r}] is not a floating-point numpy array")
        out[str(name)] = value
    return out


def load_vgg_params_npz(path):
    """`(processed_W, processed_B)` dicts of the release's `vgg_params.npz`.

    Anything but the known layout (exactly the keys processed_W and processed_B, each a pickled
    dict of float arrays with the 16 VGG layers and their shapes) is a one-line ValueError.
    Weights come back as stored (fc layers as matrices).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"VGG parameters file not found: {path}")
    try:
        with zipfile.ZipFile(path) as zf:
            members = sorted(zf.namelist())
            want = sorted(k + ".npy" for k in NPZ_KEYS)
            if members != want:
                raise ValueError(f"{path} is not the release's vgg_params.npz: it holds "
                                 f"{members}, expected {want}")
            weights, biases = (_read_npz_dict(zf, key, path) for key in NPZ_KEYS)
    except (zipfile.BadZipFile, OSError, EOFError, pickle.UnpicklingError,
            ValueError, TypeError, AttributeError) as e:
        if isinstance(e, ValueError) and str(e).startswith(path):
            raise
        raise ValueError(f"cannot read VGG parameters {path}: {e}") from None
    _check_vgg(weights, biases, path)
    return weights, biases


def _check_vgg(weights, biases, source):
    """One ValueError listing every missing or mis-shaped VGG layer."""
    problems = []
    for what, table in (("weights", weights), ("biases", biases)):
        missing = [n for n in VGG_LAYERS if n not in table]
        if missing:
            problems.append(f"missing {what}: {', '.join(missing)}")
    for name in VGG_LAYERS:
        conv_shape, fc_shape = _SHAPES[name]
        if name in weights and tuple(weights[name].shape) not in (conv_shape, fc_shape):
            problems.append(f"{name} weights {list(weights[name].shape)} (expected "
                            f"{list(fc_shape or conv_shape)})")
        if name in biases and tuple(biases[name].shape) != (conv_shape[-1],):
            problems.append(f"{name} biases {list(biases[name].shape)} (expected "
                            f"[{conv_shape[-1]}])")
    if problems:
        raise ValueError(f"{source} does not hold VGG-16: " + "; ".join(problems))


def assign_vgg(net, weights, biases, source="VGG weights"):
    """Assigns `{layer: array}` weights/biases (fc as matrices or kernels) to `net`'s VGG.

    Everything is checked first; nothing is assigned if a layer is missing or mis-shaped.
    """
    _check_vgg(weights, biases, source)
    layers = net.vgg.layers
    for name in VGG_LAYERS:
        layer = layers[name]
        layer.kernel.assign(np.asarray(weights[name], np.float32).reshape(layer.kernel.shape))
        layer.bias.assign(np.asarray(biases[name], np.float32))
    return net


def init_vgg_from_npz(net, path):
    """Initialises `net`'s VGG layers from the release's `vgg_params.npz` (as the release's
    exp_train_referit_det.py did)."""
    weights, biases = load_vgg_params_npz(path)
    return assign_vgg(net, weights, biases, source=os.fspath(path))


def _h5_layer_weights(f, path):
    """`{keras layer name: [arrays in weight order]}` of a Keras VGG16 weights file.

    Reads the Keras 1/2 layout of the published file (root or `model_weights` group with
    `layer_names` / `weight_names` attributes) and the Keras 3 `.weights.h5` layout
    (`layers/<key>/vars/<i>` with the layer name as the `vars` group's `name` attribute).
    """
    import h5py

    def text(v):
        return v.decode() if isinstance(v, bytes) else str(v)

    root = f["model_weights"] if "model_weights" in f else f
    out = {}
    if "layer_names" in root.attrs:
        for lname in (text(n) for n in root.attrs["layer_names"]):
            group = root[lname]
            names = [text(n) for n in group.attrs.get("weight_names", [])]
            out[lname] = [np.asarray(group[n][()]) for n in names]
        return out
    if isinstance(root.get("layers"), h5py.Group):
        for key, group in root["layers"].items():
            vars_group = group.get("vars")
            if not isinstance(vars_group, h5py.Group):
                continue
            lname = text(vars_group.attrs.get("name", key))
            out[lname] = [np.asarray(vars_group[str(i)][()]) for i in range(len(vars_group))]
        return out
    raise ValueError(f"{path} is not a Keras weights file (no layer_names attribute and no "
                     "'layers' group)")


def load_keras_vgg16_h5(path):
    """`(weights, biases)` in this project's VGG layout from a `keras.applications` VGG16 file.

    conv1_1's input channels are reversed (Keras' VGG16 takes Caffe's BGR input; this
    project's VGG takes RGB, with the same per-channel means). Other layers are used as
    stored; fc1/fc2/predictions become fc6/fc7/fc8 matrices.
    """
    import h5py

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Keras VGG16 weights file not found: {path}")
    try:
        with h5py.File(path, "r") as f:
            layers = _h5_layer_weights(f, path)
    except (OSError, KeyError) as e:
        raise ValueError(f"cannot read Keras VGG16 weights {path}: {e}") from None
    missing = [k for k in KERAS_VGG16_LAYERS if not layers.get(k)]
    if missing:
        raise ValueError(f"{path} does not hold keras.applications VGG16 with its top: missing "
                         f"{', '.join(missing)}")
    weights, biases = {}, {}
    for keras_name, name in KERAS_VGG16_LAYERS.items():
        arrays = layers[keras_name]
        if len(arrays) != 2:
            raise ValueError(f"{path}: layer {keras_name} has {len(arrays)} arrays, expected "
                             "kernel and bias")
        kernel, bias = sorted(arrays, key=lambda a: -a.ndim)  # kernel first whatever the names
        weights[name], biases[name] = kernel, bias
    _check_vgg(weights, biases, path)
    weights["conv1_1"] = np.ascontiguousarray(weights["conv1_1"][:, :, ::-1, :])
    return weights, biases


def init_vgg_from_keras_h5(net, path):
    """Initialises `net`'s VGG layers from a local `keras.applications` VGG16 weights file
    (e.g. `vgg16_weights_tf_dim_ordering_tf_kernels.h5`)."""
    weights, biases = load_keras_vgg16_h5(path)
    return assign_vgg(net, weights, biases, source=os.fspath(path))


def save_vgg_params_npz(path, weights, biases, compressed=False):
    """Writes `(weights, biases)` as the release's `vgg_params.npz` (two pickled dicts; fc
    weights as matrices), atomically; `compressed` deflates the members (same reader)."""
    from text_objseg_tf2.util import io as io_util

    _check_vgg(weights, biases, "VGG weights")
    weights = {n: np.asarray(weights[n], np.float32).reshape(_SHAPES[n][1] or _SHAPES[n][0])
               for n in VGG_LAYERS}
    biases = {n: np.asarray(biases[n], np.float32) for n in VGG_LAYERS}
    with io_util.atomic_write(path, "wb") as f:
        (np.savez_compressed if compressed else np.savez)(f, processed_W=weights,
                                                          processed_B=biases)
    return path


# The signed colour channels of the stand-in VGG: +R, +G, +B, -R, -G, -B.
COLOUR_CHANNELS = 6


def colour_vgg_params():
    """`(weights, biases)` of a hand-set VGG-16 that carries each cell's colour to fc8.

    A stand-in for the ImageNet weights in synthetic runs, which cannot download them. conv1_1
    maps the mean-subtracted RGB pixel to the 6 signed channels (+R, +G, +B, -R, -G, -B) / 128;
    every later layer copies those channels through its kernel's centre tap (the ReLUs keep
    them, the max pools take each cell's extremes), and fc8's first 6 outputs hold them; every
    other weight and every bias is 0. A random VGG-16 is no substitute: its cells' fc8 vectors
    are nearly collinear (mean cosine 0.66 on the synthetic images) and carry little colour.
    """
    weights, biases = {}, {}
    for name, k, din, dout in vgg_net.VGG_CONV_LAYERS + vgg_net.VGG_FC_LAYERS:
        kernel = np.zeros((k, k, din, dout), np.float32)
        c = k // 2
        if name == "conv1_1":
            for ch in range(3):
                kernel[c, c, ch, ch] = 1.0 / 128
                kernel[c, c, ch, 3 + ch] = -1.0 / 128
        else:
            kernel[c, c, np.arange(COLOUR_CHANNELS), np.arange(COLOUR_CHANNELS)] = 1.0
        weights[name] = kernel
        biases[name] = np.zeros(dout, np.float32)
    return weights, biases
