"""The three networks of the paper as Keras functional models on one set of layers
(ports models/text_objseg_model.py).

`TextObjSegNet` owns the layers: VGG-16, the word embedding, the LSTM encoder, the classifier
(`mlp_l1`, `mlp_l2`) and the `upsample32s` deconvolution. `region_model()`, `lowres_model()` and
`highres_model()` wire functional graphs from them, so weights loaded once serve all three, and
the low-res and high-res models share every variable but `upsample32s`. The encoder and head
models split the same graph for batched evaluation and serving (image features once, many
queries); composing them gives the full model's scores.
"""

import keras
import numpy as np
import tensorflow as tf

from text_objseg_tf2.models import processing_tools, vgg_net
from text_objseg_tf2.models.cnn import Conv, Deconv
from text_objseg_tf2.models.lstm_net import BasicLSTMEncoder, WordEmbedding

# Layer names of the TF1 graph, by scope.
LSTM_SCOPE = "lstm_lang/RNN/MultiRNNCell/Cell0/BasicLSTMCell/Linear"
MODEL_KINDS = ("det", "seg_lowres", "seg_highres")


def l2_normalize(x, axis):
    """`tf.nn.l2_normalize` with its epsilon 1e-12: `x * rsqrt(max(sum(x^2), 1e-12))`."""
    return tf.nn.l2_normalize(x, axis=axis, epsilon=1e-12)


class SegFeatureFusion(keras.layers.Layer):
    """Concatenates the L2-normalised text vector (tiled over the map), the L2-normalised
    descriptor of each cell and the cell's 8 spatial channels: `[N, h, w, D_text + D_vis + 8]`.
    """

    def call(self, feat_lang, feat_vis):
        featmap_h, featmap_w = feat_vis.shape[1], feat_vis.shape[2]
        if featmap_h is None or featmap_w is None:
            raise ValueError("the feature map size must be static")
        batch = tf.shape(feat_vis)[0]
        lang = l2_normalize(feat_lang, 1)[:, tf.newaxis, tf.newaxis, :]
        lang = tf.tile(lang, [1, featmap_h, featmap_w, 1])
        spatial = tf.constant(processing_tools.generate_spatial_batch(1, featmap_h, featmap_w),
                              dtype=feat_vis.dtype)
        spatial = tf.tile(spatial, tf.stack([batch, 1, 1, 1]))
        return tf.concat([lang, l2_normalize(feat_vis, 3), spatial], axis=3)



class RegionFeatureFusion(keras.layers.Layer):
    """`[l2norm(text), l2norm(fc8 of the crop), spatial features of the box]`, `[N, D+1000+8]`."""

    def call(self, feat_lang, feat_vis, spatial):
        return tf.concat([l2_normalize(feat_lang, 1), l2_normalize(feat_vis, 1),
                          tf.cast(spatial, feat_vis.dtype)], axis=1)



