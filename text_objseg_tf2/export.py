"""SavedModel export of the high-res segmenter: raw image and query strings in, masks out.

The exported model needs nothing but TensorFlow: the preprocessing of the release's test loop
(`exp_test_referit_seg.py`) runs inside the graph, reproducing the numpy path
(`util.text_processing`, `util.im_processing`, `predict`) value for value:

* tokenisation (`preprocess_sentence`) with tf.strings on code points and a vocabulary
  `StaticHashTable` stored in the SavedModel;
* `resize_and_pad` with the 2016 scikit-image bilinear warp (zero border, no anti-aliasing,
  clip to [0, 1]) written out with gathers in float64, then `img_as_ubyte` and the channel mean;
* image features computed once per call, the text encoder and the classifier head on every
  query, the threshold `>= score_thresh` and `resize_and_crop` back to the image's size.

Signatures (see `SIGNATURES`):

* `serving_default`: `image` uint8 [H, W, 3] or [H, W, 1] (any size), `query` string [Q]
  -> `mask` uint8 0/1 [Q, H, W], `scores` float32 [Q, input_H, input_W].
* `serving_image_bytes`: the same with `image_bytes` (an encoded JPEG/PNG/GIF/BMP, scalar
  string; alpha dropped) in place of `image` (for TF Serving's REST API, which carries strings
  as base64).
* `scores_from_preprocessed`: `text_seq_batch` int32 [T, N], `imcrop_batch` float32
  [N, input_H, input_W, 3] (minus the channel mean) -> `scores` float32 [N, input_H, input_W, 1],
  the Keras high-res model's raw scores.
* `tokenize`: `query` string [Q] -> `text_seq_batch` int32 [T, Q].

Bad input (no query, a blank query, a query with no words, invalid UTF-8, an image that is empty,
has 2 or 4+ channels or is too elongated to fit) fails with an InvalidArgumentError whose
message says what is wrong; a wrong dtype or rank is refused by the signature itself.
"""

import contextlib
import os
import shutil
import types
import uuid

import numpy as np
import tensorflow as tf

from text_objseg_tf2.models import vgg_net
from text_objseg_tf2.util.text_processing import PAD_IDENTIFIER, UNK_IDENTIFIER

SERVING_DEFAULT = "serving_default"
SERVING_IMAGE_BYTES = "serving_image_bytes"
SCORES_FROM_PREPROCESSED = "scores_from_preprocessed"
TOKENIZE = "tokenize"
SIGNATURES = (SERVING_DEFAULT, SERVING_IMAGE_BYTES, SCORES_FROM_PREPROCESSED, TOKENIZE)
JIT_CHOICES = ("auto", "true", "false")

# `\w` of the release's Python 2 `re` (no re.UNICODE): [0-9A-Za-z_]; every other code point,
# non-ASCII ones included, is a separator character.
_WORD_RANGES = ((ord("0"), ord("9")), (ord("A"), ord("Z")), (ord("a"), ord("z")),
                (ord("_"), ord("_")))
# The only non-ASCII characters that Python 2's unicode.lower() (one-to-one mapping, as
# util.text_processing._py2_lower) turns into ASCII: U+0130 -> "i", KELVIN SIGN -> "k".
# Every other non-ASCII character lower-cases to non-ASCII, which no ASCII vocabulary holds.
_NON_ASCII_TO_ASCII_LOWER = (("\u0130", "i"), ("\u212a", "k"))


def python_whitespace_codepoints():
    """Code points for which `str.isspace()` holds: what Python's `str.strip()` removes."""
    return [c for c in range(0x110000) if chr(c).isspace()]


def resolve_jit_compile(jit_compile):
    """`--jit_compile` value -> bool: compile the image encoder (VGG-16 to fc8) with XLA.

    "auto" is True: measured with benchmarks/bench_serving.py on CPU, XLA runs fc6 (a 7x7 conv
    on a 16x16 map) at ~4x the speed of TensorFlow's default oneDNN kernel and the conv stack
    ~1.3x faster; with oneDNN off it is on a par with Eigen. On GPU, XLA is the usual choice.
    """
    if isinstance(jit_compile, bool):
        return jit_compile
    value = str(jit_compile).lower()
    if value not in JIT_CHOICES:
        raise ValueError(f"jit_compile must be one of {JIT_CHOICES}, got {jit_compile!r}")
    return value != "false"


