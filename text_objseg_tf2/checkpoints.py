"""Weights files: the release's TF1 checkpoints and this project's Keras weights file.

Two on-disk forms are read and written:

* **TF1 checkpoints** as the release wrote them (`*.tfmodel`: single-file V1 checkpoints) or as
  later TF1 versions did (V2: `<prefix>.index` + `<prefix>.data-*`), with the LSTM under any of
  its three names (`LSTM_SPELLINGS`). Names are normalised to the release's spelling on reading.
  Training state stored beside the weights (the `Momentum` slots, the global step `Variable`)
  is skipped unless asked for.
* **This project's format**: the Keras `.weights.h5` file of `net.model(kind)` (so a plain
  `model.load_weights` reads it) with root attributes naming the format, the model kind and the
  text sizes, because the region ("det") and low-res models have the same layers and their kind
  cannot be told from the weights.

Inside this module weights travel as a dict `{TF1 variable name: array}` in the layout of the
release's checkpoint of that kind (a det model keeps fc6..fc8 and the classifier as matrices).
Every load validates all names and shapes before the first variable is touched.
"""

import contextlib
import dataclasses
import os
import re
import uuid

import numpy as np

from text_objseg_tf2.models import processing_tools, vgg_net
from text_objseg_tf2.models.text_objseg_model import (
    FC_LAYOUT_VARIABLES,
    LSTM_SCOPE,
    MODEL_KINDS,
    fc_layout_shape,
)

FORMAT_NAME = "text_objseg_tf2.weights"
FORMAT_VERSION = 1
SIZE_KEYS = ("num_vocab", "embed_dim", "lstm_dim", "mlp_hidden_dims")

LSTM_MATRIX = f"{LSTM_SCOPE}/Matrix"
LSTM_BIAS = f"{LSTM_SCOPE}/Bias"
EMBEDDING = "word_embedding/embedding"
MLP_L1 = "classifier/mlp_l1/weights"
UPSAMPLE = "classifier/upsample32s/weights"

# The LSTM's (matrix, bias) names under `lstm_lang/`: the release's (TF 0.x), TF 1.0-1.1's and
# TF >= 1.2's. The tensors are the same (gates i, j, f, o; forget bias added at run time).
LSTM_SPELLINGS = {
    "release": ("RNN/MultiRNNCell/Cell0/BasicLSTMCell/Linear/Matrix",
                "RNN/MultiRNNCell/Cell0/BasicLSTMCell/Linear/Bias"),
    "tf1.0": ("rnn/multi_rnn_cell/cell_0/basic_lstm_cell/weights",
              "rnn/multi_rnn_cell/cell_0/basic_lstm_cell/biases"),
    "tf1.2": ("rnn/multi_rnn_cell/cell_0/basic_lstm_cell/kernel",
              "rnn/multi_rnn_cell/cell_0/basic_lstm_cell/bias"),
}
TF1_VERSIONS = ("v1", "v2")

# Stored by the release's training scripts beside the weights: the global step (an unnamed
# tf.Variable, hence "Variable") and the MomentumOptimizer's slots ("<variable>/Momentum").
_STEP_NAMES = frozenset({"Variable", "global_step", "beta1_power", "beta2_power"})
_SLOT_SUFFIXES = frozenset({"Momentum", "Adam", "Adam_1", "RMSProp", "RMSProp_1", "Adagrad"})

# Keras layer name -> TF1 names of its variables, in the layer's variable order.
_KERAS_LAYER_VARIABLES = {
    **{name: (f"vgg_local/{name}/weights", f"vgg_local/{name}/biases")
       for name, *_ in vgg_net.VGG_CONV_LAYERS + vgg_net.VGG_FC_LAYERS},
    "word_embedding": (EMBEDDING,),
    "lstm_lang": (LSTM_MATRIX, LSTM_BIAS),
    "mlp_l1": ("classifier/mlp_l1/weights", "classifier/mlp_l1/biases"),
    "mlp_l2": ("classifier/mlp_l2/weights", "classifier/mlp_l2/biases"),
    "upsample32s": (UPSAMPLE,),
}


# ---------------------------------------------------------------------------------------------
# Names, kinds, sizes, shapes (pure numpy)
# ---------------------------------------------------------------------------------------------

def is_training_state(name):
    """True for the optimizer slots and step counters the release stored beside the weights."""
    return name in _STEP_NAMES or name.rsplit("/", 1)[-1] in _SLOT_SUFFIXES


def normalize_name(name):
    """The release spelling of a TF1 variable name (LSTM names of TF 1.0+ renamed)."""
    for matrix, bias in LSTM_SPELLINGS.values():
        for old, new in ((matrix, LSTM_MATRIX), (bias, LSTM_BIAS)):
            old = "lstm_lang/" + old
            if name == old or name.startswith(old + "/"):
                return new + name[len(old):]
    return name


