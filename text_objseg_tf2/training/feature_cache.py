"""VGG features computed once per batch of images and reused (training's `cache_features`).

With `fix_convnet` no `vgg_local/*` variable is trained, so the fc8 features of a batch's
images are a pure function of those images and of the frozen VGG weights. Feeding cached
features to `TextObjSegNet.features_model` then gives the scores and gradients of the whole
model, while a step after the first epoch costs only the LSTM and the classifier. Entries are
keyed by a digest of the VGG weights and of the image bytes, so one cache can serve several
stages and runs that share the frozen VGG (the pipeline's main run and its text-blind control).
"""

import hashlib

import numpy as np
from absl import logging


def vgg_fingerprint(net):
    """Digest of every `vgg_local` weight of `net` (names, shapes and bytes)."""
    digest = hashlib.blake2b(digest_size=16)
    for name, layer in sorted(net.vgg.layers.items()):
        for variable in layer.weights:
            value = np.ascontiguousarray(variable.numpy())
            digest.update(f"{name}/{variable.name}:{value.dtype}:{value.shape}".encode())
            digest.update(value.data)
    return digest.hexdigest()


class FeatureCache:
    """In-memory store of feature arrays up to `max_bytes` (later entries are not kept)."""

    def __init__(self, max_bytes):
        self.max_bytes = int(max_bytes)
        self._entries = {}
        self.nbytes = 0
        self.hits = 0
        self.misses = 0
        self._full_logged = False

    @staticmethod
    def key(fingerprint, images):
        """Key of `images` (a numpy batch) under the VGG weights `fingerprint`."""
        images = np.ascontiguousarray(images)
        digest = hashlib.blake2b(digest_size=16)
        digest.update(f"{fingerprint}:{images.dtype}:{images.shape}".encode())
        digest.update(images.data)
        return digest.hexdigest()

    def get_or_compute(self, key, compute):
        """The cached array of `key`, or `compute()` (kept while the cache has room)."""
        value = self._entries.get(key)
        if value is not None:
            self.hits += 1
            return value
        self.misses += 1
        value = np.asarray(compute())
        if self.nbytes + value.nbytes <= self.max_bytes:
            self._entries[key] = value
            self.nbytes += value.nbytes
        elif not self._full_logged:
            self._full_logged = True
            logging.warning("feature cache full (%.0f MB): later batches are recomputed each "
                            "time (raise --feature_cache_mb)", self.nbytes / 2**20)
        return value

    def __len__(self):
        return len(self._entries)
