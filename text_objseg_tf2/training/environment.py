"""Process settings that must be made before TensorFlow is imported, and the check for the
TensorFlow CPU bug they avoid.

TensorFlow 2.21's oneDNN CPU kernels abort the process ("Check failed: dtype() ==
expected_dtype (1 vs. 4) uint8 expected, got float", in MklConvOp) on the stride-32 convolution
that back-propagates through the high-res model's `upsample32s` deconvolution once the batch
holds 2 or more images larger than 128x128 (seen at 192x192, not on every run, and at every
size from 256x256). The Eigen kernels (TF_ENABLE_ONEDNN_OPTS=0) are correct; GPUs are not
affected.
"""

import os

ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"


def prepare(stage):
    """Call before importing TensorFlow: turns oneDNN off for the high-res stage (unless the
    environment already says otherwise); it only changes CPU kernels."""
    if stage == "seg_highres":
        os.environ.setdefault(ONEDNN_ENV, "0")


def onednn_enabled():
    """Whether TensorFlow's oneDNN CPU kernels are on in this process."""
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):  # private API; fall back on the documented switch
        return os.environ.get(ONEDNN_ENV, "1") != "0"


def check_deconv_backprop(kind, input_H, input_W, per_replica_batch, on_gpu):
    """Raises RuntimeError where the oneDNN bug above would abort the process."""
    if (kind == "seg_highres" and not on_gpu and per_replica_batch >= 2
            and max(input_H, input_W) > 128 and onednn_enabled()):
        raise RuntimeError(
            "TensorFlow's oneDNN CPU kernels abort on the gradient of the high-res model's "
            "upsampling at this size (a TensorFlow bug); set TF_ENABLE_ONEDNN_OPTS=0 before "
            "TensorFlow is imported (the training scripts do), or train on a GPU")
