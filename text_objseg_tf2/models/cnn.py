"""Keras layers holding variables in the TF1 release's layout (ports util/cnn.py).

Each layer stores its kernel exactly as the TF1 checkpoint does (`weights` [kh, kw, in, out],
`biases` [out]), so the checkpoint table in `text_objseg_tf2.checkpoints` is a list of names.
The fully connected layers of VGG and the classifier are kept in conv layout and run either as
convolutions (segmentation models) or, with `as_fc=True`, as the original's flatten + matmul
(region model) — one set of variables for all three models, as the original's
`init_referit_seg_lowres_from_det.py` reshape implied.
"""

import keras
import tensorflow as tf


class Conv(keras.layers.Layer):
    """`conv_layer` / `conv_relu_layer` / `fc_layer` of the original, on one set of variables.

    Args:
      kernel_size: spatial size of the square kernel.
      output_dim: number of output channels.
      relu: apply ReLU after the bias, as the original's `*_relu_layer`.
      input_dim: number of input channels (the layer builds at construction).
      kernel_initializer: defaults to He-normal (the original's N(0, 1) default was always
        overwritten by pretrained weights or an explicit initialisation).
    """

    def __init__(self, kernel_size, output_dim, input_dim, relu=False, bias_term=True,
                 kernel_initializer="he_normal", **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = int(kernel_size)
        self.output_dim = int(output_dim)
        self.input_dim = int(input_dim)
        self.relu = bool(relu)
        self.bias_term = bool(bias_term)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel = self.add_weight(
            name="weights",
            shape=(self.kernel_size, self.kernel_size, self.input_dim, self.output_dim),
            initializer=self.kernel_initializer)
        self.bias = None
        if self.bias_term:
            self.bias = self.add_weight(name="biases", shape=(self.output_dim,),
                                        initializer="zeros")
        self.built = True

    def build(self, input_shape):
        pass

    def call(self, x, as_fc=False):
        if as_fc:
            # fc_layer: flatten [N, H, W, C] row-major and multiply by the kernel reshaped to
            # [H*W*C, out] (the det checkpoints store exactly that matrix).
            flat = tf.reshape(x, [-1, self.kernel_size * self.kernel_size * self.input_dim])
            w = tf.reshape(tf.cast(self.kernel.value, x.dtype),
                           [self.kernel_size * self.kernel_size * self.input_dim,
                            self.output_dim])
            y = tf.matmul(flat, w)
        else:
            y = tf.nn.conv2d(x, tf.cast(self.kernel.value, x.dtype), strides=1, padding="SAME")
        if self.bias is not None:
            y = tf.nn.bias_add(y, tf.cast(self.bias.value, x.dtype))
        if self.relu:
            y = tf.nn.relu(y)
        return y

    def get_config(self):
        config = super().get_config()
        config.update(kernel_size=self.kernel_size, output_dim=self.output_dim,
                      input_dim=self.input_dim, relu=self.relu, bias_term=self.bias_term,
                      kernel_initializer=keras.initializers.serialize(self.kernel_initializer))
        return config


class MaxPool(keras.layers.Layer):
    """2x2 stride-2 max pooling with SAME padding (`pooling_layer`)."""

    def call(self, x):
        return tf.nn.max_pool2d(x, ksize=2, strides=2, padding="SAME")



class BilinearFilterInitializer(keras.initializers.Initializer):
    """Initialises a `[2s, 2s, 1, 1]` kernel with the release's bilinear filter."""

    def __call__(self, shape, dtype=None):
        from text_objseg_tf2.models.processing_tools import generate_bilinear_filter

        k = shape[0]
        if shape[0] != shape[1] or k % 2 or tuple(shape[2:]) != (1, 1):
            raise ValueError(f"bilinear filter needs a [2s, 2s, 1, 1] shape, got {shape}")
        return tf.constant(generate_bilinear_filter(k // 2), dtype=dtype or "float32")


class Deconv(keras.layers.Layer):
    """`deconv_layer` of the original without bias: `conv2d_transpose`, SAME padding.

    Output is `[N, H*stride, W*stride, output_dim]`; with SAME padding TF puts the impulse of
    input cell i at output pixel `stride*i + stride/2` (the release's alignment).
    """

    def __init__(self, kernel_size, stride, output_dim=1, input_dim=1, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = int(kernel_size)
        self.stride = int(stride)
        self.output_dim = int(output_dim)
        self.input_dim = int(input_dim)
        # conv2d_transpose filters are [kh, kw, out_channels, in_channels].
        self.kernel = self.add_weight(
            name="weights",
            shape=(self.kernel_size, self.kernel_size, self.output_dim, self.input_dim),
            initializer=BilinearFilterInitializer())
        self.built = True

    def build(self, input_shape):
        pass

    def call(self, x):
        shape = tf.shape(x)
        output_shape = tf.stack([shape[0], shape[1] * self.stride, shape[2] * self.stride,
                                 self.output_dim])
        kernel = tf.cast(self.kernel.value, x.dtype)
        y = tf.nn.conv2d_transpose(x, kernel, output_shape=output_shape, strides=self.stride,
                                   padding="SAME")
        n, h, w, _ = x.shape
        return tf.ensure_shape(y, [n, None if h is None else h * self.stride,
                                   None if w is None else w * self.stride, self.output_dim])

    def get_config(self):
        config = super().get_config()
        config.update(kernel_size=self.kernel_size, stride=self.stride,
                      output_dim=self.output_dim, input_dim=self.input_dim)
        return config

