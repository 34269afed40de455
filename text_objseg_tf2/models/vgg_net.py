"""VGG-16 in the release's layout (ports models/vgg_net.py).

Input is RGB minus `channel_mean`; conv1_1..conv5_3 with ReLU and 2x2/2 SAME max pools.
`fc6` is a 7x7 kernel, `fc7` / `fc8` 1x1 kernels: run as convolutions (SAME) they give the
fully convolutional descriptor map of the segmentation models, run with `as_fc=True` they are
the dense layers of the region model on a 224x224 crop (pool5 is 7x7 there).
"""

import keras
import numpy as np

from text_objseg_tf2.models.cnn import Conv, MaxPool

# RGB channel mean subtracted from images (Caffe VGG-16's mean, in RGB order).
channel_mean = np.array([123.68, 116.779, 103.939], dtype=np.float32)

# (name, kernel_size, input_dim, output_dim) of every layer with variables, in order.
VGG_CONV_LAYERS = (
    ("conv1_1", 3, 3, 64), ("conv1_2", 3, 64, 64),
    ("conv2_1", 3, 64, 128), ("conv2_2", 3, 128, 128),
    ("conv3_1", 3, 128, 256), ("conv3_2", 3, 256, 256), ("conv3_3", 3, 256, 256),
    ("conv4_1", 3, 256, 512), ("conv4_2", 3, 512, 512), ("conv4_3", 3, 512, 512),
    ("conv5_1", 3, 512, 512), ("conv5_2", 3, 512, 512), ("conv5_3", 3, 512, 512),
)
VGG_FC_LAYERS = (("fc6", 7, 512, 4096), ("fc7", 1, 4096, 4096), ("fc8", 1, 4096, 1000))
# The pool after the last conv of each block.
POOL_AFTER = ("conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3")


class VGG16Layers:
    """The VGG-16 layers of one model, shared by every Keras graph built from it.

    `vgg_dropout` adds dropout 0.5 after fc6 and fc7 (active only with `training=True`).
    """

    def __init__(self, vgg_dropout=False):
        self.convs = [Conv(k, out, din, relu=True, name=name)
                      for name, k, din, out in VGG_CONV_LAYERS]
        self.pools = {name: MaxPool(name="pool" + name[4]) for name in POOL_AFTER}
        self.fc6 = Conv(7, 4096, 512, relu=True, name="fc6")
        self.fc7 = Conv(1, 4096, 4096, relu=True, name="fc7")
        self.fc8 = Conv(1, 1000, 4096, relu=False, name="fc8")
        self.vgg_dropout = bool(vgg_dropout)
        self.drop6 = keras.layers.Dropout(0.5, name="fc6_dropout") if vgg_dropout else None
        self.drop7 = keras.layers.Dropout(0.5, name="fc7_dropout") if vgg_dropout else None

    @property
    def layers(self):
        """Every layer with variables, keyed by the original's layer name."""
        named = {layer.name: layer for layer in self.convs}
        named.update(fc6=self.fc6, fc7=self.fc7, fc8=self.fc8)
        return named

    def pool5(self, x):
        """conv1_1 .. pool5."""
        for layer in self.convs:
            x = layer(x)
            if layer.name in self.pools:
                x = self.pools[layer.name](x)
        return x

    def vgg_fc8_full_conv(self, x):
        """`vgg_fc8_full_conv`: the `[N, H/32, W/32, 1000]` descriptor map (no ReLU on fc8)."""
        x = self.fc6(self.pool5(x))
        if self.drop6 is not None:
            x = self.drop6(x)
        x = self.fc7(x)
        if self.drop7 is not None:
            x = self.drop7(x)
        return self.fc8(x)

    def vgg_fc8(self, x):
        """`vgg_fc8`: the `[N, 1000]` descriptor of 224x224 crops (fc layers as matmuls)."""
        x = self.fc6(self.pool5(x), as_fc=True)
        if self.drop6 is not None:
            x = self.drop6(x)
        x = self.fc7(x, as_fc=True)
        if self.drop7 is not None:
            x = self.drop7(x)
        return self.fc8(x, as_fc=True)