def _div(x, y):
    """x / y, correctly rounded. DivNoNan (equal to Div for y != 0) because grappler rewrites
    a Div by a constant into a multiplication by its rounded reciprocal."""
    return tf.math.divide_no_nan(tf.cast(x, tf.float64), tf.cast(y, tf.float64))


def _check(condition, message, *data):
    """An assertion raising InvalidArgumentError("...message...") when `condition` is false."""
    return tf.debugging.Assert(condition, [message, *data], summarize=16)


# ---------------------------------------------------------------------------------------------
# Tokenisation (util.text_processing.preprocess_sentence in the graph)
# ---------------------------------------------------------------------------------------------


def vocabulary_table(vocab_dict):
    """A `StaticHashTable` word -> id with `<unk>` as default (the vocabulary dict's ids)."""
    for word in (PAD_IDENTIFIER, UNK_IDENTIFIER):
        if word not in vocab_dict:
            raise ValueError(f"vocabulary lacks {word}")
    words = list(vocab_dict)
    ids = np.array([vocab_dict[w] for w in words], dtype=np.int32)
    init = tf.lookup.KeyValueTensorInitializer(
        tf.constant(words, tf.string), tf.constant(ids, tf.int32))
    return tf.lookup.StaticHashTable(init, default_value=int(vocab_dict[UNK_IDENTIFIER]))


def _is_word_char(cps):
    is_word = tf.zeros_like(cps, dtype=tf.bool)
    for lo, hi in _WORD_RANGES:
        is_word |= (cps >= lo) & (cps <= hi)
    return is_word


def _ascii_lower(pieces):
    """Python 2's `unicode.lower()` as far as an ASCII vocabulary can tell (see module notes)."""
    pieces = tf.strings.lower(pieces)  # no encoding: A-Z only, other bytes untouched
    for char, lower in _NON_ASCII_TO_ASCII_LOWER:
        pieces = tf.strings.regex_replace(pieces, char, lower)
    return pieces