def spell_name(name, lstm_spelling="release"):
    """`name` (release spelling) with the LSTM names of `lstm_spelling` (see LSTM_SPELLINGS)."""
    if lstm_spelling not in LSTM_SPELLINGS:
        raise ValueError(f"unknown LSTM spelling {lstm_spelling!r}; expected one of "
                         f"{tuple(LSTM_SPELLINGS)}")
    matrix, bias = LSTM_SPELLINGS[lstm_spelling]
    for old, new in ((LSTM_MATRIX, matrix), (LSTM_BIAS, bias)):
        if name == old or name.startswith(old + "/"):
            return "lstm_lang/" + new + name[len(old):]
    return name


def normalize_names(params, where="weights"):
    """`params` with release-spelled names; two spellings of one variable is an error."""
    out = {}
    for name, value in params.items():
        new = normalize_name(name)
        if new in out:
            raise ValueError(f"{where} holds {new} twice (under two LSTM spellings)")
        out[new] = value
    return out


def _check_kind(kind, what="model kind"):
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown {what} {kind!r}; expected one of {MODEL_KINDS}")
    return kind


def detect_kind(params):
    """Which model `params` (TF1 names) hold: "det", "seg_lowres" or "seg_highres".

    The high-res model alone has `classifier/upsample32s/weights`; the det (region) model keeps
    fc6 as a `[25088, 4096]` matrix where the segmentation models keep a `[7, 7, 512, 4096]`
    kernel.
    """
    params = normalize_names(params)
    fc6 = params.get("vgg_local/fc6/weights")
    if fc6 is None:
        sample = ", ".join(sorted(params)[:5]) or "no variables"
        raise ValueError("not a text_objseg model: no variable vgg_local/fc6/weights "
                         f"(found {sample}{', ...' if len(params) > 5 else ''})")
    ndim = len(_shape(fc6))
    if UPSAMPLE in params:
        return "seg_highres"
    if ndim == 2:
        return "det"
    if ndim == 4:
        return "seg_lowres"
    raise ValueError(f"vgg_local/fc6/weights has shape {_shape(fc6)}: neither a det "
                     "matrix [25088, 4096] nor a segmentation kernel [7, 7, 512, 4096]")


