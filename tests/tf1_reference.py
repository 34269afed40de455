"""An independent re-expression of the release's TF1 graph, for the faithfulness tests.

Works from a dict `{TF1 variable name: numpy array}` exactly as a release checkpoint holds it
(det models keep fc6..fc8 and the MLP as matrices). Convolutions and pooling use low-level
`tf.nn` ops (numpy would be too slow for VGG); the LSTM, the fusion, the MLP and the
transposed convolution are written out in float64 numpy, so the code under test is never called.
"""

import numpy as np
import tensorflow as tf

LSTM_MATRIX = "lstm_lang/RNN/MultiRNNCell/Cell0/BasicLSTMCell/Linear/Matrix"
LSTM_BIAS = "lstm_lang/RNN/MultiRNNCell/Cell0/BasicLSTMCell/Linear/Bias"
VGG_CONVS = ["conv1_1", "conv1_2", "pool", "conv2_1", "conv2_2", "pool",
             "conv3_1", "conv3_2", "conv3_3", "pool", "conv4_1", "conv4_2", "conv4_3", "pool",
             "conv5_1", "conv5_2", "conv5_3", "pool"]


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def lstm_last_hidden(params, text_seq, forget_bias=1.0):
    """BasicLSTMCell (state_is_tuple=False, gates i, j, f, o) over all T steps, in float64."""
    emb = params["word_embedding/embedding"].astype(np.float64)
    W = params[LSTM_MATRIX].astype(np.float64)
    b = params[LSTM_BIAS].astype(np.float64)
    T, N = text_seq.shape
    D = W.shape[1] // 4
    c = np.zeros((N, D))
    h = np.zeros((N, D))
    for t in range(T):
        x = emb[text_seq[t]]
        z = np.concatenate([x, h], axis=1) @ W + b
        i, j, f, o = z[:, :D], z[:, D:2 * D], z[:, 2 * D:3 * D], z[:, 3 * D:]
        c = c * _sigmoid(f + forget_bias) + _sigmoid(i) * np.tanh(j)
        h = np.tanh(c) * _sigmoid(o)
    return h