def tokenize_graph(query, table, T, pad_id, whitespace_codepoints):
    """`preprocess_sentence` for a batch of queries: string [Q] -> int32 ids [T, Q] (time-major).

    Per query: `strip()`, split on `(\\W+)` (ASCII `\\w`) keeping the separator runs as
    pieces, drop whitespace-only pieces, lower-case, drop one final ".", look words up
    (unknown -> <unk>), keep the first T, left-pad with <pad>.
    """
    query = tf.convert_to_tensor(query, tf.string)
    num_q = tf.size(query)
    checks = [
        _check(tf.equal(tf.rank(query), 1), "query must be a 1-D batch of strings"),
        _check(num_q > 0, "query must hold at least one string"),
    ]
    with tf.control_dependencies(checks):
        query = tf.identity(query)
    utf8_ok = tf.equal(
        tf.strings.unicode_transcode(query, "UTF-8", "UTF-8", errors="replace",
                                     replacement_char=0xFFFD), query)
    # The message shows the bad queries with U+FFFD in place of the invalid bytes.
    with tf.control_dependencies([_check(
            tf.reduce_all(utf8_ok), "query is not valid UTF-8:",
            tf.strings.unicode_transcode(tf.boolean_mask(query, ~utf8_ok), "UTF-8", "UTF-8",
                                         errors="replace", replacement_char=0xFFFD))]):
        query = tf.identity(query)

    cps = tf.strings.unicode_decode(query, "UTF-8")            # ragged [Q, None] int32
    chars = tf.strings.unicode_split(query, "UTF-8")           # same ragged shape, strings
    flat = cps.flat_values
    row = tf.cast(cps.value_rowids(), tf.int32)
    pos = tf.range(tf.size(flat), dtype=tf.int32) - tf.gather(
        tf.cast(cps.row_starts(), tf.int32), row)
    ws = tf.constant(whitespace_codepoints, tf.int32)
    is_ws = tf.reduce_any(tf.equal(flat[:, tf.newaxis], ws[tf.newaxis, :]), axis=1)
    is_word = _is_word_char(flat)

    # str.strip(): keep the characters between the first and last non-whitespace ones.
    big = tf.int32.max
    first = tf.gather(tf.math.unsorted_segment_min(tf.where(is_ws, big, pos), row, num_q), row)
    last = tf.gather(tf.math.unsorted_segment_max(tf.where(is_ws, -1, pos), row, num_q), row)
    keep = (pos >= first) & (pos <= last)
    # re.split(r'(\W+)'): a new piece starts where word / non-word changes.
    prev_word = tf.concat([[False], is_word], axis=0)[:-1]
    starts = keep & (tf.equal(pos, first) | tf.not_equal(is_word, prev_word))
    kept = tf.where(keep)[:, 0]
    piece_of_char = tf.gather(tf.cumsum(tf.cast(starts, tf.int32)) - 1, kept)
    num_pieces = tf.reduce_sum(tf.cast(starts, tf.int32))
    pieces = tf.strings.unsorted_segment_join(
        tf.gather(chars.flat_values, kept), piece_of_char, num_pieces)
    piece_row = tf.boolean_mask(row, starts)
    # `if len(w.strip()) > 0`: drop whitespace-only pieces.
    blank = tf.math.unsorted_segment_min(
        tf.cast(tf.gather(is_ws, kept), tf.int32), piece_of_char, num_pieces) > 0
    pieces = _ascii_lower(tf.boolean_mask(pieces, ~blank))
    piece_row = tf.boolean_mask(piece_row, ~blank)

    counts = tf.math.bincount(piece_row, minlength=num_q, maxlength=num_q, dtype=tf.int32)
    with tf.control_dependencies([_check(tf.reduce_all(counts > 0),
                                         "query is empty or blank; indices and texts:",
                                         tf.where(counts <= 0)[:, 0],
                                         tf.boolean_mask(query, counts <= 0))]):
        pieces = tf.identity(pieces)
    # Drop one final "." of each query.
    row_end = tf.cumsum(counts) - 1
    is_last = tf.equal(tf.range(tf.size(pieces), dtype=tf.int32), tf.gather(row_end, piece_row))
    keep_piece = ~(is_last & tf.equal(pieces, "."))
    pieces = tf.boolean_mask(pieces, keep_piece)
    piece_row = tf.boolean_mask(piece_row, keep_piece)
    counts = tf.math.bincount(piece_row, minlength=num_q, maxlength=num_q, dtype=tf.int32)
    with tf.control_dependencies([_check(tf.reduce_all(counts > 0),
                                         "query has no words; indices and texts:",
                                         tf.where(counts <= 0)[:, 0],
                                         tf.boolean_mask(query, counts <= 0))]):
        ids = table.lookup(pieces)

    # First T ids, left-padded with <pad>: id j of a row of length L goes to column T - L + j.
    ragged = tf.RaggedTensor.from_value_rowids(ids, tf.cast(piece_row, tf.int64),
                                               nrows=tf.cast(num_q, tf.int64))
    ragged = ragged[:, :T]
    lengths = tf.cast(ragged.row_lengths(), tf.int32)
    vrow = tf.cast(ragged.value_rowids(), tf.int32)
    col = (tf.range(tf.size(ragged.flat_values), dtype=tf.int32)
           - tf.gather(tf.cast(ragged.row_starts(), tf.int32), vrow)
           + T - tf.gather(lengths, vrow))
    dense = tf.tensor_scatter_nd_update(
        tf.fill(tf.stack([num_q, T]), tf.constant(pad_id, tf.int32)),
        tf.stack([vrow, col], axis=1), ragged.flat_values)
    return tf.transpose(dense)


# ---------------------------------------------------------------------------------------------
# Images (util.im_processing with the 2016 scikit-image resize, in the graph)
# ---------------------------------------------------------------------------------------------


def _axis_taps(n_in, n_out, start, count):
    """Bilinear taps of output positions start..start+count-1 along one axis.

    scikit-image's resize (scipy.ndimage.zoom, grid mode, order 1) samples output pixel i at
    `(i + 0.5) * (n_in / n_out) - 0.5` and weighs its two neighbours `w0 = 1 - t`,
    `w1 = 1 - w0` (scipy's spline weights; `w1` is not always exactly `t`). Indices point into
    the axis padded with one zero on each side (the constant-0 border).
    """
    zoom = _div(n_in, n_out)
    src = (tf.cast(tf.range(start, start + count), tf.float64) + 0.5) * zoom - 0.5
    i0 = tf.floor(src)
    w0 = 1.0 - (src - i0)
    w1 = 1.0 - w0
    return tf.cast(i0, tf.int32) + 1, w0, w1