class InputCheckedModel(keras.Model):
    """A functional model that refuses inputs of the wrong rank or dtype with a clear error.

    Keras would otherwise cast silently (a uint8 image would run un-normalised and give wrong
    scores without complaint).
    """

    def __init__(self, *args, input_kinds=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._input_kinds = dict(input_kinds or {})

    def __call__(self, inputs, *args, **kwargs):
        self._check_inputs(inputs)
        # Keras refuses a mix of numpy arrays and tensors; convert, keeping each dtype.
        inputs = tf.nest.map_structure(
            lambda x: x if isinstance(x, (tf.Tensor, tf.Variable, keras.KerasTensor))
            else tf.convert_to_tensor(x), inputs)
        return super().__call__(inputs, *args, **kwargs)

    def _check_inputs(self, inputs):
        if isinstance(inputs, dict):
            named = inputs
        else:
            flat = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
            if len(flat) != len(self.inputs):
                raise ValueError(f"{self.name} takes {len(self.inputs)} inputs "
                                 f"({', '.join(t.name for t in self.inputs)}), got {len(flat)}")
            named = {t.name: x for t, x in zip(self.inputs, flat, strict=True)}
        for spec in self.inputs:
            if spec.name not in named:
                raise ValueError(f"{self.name}: missing input '{spec.name}'")
            x = named[spec.name]
            if isinstance(x, keras.KerasTensor):
                continue
            dtype = getattr(x, "dtype", None)
            if dtype is None:
                x = np.asarray(x)
                dtype = x.dtype
            dtype = tf.as_dtype(dtype)
            rank = len(x.shape)
            if rank != len(spec.shape):
                raise ValueError(f"{self.name}: input '{spec.name}' must have rank "
                                 f"{len(spec.shape)} {tuple(spec.shape)}, got shape "
                                 f"{tuple(x.shape)}")
            for want, got in zip(spec.shape, x.shape, strict=True):
                if want is not None and got is not None and int(want) != int(got):
                    raise ValueError(f"{self.name}: input '{spec.name}' must have shape "
                                     f"{tuple(spec.shape)}, got {tuple(x.shape)}")
            kind = self._input_kinds.get(spec.name, "float")
            if kind == "int" and not dtype.is_integer:
                raise ValueError(f"{self.name}: input '{spec.name}' must hold integer word ids, "
                                 f"got dtype {dtype.name}")
            if kind == "float" and not dtype.is_floating:
                raise ValueError(
                    f"{self.name}: input '{spec.name}' must be floating point, got dtype "
                    f"{dtype.name}" + (" (images must be float32 minus vgg_net.channel_mean)"
                                       if dtype.is_integer else ""))


class TextObjSegNet:
    """One set of layers for the region, low-res and high-res models of the paper.

    Args:
      num_vocab, embed_dim, lstm_dim, mlp_hidden_dims: the text and classifier sizes
        (paper: 8803, 1000, 1000, 500).
      vgg_dropout, mlp_dropout: dropout 0.5 after fc6/fc7 and after mlp_l1 (training only).
    """

    def __init__(self, num_vocab=8803, embed_dim=1000, lstm_dim=1000, mlp_hidden_dims=500,
                 vgg_dropout=False, mlp_dropout=False):
        self.num_vocab = int(num_vocab)
        self.embed_dim = int(embed_dim)
        self.lstm_dim = int(lstm_dim)
        self.mlp_hidden_dims = int(mlp_hidden_dims)
        self.vgg_dropout = bool(vgg_dropout)
        self.mlp_dropout = bool(mlp_dropout)
        self.vgg = vgg_net.VGG16Layers(vgg_dropout=vgg_dropout)
        self.embedding = WordEmbedding(num_vocab, embed_dim, name="word_embedding")
        self.lstm = BasicLSTMEncoder(embed_dim, lstm_dim, forget_bias=1.0, name="lstm_lang")
        feat_dim = self.lstm_dim + 1000 + 8
        # The release initialised the classifier with N(0, 0.05) and N(0, 0.1).
        self.mlp_l1 = Conv(1, mlp_hidden_dims, feat_dim, relu=True, name="mlp_l1",
                           kernel_initializer=keras.initializers.RandomNormal(0.0, 0.05))
        self.mlp_l2 = Conv(1, 1, mlp_hidden_dims, relu=False, name="mlp_l2",
                           kernel_initializer=keras.initializers.RandomNormal(0.0, 0.1))
        self.mlp_drop = keras.layers.Dropout(0.5, name="mlp_dropout") if mlp_dropout else None
        self.upsample32s = Deconv(64, 32, output_dim=1, input_dim=1, name="upsample32s")
        self.seg_fusion = SegFeatureFusion(name="seg_feature_fusion")
        self.region_fusion = RegionFeatureFusion(name="region_feature_fusion")

    def config(self):
        """The constructor's arguments."""
        return dict(num_vocab=self.num_vocab, embed_dim=self.embed_dim, lstm_dim=self.lstm_dim,
                    mlp_hidden_dims=self.mlp_hidden_dims, vgg_dropout=self.vgg_dropout,
                    mlp_dropout=self.mlp_dropout)

    # ---- pieces of the graph (symbolic or eager) ----

    def encode_text(self, text_seq_batch):
        """`lstm_net`: `[T, N]` ids -> last hidden state `[N, lstm_dim]`."""
        return self.lstm(self.embedding(text_seq_batch))

    def classify(self, feat_all, as_fc=False):
        x = self.mlp_l1(feat_all, as_fc=as_fc)
        if self.mlp_drop is not None:
            x = self.mlp_drop(x)
        return self.mlp_l2(x, as_fc=as_fc)

    # ---- inputs ----

    @staticmethod
    def _text_input(T):
        # Time-major [T, N] ids as the original (batch on the second axis).
        return keras.Input(batch_shape=(int(T), None), dtype="int32", name="text_seq_batch")

    @staticmethod
    def _check_size(input_H, input_W):
        for name, v in (("input_H", input_H), ("input_W", input_W)):
            if int(v) <= 0 or int(v) % 32:
                raise ValueError(f"{name} must be a positive multiple of 32, got {v}")
        return int(input_H), int(input_W)

    @staticmethod
    def _check_T(T):
        if int(T) <= 0:
            raise ValueError(f"T must be positive, got {T}")
        return int(T)

    def _model(self, inputs, outputs, name):
        flat = inputs if isinstance(inputs, list) else [inputs]
        kinds = {t.name: ("int" if t.name == "text_seq_batch" else "float") for t in flat}
        return InputCheckedModel(inputs=inputs, outputs=outputs, name=name, input_kinds=kinds)

    # ---- the three models of the paper ----

    def region_model(self, T=20):
        """`text_objseg_region`: (ids [T,N], crops [N,224,224,3], spatial [N,8]) -> [N, 1]."""
        T = self._check_T(T)
        text = self._text_input(T)
        crops = keras.Input(shape=(224, 224, 3), dtype="float32", name="imcrop_batch")
        spatial = keras.Input(shape=(8,), dtype="float32", name="spatial_batch")
        feat_all = self.region_fusion(self.encode_text(text), self.vgg.vgg_fc8(crops), spatial)
        scores = self.classify(feat_all, as_fc=True)
        return self._model([text, crops, spatial], scores, "text_objseg_region")

    def lowres_model(self, input_H=512, input_W=512, T=20):
        """`text_objseg_full_conv`: (ids [T,N], image [N,H,W,3]) -> scores [N, H/32, W/32, 1]."""
        input_H, input_W = self._check_size(input_H, input_W)
        T = self._check_T(T)
        text = self._text_input(T)
        image = keras.Input(shape=(input_H, input_W, 3), dtype="float32", name="imcrop_batch")
        feat_all = self.seg_fusion(self.encode_text(text), self.vgg.vgg_fc8_full_conv(image))
        return self._model([text, image], self.classify(feat_all), "text_objseg_full_conv")

    def highres_model(self, input_H=512, input_W=512, T=20):
        """`text_objseg_upsample32s`: (ids [T,N], image [N,H,W,3]) -> scores [N, H, W, 1]."""
        input_H, input_W = self._check_size(input_H, input_W)
        T = self._check_T(T)
        text = self._text_input(T)
        image = keras.Input(shape=(input_H, input_W, 3), dtype="float32", name="imcrop_batch")
        feat_all = self.seg_fusion(self.encode_text(text), self.vgg.vgg_fc8_full_conv(image))
        scores = self.upsample32s(self.classify(feat_all))
        return self._model([text, image], scores, "text_objseg_upsample32s")

    def model(self, kind, input_H=512, input_W=512, T=20):
        """The model of `kind` in MODEL_KINDS."""
        if kind == "det":
            return self.region_model(T)
        if kind == "seg_lowres":
            return self.lowres_model(input_H, input_W, T)
        if kind == "seg_highres":
            return self.highres_model(input_H, input_W, T)
        raise ValueError(f"unknown model kind {kind!r}; expected one of {MODEL_KINDS}")

    def features_model(self, kind, input_H=512, input_W=512, T=20):
        """`model(kind)` fed with VGG fc8 features instead of images: (ids `[T, N]`, fc8
        `[N, H/32, W/32, 1000]`, or `[N, 1000]` and spatial `[N, 8]` for det) -> the same
        scores. With the VGG frozen this is the whole model on cached features (training's
        `cache_features`)."""
        T = self._check_T(T)
        text = self._text_input(T)
        lang = self.encode_text(text)
        if kind == "det":
            vis = keras.Input(shape=(1000,), dtype="float32", name="feat_vis")
            spatial = keras.Input(shape=(8,), dtype="float32", name="spatial_batch")
            scores = self.classify(self.region_fusion(lang, vis, spatial), as_fc=True)
            return self._model([text, vis, spatial], scores, "region_on_features")
        if kind not in MODEL_KINDS:
            raise ValueError(f"unknown model kind {kind!r}; expected one of {MODEL_KINDS}")
        input_H, input_W = self._check_size(input_H, input_W)
        vis = keras.Input(shape=(input_H // 32, input_W // 32, 1000), dtype="float32",
                          name="feat_vis")
        scores = self.classify(self.seg_fusion(lang, vis))
        if kind == "seg_highres":
            scores = self.upsample32s(scores)
        return self._model([text, vis], scores, f"{kind}_on_features")

    # ---- encoder / head split for batched evaluation and serving ----

    def text_encoder_model(self, T=20):
        """ids `[T, N]` -> sentence vector `[N, lstm_dim]`."""
        text = self._text_input(self._check_T(T))
        return self._model(text, self.encode_text(text), "text_encoder")

    def image_encoder_model(self, input_H=512, input_W=512):
        """image `[N, H, W, 3]` (mean-subtracted) -> fc8 map `[N, H/32, W/32, 1000]`."""
        input_H, input_W = self._check_size(input_H, input_W)
        image = keras.Input(shape=(input_H, input_W, 3), dtype="float32", name="imcrop_batch")
        return self._model(image, self.vgg.vgg_fc8_full_conv(image), "image_encoder")

    def crop_encoder_model(self):
        """crops `[N, 224, 224, 3]` (mean-subtracted) -> fc8 `[N, 1000]`."""
        crops = keras.Input(shape=(224, 224, 3), dtype="float32", name="imcrop_batch")
        return self._model(crops, self.vgg.vgg_fc8(crops), "crop_encoder")

    def seg_head_model(self, featmap_H=16, featmap_W=16, upsample=True):
        """(sentence vector `[N, lstm_dim]`, fc8 map `[N, h, w, 1000]`) -> scores."""
        lang = keras.Input(shape=(self.lstm_dim,), dtype="float32", name="feat_lang")
        vis = keras.Input(shape=(int(featmap_H), int(featmap_W), 1000), dtype="float32",
                          name="feat_vis")
        scores = self.classify(self.seg_fusion(lang, vis))
        if upsample:
            scores = self.upsample32s(scores)
        return self._model([lang, vis], scores, "seg_head")

    def region_head_model(self):
        """(sentence vector `[N, D]`, fc8 `[N, 1000]`, spatial `[N, 8]`) -> scores `[N, 1]`."""
        lang = keras.Input(shape=(self.lstm_dim,), dtype="float32", name="feat_lang")
        vis = keras.Input(shape=(1000,), dtype="float32", name="feat_vis")
        spatial = keras.Input(shape=(8,), dtype="float32", name="spatial_batch")
        scores = self.classify(self.region_fusion(lang, vis, spatial), as_fc=True)
        return self._model([lang, vis, spatial], scores, "region_head")

    # ---- variables under their TF1 names ----

    def tf1_variables(self, kind="seg_highres"):
        """`{TF1 variable name: keras Variable}` of the model `kind`, release spellings.

        fc6..fc8 and mlp_l1/mlp_l2 are held in conv layout; a det checkpoint stores them as
        matrices (`fc_layout_shape`), a plain reshape.
        """
        if kind not in MODEL_KINDS:
            raise ValueError(f"unknown model kind {kind!r}; expected one of {MODEL_KINDS}")
        names = {}
        for name, layer in self.vgg.layers.items():
            names[f"vgg_local/{name}/weights"] = layer.kernel
            names[f"vgg_local/{name}/biases"] = layer.bias
        names["word_embedding/embedding"] = self.embedding.embedding
        names[f"{LSTM_SCOPE}/Matrix"] = self.lstm.matrix
        names[f"{LSTM_SCOPE}/Bias"] = self.lstm.bias
        for layer in (self.mlp_l1, self.mlp_l2):
            names[f"classifier/{layer.name}/weights"] = layer.kernel
            names[f"classifier/{layer.name}/biases"] = layer.bias
        if kind == "seg_highres":
            names["classifier/upsample32s/weights"] = self.upsample32s.kernel
        return names


# Variables a det (region) checkpoint stores as fc matrices rather than conv kernels.
FC_LAYOUT_VARIABLES = ("vgg_local/fc6/weights", "vgg_local/fc7/weights", "vgg_local/fc8/weights",
                       "classifier/mlp_l1/weights", "classifier/mlp_l2/weights")


def fc_layout_shape(conv_shape):
    """`[kh, kw, in, out]` -> the `[kh*kw*in, out]` matrix of the original's `fc_layer`."""
    kh, kw, cin, cout = conv_shape
    return (kh * kw * cin, cout)