def vgg_pool5(params, images):
    x = tf.constant(images, tf.float32)
    for name in VGG_CONVS:
        if name == "pool":
            x = tf.nn.max_pool(x, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME")
        else:
            x = tf.nn.relu(tf.nn.bias_add(
                tf.nn.conv2d(x, params[f"vgg_local/{name}/weights"], [1, 1, 1, 1], "SAME"),
                params[f"vgg_local/{name}/biases"]))
    return x


def vgg_fc8_full_conv(params, images):
    x = vgg_pool5(params, images)
    for name, relu in (("fc6", True), ("fc7", True), ("fc8", False)):
        W = params[f"vgg_local/{name}/weights"]
        if W.ndim == 2:  # a det checkpoint: fc matrices reshaped as the release's init script
            k = 7 if name == "fc6" else 1
            W = W.reshape(k, k, -1, W.shape[1])
        x = tf.nn.bias_add(tf.nn.conv2d(x, W, [1, 1, 1, 1], "SAME"),
                           params[f"vgg_local/{name}/biases"])
        if relu:
            x = tf.nn.relu(x)
    return x.numpy().astype(np.float64)


def vgg_fc8(params, crops):
    x = vgg_pool5(params, crops).numpy().astype(np.float64)
    x = x.reshape(x.shape[0], -1)
    for name, relu in (("fc6", True), ("fc7", True), ("fc8", False)):
        W = params[f"vgg_local/{name}/weights"].astype(np.float64)
        x = x @ W.reshape(-1, W.shape[-1]) + params[f"vgg_local/{name}/biases"]
        if relu:
            x = np.maximum(x, 0)
    return x


def _l2n(x, axis):
    return x / np.sqrt(np.maximum(np.sum(x * x, axis=axis, keepdims=True), 1e-12))


def _spatial(h, w):
    out = np.zeros((h, w, 8))
    for i in range(h):
        for j in range(w):
            x0, x1 = j / w * 2 - 1, (j + 1) / w * 2 - 1
            y0, y1 = i / h * 2 - 1, (i + 1) / h * 2 - 1
            out[i, j] = [x0, y0, x1, y1, (x0 + x1) / 2, (y0 + y1) / 2, 1 / w, 1 / h]
    return out


def _mlp(params, feat):
    W1 = params["classifier/mlp_l1/weights"].astype(np.float64)
    W2 = params["classifier/mlp_l2/weights"].astype(np.float64)
    hid = np.maximum(feat @ W1.reshape(-1, W1.shape[-1]) + params["classifier/mlp_l1/biases"], 0)
    return hid @ W2.reshape(-1, W2.shape[-1]) + params["classifier/mlp_l2/biases"]


def region_scores(params, text_seq, crops, spatial):
    lang = lstm_last_hidden(params, text_seq)
    vis = vgg_fc8(params, crops)
    feat = np.concatenate([_l2n(lang, 1), _l2n(vis, 1), spatial.astype(np.float64)], axis=1)
    return _mlp(params, feat)


def lowres_scores(params, text_seq, images):
    lang = lstm_last_hidden(params, text_seq)
    vis = vgg_fc8_full_conv(params, images)
    N, h, w, _ = vis.shape
    lang = np.broadcast_to(_l2n(lang, 1)[:, None, None, :], (N, h, w, lang.shape[1]))
    spatial = np.broadcast_to(_spatial(h, w), (N, h, w, 8))
    feat = np.concatenate([lang, _l2n(vis, 3), spatial], axis=3)
    return _mlp(params, feat.reshape(-1, feat.shape[-1])).reshape(N, h, w, 1)


def conv2d_transpose_same(x, kernel, stride):
    """TF's conv2d_transpose with SAME padding, output `in*stride`, by explicit scatter-add."""
    N, h, w, _ = x.shape
    k = kernel.shape[0]
    out_h, out_w = h * stride, w * stride
    pad_before = max((h - 1) * stride + k - out_h, 0) // 2
    big = np.zeros((N, out_h + 2 * k, out_w + 2 * k))
    kern = kernel[:, :, 0, 0].astype(np.float64)
    for i in range(h):
        for j in range(w):
            top = i * stride - pad_before + k
            left = j * stride - pad_before + k
            big[:, top:top + k, left:left + k] += x[:, i, j, 0][:, None, None] * kern
    return big[:, k:k + out_h, k:k + out_w, None]


def highres_scores(params, text_seq, images):
    low = lowres_scores(params, text_seq, images)
    return conv2d_transpose_same(low, params["classifier/upsample32s/weights"], 32)


def random_params(kind, num_vocab=30, embed_dim=12, lstm_dim=10, mlp_hidden_dims=6, seed=0,
                  vgg_std_scale=1.0):
    """Random TF1-named weights of `kind` in the release's layout (det: fc matrices)."""
    rng = np.random.default_rng(seed)
    p = {}
    convs = [("conv1_1", 3, 64), ("conv1_2", 64, 64), ("conv2_1", 64, 128),
             ("conv2_2", 128, 128), ("conv3_1", 128, 256), ("conv3_2", 256, 256),
             ("conv3_3", 256, 256), ("conv4_1", 256, 512), ("conv4_2", 512, 512),
             ("conv4_3", 512, 512), ("conv5_1", 512, 512), ("conv5_2", 512, 512),
             ("conv5_3", 512, 512)]
    for name, cin, cout in convs:
        std = vgg_std_scale * np.sqrt(2.0 / (9 * cin))
        p[f"vgg_local/{name}/weights"] = (rng.standard_normal((3, 3, cin, cout)) * std
                                          ).astype(np.float32)
        p[f"vgg_local/{name}/biases"] = (rng.standard_normal(cout) * 0.1).astype(np.float32)
    for name, k, cin, cout in (("fc6", 7, 512, 4096), ("fc7", 1, 4096, 4096),
                               ("fc8", 1, 4096, 1000)):
        W = (rng.standard_normal((k, k, cin, cout), dtype=np.float32)
             * np.float32(np.sqrt(2.0 / (k * k * cin))))
        p[f"vgg_local/{name}/weights"] = W.reshape(-1, cout) if kind == "det" else W
        p[f"vgg_local/{name}/biases"] = (rng.standard_normal(cout) * 0.1).astype(np.float32)
    p["word_embedding/embedding"] = rng.standard_normal((num_vocab, embed_dim)).astype(np.float32)
    p[LSTM_MATRIX] = (rng.standard_normal((embed_dim + lstm_dim, 4 * lstm_dim))
                      * 0.3).astype(np.float32)
    p[LSTM_BIAS] = (rng.standard_normal(4 * lstm_dim) * 0.3).astype(np.float32)
    d = lstm_dim + 1000 + 8
    W1 = (rng.standard_normal((d, mlp_hidden_dims)) * 0.3).astype(np.float32)
    W2 = (rng.standard_normal((mlp_hidden_dims, 1)) * 0.3).astype(np.float32)
    p["classifier/mlp_l1/weights"] = W1 if kind == "det" else W1.reshape(1, 1, d, -1)
    p["classifier/mlp_l1/biases"] = (rng.standard_normal(mlp_hidden_dims) * 0.1
                                     ).astype(np.float32)
    p["classifier/mlp_l2/weights"] = W2 if kind == "det" else W2.reshape(1, 1, -1, 1)
    p["classifier/mlp_l2/biases"] = (rng.standard_normal(1) * 0.1).astype(np.float32)
    if kind == "seg_highres":
        p["classifier/upsample32s/weights"] = (rng.standard_normal((64, 64, 1, 1)) * 0.1
                                               ).astype(np.float32)
    return p