def resize_2016_graph(im, out_h, out_w, row_start=0, num_rows=None, col_start=0,
                      num_cols=None):
    """`im_processing.resize_2016` of a float64 [H, W, C] image in [0, 1], bit-exact.

    Optionally computes only output rows row_start..row_start+num_rows-1 (and columns alike):
    the centre crop of `resize_and_crop` without resizing the parts it throws away.
    """
    num_rows = out_h if num_rows is None else num_rows
    num_cols = out_w if num_cols is None else num_cols
    shape = tf.shape(im)
    padded = tf.pad(im, [[1, 1], [1, 1], [0, 0]])
    i0, wy0, wy1 = _axis_taps(shape[0], out_h, row_start, num_rows)
    j0, wx0, wx1 = _axis_taps(shape[1], out_w, col_start, num_cols)
    r0 = tf.gather(padded, i0, axis=0)
    r1 = tf.gather(padded, i0 + 1, axis=0)
    y0, y1 = wy0[:, None, None], wy1[:, None, None]
    x0, x1 = wx0[None, :, None], wx1[None, :, None]
    # scipy accumulates (value * w_row) * w_col over the 2x2 neighbours in this order. The
    # products use MulNoNan (equal to Mul on finite values) because grappler's constant folding
    # would reassociate a Mul chain with constant weights into value * (w_row * w_col).
    def tap(rows, cols, wy, wx):
        return tf.math.multiply_no_nan(
            tf.math.multiply_no_nan(tf.gather(rows, cols, axis=1), wy), wx)

    out = (tap(r0, j0, y0, x0) + tap(r0, j0 + 1, y0, x1)
           + tap(r1, j0, y1, x0) + tap(r1, j0 + 1, y1, x1))
    return tf.clip_by_value(out, 0.0, 1.0)


def _resized_size(im_h, im_w, scale):
    # int(np.round(im_h * scale)) in float64; tf.round rounds halves to even like np.round.
    return (tf.cast(tf.round(tf.cast(im_h, tf.float64) * scale), tf.int32),
            tf.cast(tf.round(tf.cast(im_w, tf.float64) * scale), tf.int32))


def check_image_graph(image, input_H, input_W):
    """Asserts a non-empty [H, W, 1|3] image that resize_and_pad can fit; returns it."""
    shape = tf.shape(image)
    channels_ok = tf.equal(shape[2], 1) | tf.equal(shape[2], 3)
    with tf.control_dependencies([
            _check(tf.equal(tf.rank(image), 3), "image must be [height, width, channels]"),
            _check((shape[0] > 0) & (shape[1] > 0), "image is empty; shape:", shape),
            _check(channels_ok, "image must have 1 (grey) or 3 (RGB) channels; shape:", shape)]):
        image = tf.identity(image)
    im_h, im_w = shape[0], shape[1]
    scale = tf.minimum(_div(input_H, im_h), _div(input_W, im_w))
    resized_h, resized_w = _resized_size(im_h, im_w, scale)
    with tf.control_dependencies([_check(
            (resized_h > 0) & (resized_w > 0),
            f"image is too elongated to fit {input_H}x{input_W}; shape:", shape)]):
        return tf.identity(image)