def infer_sizes(params):
    """`dict(num_vocab, embed_dim, lstm_dim, mlp_hidden_dims)` read from the weights' shapes."""
    params = normalize_names(params)
    missing = [n for n in (EMBEDDING, LSTM_MATRIX, MLP_L1) if n not in params]
    if missing:
        raise ValueError(f"cannot infer the model sizes: missing {', '.join(missing)}")
    emb, matrix, mlp = (_shape(params[n]) for n in (EMBEDDING, LSTM_MATRIX, MLP_L1))
    if len(emb) != 2 or len(matrix) != 2 or matrix[1] % 4 or len(mlp) not in (2, 4):
        raise ValueError(f"cannot infer the model sizes from {EMBEDDING} {list(emb)}, "
                         f"{LSTM_MATRIX} {list(matrix)}, {MLP_L1} {list(mlp)}")
    return dict(num_vocab=int(emb[0]), embed_dim=int(emb[1]), lstm_dim=int(matrix[1] // 4),
                mlp_hidden_dims=int(mlp[-1]))


def expected_shapes(kind, sizes):
    """`{TF1 name: shape}` of a release checkpoint of `kind` with the text sizes `sizes`."""
    _check_kind(kind)
    num_vocab, embed_dim, lstm_dim, hidden = (int(sizes[k]) for k in SIZE_KEYS)
    shapes = {}
    for name, k, din, dout in vgg_net.VGG_CONV_LAYERS + vgg_net.VGG_FC_LAYERS:
        shapes[f"vgg_local/{name}/weights"] = (k, k, din, dout)
        shapes[f"vgg_local/{name}/biases"] = (dout,)
    shapes[EMBEDDING] = (num_vocab, embed_dim)
    shapes[LSTM_MATRIX] = (embed_dim + lstm_dim, 4 * lstm_dim)
    shapes[LSTM_BIAS] = (4 * lstm_dim,)
    shapes["classifier/mlp_l1/weights"] = (1, 1, lstm_dim + 1000 + 8, hidden)
    shapes["classifier/mlp_l1/biases"] = (hidden,)
    shapes["classifier/mlp_l2/weights"] = (1, 1, hidden, 1)
    shapes["classifier/mlp_l2/biases"] = (1,)
    if kind == "seg_highres":
        shapes[UPSAMPLE] = (64, 64, 1, 1)
    if kind == "det":
        for name in FC_LAYOUT_VARIABLES:
            shapes[name] = fc_layout_shape(shapes[name])
    return shapes


def _shape(value):
    """Static shape of a numpy array or tf tensor as a tuple of ints (no conversion)."""
    shape = getattr(value, "shape", None)
    if shape is None:
        shape = np.shape(value)
    return tuple(int(d) for d in shape)


def _fmt_shape(shape):
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def check_params(params, kind, sizes=None, source="weights"):
    """Raises one ValueError listing every missing, unexpected, mis-shaped or non-float variable
    of `params` against the release layout of `kind` (sizes inferred when not given)."""
    _check_kind(kind)
    params = normalize_names(params, source)
    if sizes is None:
        sizes = infer_sizes(params)
    want = expected_shapes(kind, sizes)
    missing = sorted(set(want) - set(params))
    unexpected = sorted(set(params) - set(want))
    misshaped = [f"{n} {_fmt_shape(_shape(params[n]))} (expected {_fmt_shape(want[n])})"
                 for n in sorted(set(want) & set(params))
                 if _shape(params[n]) != tuple(want[n])]
    bad_dtype = [f"{n} ({_dtype_name(params[n])})" for n in sorted(set(want) & set(params))
                 if not _is_float(params[n])]
    problems = []
    for label, names in (("missing", missing), ("unexpected", unexpected),
                         ("mis-shaped", misshaped), ("not floating point", bad_dtype)):
        if names:
            problems.append(f"{label}: {', '.join(names)}")
    if problems:
        size_str = ", ".join(f"{k}={sizes[k]}" for k in SIZE_KEYS)
        raise ValueError(f"{source} does not fit the {kind} model ({size_str}): "
                         + "; ".join(problems))
    return params


def _dtype_name(value):
    dtype = getattr(value, "dtype", None)
    return getattr(dtype, "name", str(dtype))


def _is_float(value):
    dtype = value.dtype
    if hasattr(dtype, "is_floating"):  # a tf.DType
        return bool(dtype.is_floating)
    return np.dtype(dtype).kind == "f"


def check_conversion(from_kind, to_kind):
    """Raises unless weights of `from_kind` can serve `to_kind` (the same kind, or init steps
    det -> seg_lowres -> seg_highres)."""
    _check_kind(from_kind)
    _check_kind(to_kind)
    steps = {("det", "seg_lowres"), ("seg_lowres", "seg_highres"), ("det", "seg_highres")}
    if from_kind != to_kind and (from_kind, to_kind) not in steps:
        raise ValueError(f"weights of a {from_kind} model cannot be used as a {to_kind} model "
                         "(possible: det -> seg_lowres -> seg_highres)")


def convert_params(params, from_kind, to_kind):
    """Release-layout weights of `from_kind` as the init step to `to_kind` makes them.

    det -> seg_lowres reshapes fc6..fc8 and the classifier matrices into conv kernels (what
    init_referit_seg_lowres_from_det.py did); seg_lowres -> seg_highres adds the bilinear
    `upsample32s` filter (init_referit_seg_highres_from_lowres.py); det -> seg_highres does both.
    Arrays are shared (reshapes are views), not copied.
    """
    check_conversion(from_kind, to_kind)
    out = dict(params)
    if from_kind == "det" and to_kind != "det":
        conv_shapes = expected_shapes("seg_lowres", infer_sizes(params))
        for name in FC_LAYOUT_VARIABLES:
            out[name] = _reshape(out[name], conv_shapes[name])
    if to_kind == "seg_highres" and from_kind != "seg_highres":
        out[UPSAMPLE] = processing_tools.generate_bilinear_filter(32)
    return out


def _reshape(value, shape):
    if isinstance(value, np.ndarray):
        return value.reshape(shape)
    import tensorflow as tf

    return tf.reshape(value, shape)


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------

def _first_line(error):
    text = str(getattr(error, "message", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _is_hdf5(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89HDF\r\n\x1a\n"


def resolve_weights_path(path):
    """`(form, path)`: form "keras" (an HDF5 weights file) or "tf1" (V1 file or V2 prefix).

    Accepts a V2 checkpoint's prefix, its `.index` file, or a folder holding a `checkpoint`
    state file; a missing file is a FileNotFoundError naming it.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        import tensorflow as tf

        latest = tf.train.latest_checkpoint(path)
        if latest is None:
            raise FileNotFoundError(f"no checkpoint found in folder {path}")
        path = latest
    if os.path.isfile(path):
        if path.endswith(".index") and not _is_hdf5(path):
            return "tf1", path[:-len(".index")]
        return ("keras" if _is_hdf5(path) else "tf1"), path
    if os.path.isfile(path + ".index"):
        return "tf1", path
    raise FileNotFoundError(f"weights file not found: {path}")


class _Spec:
    """Shape and dtype of a stored variable whose value has not been read."""

    def __init__(self, shape, dtype):
        self.shape = tuple(int(d) for d in shape)
        self.dtype = dtype


def _tf1_specs(path, include_training_state=False):
    """`({release name: _Spec}, {release name: stored name})` of a resolved TF1 checkpoint."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(path)
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    specs, stored = {}, {}
    for name in sorted(shapes):
        if not include_training_state and is_training_state(name):
            continue
        new = normalize_name(name)
        if new in specs:
            raise ValueError(f"TF1 checkpoint {path} holds {new} twice (two LSTM spellings)")
        specs[new] = _Spec(shapes[name], dtypes[name])
        stored[new] = name
    if not specs:
        raise ValueError(f"TF1 checkpoint {path} holds no variables")
    return specs, stored


def _restore_tf1(path, specs, stored):
    """`{name: tf.Tensor}` read one at a time with TF's restore op (V2, and V1 by fallback)."""
    import tensorflow as tf

    return {name: tf.raw_ops.RestoreV2(prefix=path, tensor_names=[stored[name]],
                                       shape_and_slices=[""], dtypes=[spec.dtype])[0]
            for name, spec in specs.items()}


def _tf1_errors(path):
    """Context turning a TF reader failure into a one-line ValueError naming the file."""
    @contextlib.contextmanager
    def guard():
        try:
            yield
        except ValueError:
            raise
        except Exception as e:  # noqa: BLE001 - TF raises OpError, IndexError, RuntimeError
            raise ValueError(f"cannot read TF1 checkpoint {path}: {_first_line(e)}") from None
    return guard()


def read_tf1_tensors(path, include_training_state=False):
    """`{TF1 name: tf.Tensor}` of a TF1 checkpoint (V1 file or V2 prefix); see
    `read_tf1_checkpoint`. Tensors come straight from TF's restore op, one at a time, so a
    network made from them (`new_net`) shares their memory instead of copying it.
    """
    form, path = resolve_weights_path(path)
    if form != "tf1":
        raise ValueError(f"{path} is an HDF5 file, not a TF1 checkpoint")
    with _tf1_errors(path):
        specs, stored = _tf1_specs(path, include_training_state)
        return _restore_tf1(path, specs, stored)


def read_tf1_checkpoint(path, include_training_state=False):
    """`{TF1 name: numpy array}` of a TF1 checkpoint (V1 file or V2 prefix).

    LSTM names of every spelling come back in the release's spelling. The optimizer slots and
    step counter are skipped unless `include_training_state`. A corrupt or truncated file is a
    one-line ValueError naming it.
    """
    tensors = read_tf1_tensors(path, include_training_state)
    return {name: tensors.pop(name).numpy() for name in list(tensors)}


def _tmp_name(path, suffix=""):
    folder, base = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{base}.{uuid.uuid4().hex}.tmp{suffix}")


def _check_version(version):
    version = str(version).lower()
    if version not in TF1_VERSIONS:
        raise ValueError(f"unknown TF1 checkpoint version {version!r}; expected one of "
                         f"{TF1_VERSIONS}")
    return version


def write_tf1_checkpoint(params, path, version="v2", lstm_spelling="release"):
    """Writes `{TF1 name: array or tensor}` as a TF1 checkpoint, atomically.

    version "v1": one file at `path` (as the release's `*.tfmodel`); "v2": `path` is the prefix
    of `<path>.index` and `<path>.data-00000-of-00001`. `lstm_spelling` names the LSTM as in
    LSTM_SPELLINGS (the release's by default, which every version of the original code loads).
    The original's Saver also wrote a `checkpoint` state file; none is written here.
    """
    import tensorflow as tf

    version = _check_version(version)
    path = os.fspath(path)
    if version == "v2" and path.endswith(".index"):
        path = path[:-len(".index")]
    params = normalize_names(params)
    if not params:
        raise ValueError("no variables to write")
    names = sorted(params)
    tensors = [tf.convert_to_tensor(params[n]) for n in names]
    tf_names = [spell_name(n, lstm_spelling) for n in names]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = _tmp_name(path)
    try:
        if version == "v1":
            tf.raw_ops.Save(filename=tmp, tensor_names=tf_names, data=tensors)
            os.replace(tmp, path)
        else:
            tf.raw_ops.SaveV2(prefix=tmp, tensor_names=tf_names,
                              shape_and_slices=[""] * len(names), tensors=tensors)
            # The data shard first, the index last: a reader finds a complete set.
            shards = sorted(f for f in os.listdir(os.path.dirname(tmp))
                            if f.startswith(os.path.basename(tmp) + ".data-"))
            for shard in shards:
                os.replace(os.path.join(os.path.dirname(tmp), shard),
                           path + shard[len(os.path.basename(tmp)):])
            os.replace(tmp + ".index", path + ".index")
            _remove_stale_shards(path, [s[len(os.path.basename(tmp)):] for s in shards])
    finally:
        folder = os.path.dirname(tmp)
        for f in os.listdir(folder):
            if f.startswith(os.path.basename(tmp)):
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(folder, f))
    return path


def _remove_stale_shards(prefix, kept_suffixes):
    folder, base = os.path.split(os.path.abspath(prefix))
    pattern = re.compile(re.escape(base) + r"\.data-\d{5}-of-\d{5}$")
    for f in os.listdir(folder):
        if pattern.match(f) and f[len(base):] not in kept_suffixes:
            with contextlib.suppress(OSError):
                os.remove(os.path.join(folder, f))


def _walk_keras_weights(h5file, path):
    """`{TF1 name: h5py Dataset}` of a Keras 3 `.weights.h5` file of a TextObjSegNet model."""
    import h5py

    layers = h5file.get("layers")
    if not isinstance(layers, h5py.Group):
        raise ValueError(f"{path} is not a Keras weights file of this project (no 'layers' group)")
    found, unknown = {}, []
    for key in layers:
        group = layers[key].get("vars")
        if not isinstance(group, h5py.Group) or not len(group):
            continue
        layer_name = group.attrs.get("name", key)
        if isinstance(layer_name, bytes):
            layer_name = layer_name.decode()
        names = _KERAS_LAYER_VARIABLES.get(layer_name)
        if names is None or len(group) != len(names):
            unknown.append(f"{layer_name} ({len(group)} variables)")
            continue
        for i, name in enumerate(names):
            found[name] = group[str(i)]
    if unknown:
        raise ValueError(f"{path} has layers that are not part of this model: "
                         f"{', '.join(sorted(unknown))}")
    return found


def _attr_str(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def _h5_kind(path, attrs, names, kind_hint):
    if "format" in attrs and _attr_str(attrs["format"]) != FORMAT_NAME:
        raise ValueError(f"{path} is a {_attr_str(attrs['format'])!r} file, not {FORMAT_NAME}")
    if "kind" in attrs:
        return _check_kind(_attr_str(attrs["kind"]), f"model kind in {path}")
    if UPSAMPLE in names:
        return "seg_highres"
    if kind_hint in ("det", "seg_lowres"):
        return kind_hint
    if kind_hint == "seg_highres":
        return "seg_lowres"  # the same layers as det; both convert to high-res alike
    raise ValueError(f"{path} has no 'kind' attribute and its layers fit both the det and the "
                     "seg_lowres model: say which (--model / kind=)")


@dataclasses.dataclass
class WeightsInfo:
    """What `inspect_weights` found: the file, its form, model kind, text sizes and the release
    layout shape of every variable (nothing read but names and shapes)."""

    path: str
    form: str
    kind: str
    sizes: dict
    shapes: dict
    _specs: dict = dataclasses.field(repr=False, default_factory=dict)
    _stored: dict = dataclasses.field(repr=False, default_factory=dict)


def inspect_weights(path, kind=None):
    """`WeightsInfo` of any supported weights file, fully checked against its model kind.

    Reads names, shapes and (for this project's format) root attributes only, so a file of
    the wrong model or size fails in a moment. `kind` is a hint used only for a plain Keras
    weights file that does not say whether it is det or seg_lowres.
    """
    import h5py

    form, resolved = resolve_weights_path(path)
    if form == "tf1":
        with _tf1_errors(resolved):
            specs, stored = _tf1_specs(resolved)
        try:
            file_kind = detect_kind(specs)
        except ValueError as e:
            raise ValueError(f"weights file {resolved}: {e}") from None
    else:
        try:
            with h5py.File(resolved, "r") as f:
                attrs = {k: f.attrs[k] for k in f.attrs}
                datasets = _walk_keras_weights(f, resolved)
                specs = {n: _Spec(ds.shape, ds.dtype) for n, ds in datasets.items()}
                stored = {n: ds.name for n, ds in datasets.items()}
        except (OSError, KeyError, RuntimeError) as e:
            raise ValueError(f"cannot read weights file {resolved}: {_first_line(e)}") from None
        file_kind = _h5_kind(resolved, attrs, specs, kind)
        if file_kind == "det":  # stored as kernels; the det layout holds matrices
            conv = expected_shapes("seg_lowres", infer_sizes(specs))
            for name in FC_LAYOUT_VARIABLES:
                if name in specs and specs[name].shape == conv[name]:
                    specs[name] = _Spec(fc_layout_shape(conv[name]), specs[name].dtype)
        given = {k: int(attrs[k]) for k in SIZE_KEYS if k in attrs}
        found = infer_sizes(specs)
        if given and given != {k: found[k] for k in given}:
            raise ValueError(f"{resolved}: size attributes {given} disagree with the weights' "
                             f"shapes {found}")
    try:
        sizes = infer_sizes(specs)
    except ValueError as e:
        raise ValueError(f"weights file {resolved}: {e}") from None
    check_params(specs, file_kind, sizes, source=f"weights file {resolved}")
    return WeightsInfo(resolved, form, file_kind, sizes,
                       {n: spec.shape for n, spec in specs.items()}, specs, stored)


def read_values(info, as_tensors=False):
    """`{release name: array}` of an inspected file, in the release layout of `info.kind`:
    numpy arrays, or tf tensors with `as_tensors` (no extra copy for TF1 files)."""
    import h5py
    import tensorflow as tf

    if info.form == "tf1":
        with _tf1_errors(info.path):
            params = _restore_tf1(info.path, info._specs, info._stored)
        if not as_tensors:
            params = {name: params.pop(name).numpy() for name in list(params)}
        return params
    params = {}
    try:
        with h5py.File(info.path, "r") as f:
            for name, shape in info.shapes.items():
                value = np.asarray(f[info._stored[name]][()]).reshape(shape)
                params[name] = tf.convert_to_tensor(value) if as_tensors else value
                del value
    except (OSError, KeyError, RuntimeError) as e:
        raise ValueError(f"cannot read weights file {info.path}: {_first_line(e)}") from None
    return params


def read_weights(path, kind=None, as_tensors=False):
    """`(params, kind, sizes)` of any supported weights file (TF1 V1/V2 or this project's).

    `params` are release-named numpy arrays (tf tensors with `as_tensors`) laid out as the
    file's own kind, checked against it before any value is read; `kind` is a hint used only
    for a plain Keras weights file that does not say whether it is det or seg_lowres.
    """
    info = inspect_weights(path, kind)
    return read_values(info, as_tensors), info.kind, info.sizes


def read_weights_file(path, kind=None, as_tensors=False):
    """`read_weights` for this project's weights file only."""
    info = inspect_weights(path, kind)
    if info.form != "keras":
        raise ValueError(f"{info.path} is a TF1 checkpoint, not a Keras weights file")
    return read_values(info, as_tensors), info.kind, info.sizes


# ---------------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------------

def _net_variables(net):
    """`{TF1 name: keras Variable}` of every variable of `net`."""
    return net.tf1_variables("seg_highres")


def assign_params(net, params, kind):
    """Assigns release-layout weights of `kind` to `net`, all or nothing.

    Every name, shape and dtype is checked against `net` before the first assignment; any
    mismatch is one ValueError listing all of them. det matrices are reshaped into the net's
    conv-layout kernels.
    """
    _check_kind(kind)
    sizes = {k: getattr(net, k) for k in SIZE_KEYS}
    params = check_params(params, kind, sizes)
    variables = net.tf1_variables(kind)
    for name, var in variables.items():
        var.assign(_reshape(params[name], tuple(var.shape)))
    return net


def _can_defer_init():
    try:
        import keras
        from keras.src.backend.common import global_state
        from keras.src.backend.common.variables import Variable
    except ImportError:
        return False
    return (hasattr(keras, "StatelessScope") and hasattr(Variable, "_deferred_initialize")
            and hasattr(global_state, "get_global_attribute"))


class _ValueInit:
    """An initializer that returns one given array (used once, then dropped)."""

    def __init__(self, value):
        self.value = value

    def __call__(self, shape, dtype=None):
        value, self.value = self.value, None
        return _reshape(value, tuple(shape))


def new_net(values=None, sizes=None, defer_init=None, **net_kwargs):
    """A `TextObjSegNet` of `sizes` whose variables start from `values` (TF1 name -> array).

    `values` entries are consumed (popped) as their variables are made; a tf tensor value (what
    `load_pretrained` reads) becomes the variable's buffer without a copy, a numpy array is
    copied once. Variables not in `values` keep their own initialisers.

    Building the net the plain way draws He-normal values for VGG's 138M weights (~8 s and
    ~0.7 GB of temporaries on 2 CPU cores) only for them to be overwritten. Instead the net is
    built in a `keras.StatelessScope` (which defers variable creation) and each variable is then
    created from its value. That uses two private Keras hooks (`Variable._initializer`,
    `_deferred_initialize`, checked for at run time); `defer_init=False`, or a Keras without
    them, builds normally and assigns.
    """
    from text_objseg_tf2.models.text_objseg_model import TextObjSegNet

    sizes = dict(sizes or {})
    values = values if values is not None else {}
    if defer_init is None:
        defer_init = _can_defer_init()
    if not defer_init:
        net = TextObjSegNet(**sizes, **net_kwargs)
        for name, var in _net_variables(net).items():
            if name in values:
                var.assign(_reshape(values.pop(name), tuple(var.shape)))
        return net

    import keras
    from keras.src.backend.common import global_state

    before = list(global_state.get_global_attribute("uninitialized_variables", []) or [])
    with keras.StatelessScope(initialize_variables=False):
        net = TextObjSegNet(**sizes, **net_kwargs)
    pending = global_state.get_global_attribute("uninitialized_variables", []) or []
    ours = [v for v in pending if not any(v is b for b in before)]
    global_state.set_global_attribute("uninitialized_variables", before)
    by_id = {id(v): name for name, v in _net_variables(net).items()}
    for var in ours:
        name = by_id.get(id(var))
        if name is not None and name in values:
            var._initializer = _ValueInit(values.pop(name))
        var._deferred_initialize()
    return net


def load_pretrained(path, kind=None, defer_init=None, **net_kwargs):
    """`(net, kind)`: a `TextObjSegNet` holding the weights of any supported file.

    `path`: a release TF1 checkpoint (V1 or V2, any LSTM spelling) or this project's weights
    file. `kind` None loads the file's own model; otherwise the requested kind may be one init
    step on (det -> seg_lowres reshapes the fc matrices; seg_lowres -> seg_highres adds the
    bilinear filter; det -> seg_highres both). Text sizes are read from the weights; size
    arguments in `net_kwargs` must agree with them. Other `net_kwargs` (vgg_dropout,
    mlp_dropout) go to the net.
    """
    info = inspect_weights(path, kind)
    source = f"weights file {info.path}"
    _check_request(info, kind, net_kwargs, source)
    net = net_from_params(read_values(info, as_tensors=True), info.kind, kind, source=source,
                          defer_init=defer_init, **net_kwargs)
    return net, (info.kind if kind is None else kind)


def _check_request(info, kind, net_kwargs, source):
    """Fails before any value is read when the file cannot give the requested model."""
    clash = {k: (int(net_kwargs[k]), info.sizes[k]) for k in SIZE_KEYS
             if k in net_kwargs and int(net_kwargs[k]) != info.sizes[k]}
    if clash:
        desc = ", ".join(f"{k}={v} but the weights have {w}" for k, (v, w) in clash.items())
        raise ValueError(f"{source} does not fit the requested sizes: {desc}")
    if kind is not None:
        try:
            check_conversion(info.kind, kind)
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from None


def net_from_params(params, file_kind, kind=None, source="weights", defer_init=None,
                    **net_kwargs):
    """A `TextObjSegNet` from checked release-layout `params` of `file_kind`, converted to
    `kind` (see `convert_params`). The dict is consumed: its arrays are released as the
    variables are made, so the weights are held about twice at most."""
    kind = file_kind if kind is None else _check_kind(kind)
    sizes = infer_sizes(params)
    given = {k: int(net_kwargs.pop(k)) for k in SIZE_KEYS if k in net_kwargs}
    clash = {k: (v, sizes[k]) for k, v in given.items() if v != sizes[k]}
    if clash:
        desc = ", ".join(f"{k}={v} but the weights have {w}" for k, (v, w) in clash.items())
        raise ValueError(f"{source} does not fit the requested sizes: {desc}")
    try:
        converted = convert_params(params, file_kind, kind)
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from None
    params.clear()
    values = {name: _as_float32(v) for name, v in converted.items()}
    del converted
    return new_net(values, sizes, defer_init=defer_init, **net_kwargs)


def _as_float32(value):
    if isinstance(value, np.ndarray):
        return value.astype(np.float32, copy=False)
    import tensorflow as tf

    return tf.cast(value, tf.float32)


def _check_weights_h5_name(path):
    if not os.fspath(path).endswith(".weights.h5"):
        raise ValueError(f"this project's weights file must end with '.weights.h5' (Keras "
                         f"requires it for model.load_weights): {path}")


def save_weights(net, kind, path):
    """Writes `net.model(kind)`'s Keras `.weights.h5` file with this format's root attributes,
    atomically. `model.load_weights(path)` reads it back into a model of the same kind/sizes.
    """
    import h5py

    _check_kind(kind)
    path = os.fspath(path)
    _check_weights_h5_name(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    model = net.model(kind, T=1, input_H=32, input_W=32)
    tmp = _tmp_name(path, ".weights.h5")
    packed = _tmp_name(path, ".packed.weights.h5")
    try:
        model.save_weights(tmp)
        if _deflate_sparse_datasets(tmp, packed):
            os.replace(packed, tmp)
        with h5py.File(tmp, "a") as f:
            found = _walk_keras_weights(f, tmp)
            want = {n: tuple(v.shape) for n, v in net.tf1_variables(kind).items()}
            got = {n: tuple(ds.shape) for n, ds in found.items()}
            if got != want:
                raise RuntimeError(f"unexpected Keras weights layout in {tmp}: {sorted(got)}")
            f.attrs["format"] = FORMAT_NAME
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["kind"] = kind
            for k in SIZE_KEYS:
                f.attrs[k] = int(getattr(net, k))
        os.replace(tmp, path)
    finally:
        for name in (tmp, packed):
            with contextlib.suppress(OSError):
                os.remove(name)
    return path


# Datasets of at least this many values, and at least this fraction of zeros, are stored
# deflated (hand-set or pruned weights: the synthetic runs' colour VGG is ~all zeros).
# Trained weights have no zeros and are stored as they are: deflating them gains ~7% at ~20x
# the write time.
_SPARSE_MIN_SIZE = 1 << 16
_SPARSE_MIN_ZERO_FRACTION = 0.9


def _deflate_sparse_datasets(src, dst):
    """Copies the HDF5 file `src` to `dst` with its mostly-zero datasets gzip-compressed (the
    same groups, attributes and values; h5py reads them transparently). Returns False, writing
    nothing, when no dataset is mostly zeros."""
    import h5py

    def is_sparse(obj):
        return (isinstance(obj, h5py.Dataset) and obj.size >= _SPARSE_MIN_SIZE and
                np.count_nonzero(obj[()]) <= (1 - _SPARSE_MIN_ZERO_FRACTION) * obj.size)

    with h5py.File(src, "r") as f:
        sparse = set()
        f.visititems(lambda name, obj: sparse.add(name) if is_sparse(obj) else None)
        if not sparse:
            return False
        with h5py.File(dst, "w") as out:
            out.attrs.update(f.attrs)

            def copy(name, obj):
                if isinstance(obj, h5py.Group):
                    out.require_group(name).attrs.update(obj.attrs)
                    return
                options = (dict(compression="gzip", compression_opts=1, shuffle=True)
                           if name in sparse else {})
                out.create_dataset(name, data=obj[()], **options).attrs.update(obj.attrs)

            f.visititems(copy)
    return True


def tf1_params(net, kind):
    """`{TF1 name: tensor}` of `net` in the release layout of `kind` (no copy)."""
    import tensorflow as tf

    _check_kind(kind)
    out = {}
    for name, var in net.tf1_variables(kind).items():
        value = tf.convert_to_tensor(var.value)
        if kind == "det" and name in FC_LAYOUT_VARIABLES:
            value = tf.reshape(value, fc_layout_shape(tuple(var.shape)))
        out[name] = value
    return out


def save_tf1(net, kind, path, version="v2", lstm_spelling="release"):
    """Writes `net`'s weights of `kind` as a release-named TF1 checkpoint (see
    `write_tf1_checkpoint`)."""
    return write_tf1_checkpoint(tf1_params(net, kind), path, version=version,
                                lstm_spelling=lstm_spelling)


def save_params(params, kind, path, sizes=None):
    """Writes release-layout `params` of `kind` in this project's format without the caller
    building a net (convert's path): builds one from the arrays, then `save_weights`."""
    params = check_params(params, kind, sizes)
    sizes = sizes or infer_sizes(params)
    values = {n: _as_float32(v) for n, v in params.items()}
    net = new_net(values, sizes)
    return save_weights(net, kind, path)


OUTPUT_FORMATS = ("auto", "keras", "tf1")


def output_format(path, fmt="auto"):
    """"keras" or "tf1" for an output path: "auto" picks this project's format for a
    `*.weights.h5` name and a TF1 checkpoint for any other (e.g. the release's `*.tfmodel`)."""
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; expected one of {OUTPUT_FORMATS}")
    if fmt == "auto":
        return "keras" if os.fspath(path).endswith(".weights.h5") else "tf1"
    return fmt


def tf1_version_for(path, version="auto"):
    """"v1" or "v2": "auto" writes the release's single-file V1 for a `*.tfmodel` name, V2
    (the TF >= 1.0 default) otherwise."""
    if version == "auto":
        return "v1" if os.fspath(path).endswith(".tfmodel") else "v2"
    return _check_version(version)


def write_params(params, kind, path, fmt="auto", tf1_version="auto", lstm_spelling="release"):
    """Writes checked release-layout `params` of `kind` as `output_format(path, fmt)`.

    Returns `(format, path written)`.
    """
    params = check_params(params, kind, source=f"weights for {path}")
    fmt = output_format(path, fmt)
    if fmt == "keras":
        return fmt, save_params(params, kind, path)
    return fmt, write_tf1_checkpoint(params, path, version=tf1_version_for(path, tf1_version),
                                     lstm_spelling=lstm_spelling)


# VGG initialisation lives in vgg_params; exported here as the checkpoint API names it.
from text_objseg_tf2.vgg_params import (  # noqa: E402
    init_vgg_from_keras_h5,
    init_vgg_from_npz,
    load_keras_vgg16_h5,
    load_vgg_params_npz,
)

__all__ = [
    "FORMAT_NAME", "LSTM_SPELLINGS", "SIZE_KEYS", "WeightsInfo", "assign_params",
    "check_conversion", "check_params", "convert_params", "detect_kind", "expected_shapes",
    "infer_sizes", "init_vgg_from_keras_h5", "init_vgg_from_npz", "inspect_weights",
    "load_keras_vgg16_h5", "load_pretrained", "load_vgg_params_npz", "net_from_params",
    "new_net", "normalize_name", "output_format", "read_tf1_checkpoint", "read_tf1_tensors",
    "read_values", "read_weights", "read_weights_file", "save_params", "save_tf1",
    "save_weights", "tf1_params", "tf1_version_for", "write_params", "write_tf1_checkpoint",
]