def preprocess_image_graph(image, input_H, input_W):
    """uint8 [H, W, 1|3] -> float32 [input_H, input_W, 3]: the release's test-time input.

    `img_as_ubyte(resize_and_pad(im, input_H, input_W))` (grey tiled to RGB) minus
    `vgg_net.channel_mean`.
    """
    image = check_image_graph(image, input_H, input_W)
    shape = tf.shape(image)
    im_h, im_w = shape[0], shape[1]
    # resize_and_pad: scale = min(input_h / im_h, input_w / im_w) in float64.
    scale = tf.minimum(_div(input_H, im_h), _div(input_W, im_w))
    resized_h, resized_w = _resized_size(im_h, im_w, scale)
    pad_h = (input_H - resized_h) // 2
    pad_w = (input_W - resized_w) // 2
    im = _div(image, 255.0)  # 2016 img_as_float divided by 255
    resized = resize_2016_graph(im, resized_h, resized_w)
    padded = tf.pad(resized, [[pad_h, input_H - resized_h - pad_h],
                              [pad_w, input_W - resized_w - pad_w], [0, 0]])
    # img_as_ubyte of float64: rint(x * 255) (halves to even), as uint8 values.
    ubyte = tf.round(padded * 255.0)
    ubyte = tf.cast(ubyte, tf.float32)
    ubyte = tf.tile(ubyte, [1, 1, 3 // tf.shape(ubyte)[2]])
    ubyte = tf.ensure_shape(ubyte, [input_H, input_W, 3])
    return ubyte - tf.constant(vgg_net.channel_mean, tf.float32)


def decode_image_graph(image_bytes):
    """Encoded JPEG / PNG / GIF / BMP -> uint8 [H, W, 1 or 3], as `util.io.load_image` reads
    files: grey stays grey, an alpha channel is dropped, 16-bit keeps the top 8 bits.

    JPEGs use the accurate integer IDCT, libjpeg's default that Pillow (and so
    skimage.io.imread) uses; TensorFlow's own default is the fast one, a few levels off.
    """
    def jpeg():
        return tf.io.decode_jpeg(image_bytes, channels=0, dct_method="INTEGER_ACCURATE")

    def other():
        return tf.io.decode_image(image_bytes, channels=0, dtype=tf.uint8,
                                  expand_animations=False)

    image = tf.cond(tf.io.is_jpeg(image_bytes), jpeg, other)
    channels = tf.shape(image)[2]
    # grey + alpha -> grey, RGBA -> RGB
    return image[:, :, :tf.where(tf.equal(channels, 2), 1, tf.minimum(channels, 3))]


def masks_from_scores_graph(scores, im_h, im_w, score_thresh):
    """`resize_and_crop(scores >= thresh, im_h, im_w) > 0` per query: uint8 0/1 [Q, H, W].

    On a 0/1 prediction the 2016 warp gives a value > 0 exactly where a neighbour holding 1 has
    a positive weight, so the mask is a logical OR of gathered neighbours (no float images of
    the full output size). Only the crop that resize_and_crop keeps is computed.
    """
    scores = tf.convert_to_tensor(scores)
    in_h, in_w = scores.shape[1], scores.shape[2]
    pred = scores >= score_thresh
    pred = tf.pad(pred, [[0, 0], [1, 1], [1, 1]])  # constant-0 border
    scale = tf.maximum(_div(im_h, in_h), _div(im_w, in_w))
    resized_h, resized_w = _resized_size(in_h, in_w, scale)
    crop_h = (resized_h - im_h) // 2
    crop_w = (resized_w - im_w) // 2
    i0, wy0, wy1 = _axis_taps(in_h, resized_h, crop_h, im_h)
    j0, wx0, wx1 = _axis_taps(in_w, resized_w, crop_w, im_w)
    rows = ((tf.gather(pred, i0, axis=1) & (wy0 > 0)[None, :, None])
            | (tf.gather(pred, i0 + 1, axis=1) & (wy1 > 0)[None, :, None]))
    mask = ((tf.gather(rows, j0, axis=2) & (wx0 > 0)[None, None, :])
            | (tf.gather(rows, j0 + 1, axis=2) & (wx1 > 0)[None, None, :]))
    return tf.cast(mask, tf.uint8)


# ---------------------------------------------------------------------------------------------
# The module saved as a SavedModel
# ---------------------------------------------------------------------------------------------


class TokenizerModule(tf.Module):
    """The vocabulary table and the graph tokeniser (`tokenize` signature)."""

    def __init__(self, vocab_dict, T=20, name="tokenizer"):
        super().__init__(name=name)
        self.T = int(T)
        if self.T < 1:
            raise ValueError(f"T must be positive, got {T}")
        self.table = vocabulary_table(vocab_dict)
        self.pad_id = int(vocab_dict[PAD_IDENTIFIER])
        self.num_words = len(vocab_dict)
        self.max_id = int(max(vocab_dict.values()))
        self._whitespace = python_whitespace_codepoints()
        self.tokenize = tf.function(
            self._tokenize_signature,
            input_signature=[tf.TensorSpec([None], tf.string, name="query")])

    def ids(self, query):
        """int32 [T, Q] word ids of a string batch."""
        return tokenize_graph(query, self.table, self.T, self.pad_id, self._whitespace)

    def _tokenize_signature(self, query):
        return {"text_seq_batch": self.ids(query)}

    def signatures(self):
        return {TOKENIZE: self.tokenize.get_concrete_function()}


class SegmenterModule(tf.Module):
    """The high-res segmenter with in-graph preprocessing; save with `save_module`.

    Args:
      net: a `TextObjSegNet` holding high-res (`seg_highres`) weights.
      vocab_dict: {word: id} (`load_vocab_dict_from_file`); ids must be < net.num_vocab.
      input_H, input_W: network input size (multiples of 32; the release used 512).
      T: words per query.
      score_thresh: a pixel is foreground when its score is >= score_thresh.
      jit_compile: XLA for the image encoder ("auto" = "true", "false", or a bool). The
        string ops, the image preprocessing and the text part always run outside XLA.
    """

    def __init__(self, net, vocab_dict, input_H=512, input_W=512, T=20, score_thresh=1e-9,
                 jit_compile="auto", name="text_objseg_segmenter"):
        super().__init__(name=name)
        for what, v in (("input_H", input_H), ("input_W", input_W)):
            if int(v) <= 0 or int(v) % 32:
                raise ValueError(f"{what} must be a positive multiple of 32, got {v}")
        self.input_H, self.input_W = int(input_H), int(input_W)
        self.score_thresh = float(score_thresh)
        self.jit_compile = resolve_jit_compile(jit_compile)
        self.num_vocab = int(net.num_vocab)
        self.tokenizer = TokenizerModule(vocab_dict, T)
        if self.tokenizer.max_id >= self.num_vocab:
            raise ValueError(f"the vocabulary has ids up to {self.tokenizer.max_id} but the "
                             f"model's embedding has {self.num_vocab} rows")
        self.T = self.tokenizer.T
        featmap_h, featmap_w = self.input_H // 32, self.input_W // 32
        # Keras models kept out of tf.Module's tracking: only their variables are saved.
        self._keras = types.SimpleNamespace(
            text=net.text_encoder_model(self.T),
            image=net.image_encoder_model(self.input_H, self.input_W),
            head=net.seg_head_model(featmap_h, featmap_w, upsample=True))
        self.model_variables = [v.value for v in net.tf1_variables("seg_highres").values()]
        # XLA for VGG-16 only: its input shape is fixed, so it compiles once. The text encoder
        # and head would recompile for every new number of queries, and gain ~7 ms a query.
        self._encode_image = tf.function(self._encode_image_fn, jit_compile=self.jit_compile)

        image_spec = tf.TensorSpec([None, None, None], tf.uint8, name="image")
        query_spec = tf.TensorSpec([None], tf.string, name="query")
        self.serve = tf.function(self._serve, input_signature=[image_spec, query_spec])
        self.serve_image_bytes = tf.function(
            self._serve_image_bytes,
            input_signature=[tf.TensorSpec([], tf.string, name="image_bytes"), query_spec])
        self.scores_from_preprocessed = tf.function(
            self._scores_from_preprocessed, input_signature=[
                tf.TensorSpec([self.T, None], tf.int32, name="text_seq_batch"),
                tf.TensorSpec([None, self.input_H, self.input_W, 3], tf.float32,
                              name="imcrop_batch")])

    # -- the network --

    def _encode_image_fn(self, imcrop_batch):
        return self._keras.image(imcrop_batch, training=False)

    def _text_and_head(self, text_seq_batch, feat_vis):
        """Text features of the N queries and the head on `feat_vis` ([1 or N, h, w, 1000])."""
        feat_lang = self._keras.text(text_seq_batch, training=False)
        n = tf.shape(text_seq_batch)[1]
        feat_vis = tf.broadcast_to(feat_vis, tf.concat([[n], tf.shape(feat_vis)[1:]], 0))
        return self._keras.head([feat_lang, feat_vis], training=False)

    def _check_ids(self, text_seq_batch):
        ok = (text_seq_batch >= 0) & (text_seq_batch < self.num_vocab)
        with tf.control_dependencies([_check(
                tf.reduce_all(ok), f"text_seq_batch ids must lie in [0, {self.num_vocab})")]):
            return tf.identity(text_seq_batch)

    # -- signatures --

    def _scores_from_preprocessed(self, text_seq_batch, imcrop_batch):
        text_seq_batch = self._check_ids(text_seq_batch)
        n_text, n_image = tf.shape(text_seq_batch)[1], tf.shape(imcrop_batch)[0]
        with tf.control_dependencies([
                text_seq_batch,
                _check(tf.equal(n_text, n_image), "text_seq_batch [T, N] and imcrop_batch "
                       "[N, H, W, 3] must hold the same N; got:", n_text, n_image),
                _check(n_image > 0, "the batch is empty")]):
            imcrop_batch = tf.identity(imcrop_batch)
        scores = self._text_and_head(text_seq_batch, self._encode_image(imcrop_batch))
        return {"scores": scores}

    def _serve(self, image, query):
        text_seq_batch = self.tokenizer.ids(query)
        # Bad queries fail before any image work starts.
        with tf.control_dependencies([text_seq_batch]):
            image = tf.identity(image)
        imcrop = preprocess_image_graph(image, self.input_H, self.input_W)
        feat_vis = self._encode_image(imcrop[tf.newaxis])  # once per image
        scores = self._text_and_head(text_seq_batch, feat_vis)[..., 0]
        shape = tf.shape(image)
        mask = masks_from_scores_graph(scores, shape[0], shape[1], self.score_thresh)
        return {"mask": mask, "scores": scores}

    def _serve_image_bytes(self, image_bytes, query):
        return self._serve(decode_image_graph(image_bytes), query)

    def signatures(self):
        """{signature key: concrete function} for tf.saved_model.save."""
        return {
            SERVING_DEFAULT: self.serve.get_concrete_function(),
            SERVING_IMAGE_BYTES: self.serve_image_bytes.get_concrete_function(),
            SCORES_FROM_PREPROCESSED: self.scores_from_preprocessed.get_concrete_function(),
            TOKENIZE: self.tokenizer.tokenize.get_concrete_function(),
        }


def save_module(module, export_dir):
    """Writes `module` (SegmenterModule or TokenizerModule) as a SavedModel at `export_dir`.

    Written to a temporary sibling folder first and moved into place, so `export_dir` never
    holds a half-written model. An existing `export_dir` is replaced only if it is empty or a
    SavedModel (never some other folder).
    """
    export_dir = os.path.abspath(os.fspath(export_dir))
    if (os.path.isdir(export_dir) and os.listdir(export_dir)
            and not os.path.exists(os.path.join(export_dir, "saved_model.pb"))):
        raise ValueError(f"export_dir {export_dir} exists and is not a SavedModel; give a new "
                         "or empty folder (e.g. <model>/1 for TensorFlow Serving)")
    if os.path.exists(export_dir) and not os.path.isdir(export_dir):
        raise ValueError(f"export_dir {export_dir} is a file")
    parent = os.path.dirname(export_dir)
    os.makedirs(parent, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    tmp = os.path.join(parent, f".{os.path.basename(export_dir)}.{tag}.tmp")
    old = os.path.join(parent, f".{os.path.basename(export_dir)}.{tag}.old")
    try:
        tf.saved_model.save(module, tmp, signatures=module.signatures())
        if os.path.exists(export_dir):
            os.replace(export_dir, old)
        os.replace(tmp, export_dir)
    finally:
        for path in (tmp, old):
            with contextlib.suppress(OSError):
                shutil.rmtree(path)
    return export_dir


def export_saved_model(net, vocab_dict, export_dir, input_H=512, input_W=512, T=20,
                       score_thresh=1e-9, jit_compile="auto"):
    """Builds the `SegmenterModule` of `net` and writes it to `export_dir`; returns the path."""
    module = SegmenterModule(net, vocab_dict, input_H=input_H, input_W=input_W, T=T,
                             score_thresh=score_thresh, jit_compile=jit_compile)
    return save_module(module, export_dir)
