"""The language encoder: word embedding + one TF1 `BasicLSTMCell` layer (ports models/lstm_net.py
and util/rnn.py).

A small custom cell rather than `keras.layers.LSTM`: the release stores one matrix
`[D_in + D_out, 4*D_out]` with gates in order i, j, f, o and adds `forget_bias` at run time.
Keras' LSTM would need the gates reordered, the matrix split and the forget bias folded into the
stored bias, which makes a TF1 -> Keras -> TF1 round trip inexact in float32 ((b + 1) - 1 != b).
Keeping TF1's layout keeps the round trip bit-identical and the maths line by line.
"""

import keras
import tensorflow as tf


class WordEmbedding(keras.layers.Layer):
    """`word_embedding/embedding` [num_vocab, embed_dim], looked up with `embedding_lookup`.

    `tf.nn.embedding_lookup` on the variable gives an `IndexedSlices` gradient, so training
    updates only the rows of the words in the batch, as in TF1.
    """

    def __init__(self, num_vocab, embed_dim, **kwargs):
        super().__init__(**kwargs)
        self.num_vocab = int(num_vocab)
        self.embed_dim = int(embed_dim)
        # tf.get_variable's default initializer in TF1 was Glorot-uniform.
        self.embedding = self.add_weight(name="embedding",
                                         shape=(self.num_vocab, self.embed_dim),
                                         initializer="glorot_uniform")
        self.built = True

    def build(self, input_shape):
        pass

    def call(self, ids):
        return tf.nn.embedding_lookup(self.embedding.value, ids)

    def get_config(self):
        config = super().get_config()
        config.update(num_vocab=self.num_vocab, embed_dim=self.embed_dim)
        return config


class BasicLSTMEncoder(keras.layers.Layer):
    """One TF1 `BasicLSTMCell` run over all T steps of a time-major `[T, N, D_in]` sequence.

    Zero initial state, no masking (sentences are left-padded with `<pad>` and the pads are
    fed through the cell, as in the original), returns the last step's hidden state `[N, D_out]`.
    Per step, exactly as TF1: `z = concat([x_t, h]) @ Matrix + Bias`; `i, j, f, o = split(z)`;
    `c = c * sigmoid(f + forget_bias) + sigmoid(i) * tanh(j)`; `h = tanh(c) * sigmoid(o)`.
    """

    def __init__(self, input_dim, output_dim, forget_bias=1.0, **kwargs):
        super().__init__(**kwargs)
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        self.forget_bias = float(forget_bias)
        self.matrix = self.add_weight(
            name="kernel", shape=(self.input_dim + self.output_dim, 4 * self.output_dim),
            initializer="glorot_uniform")
        self.bias = self.add_weight(name="bias", shape=(4 * self.output_dim,),
                                    initializer="zeros")
        self.built = True

    def build(self, input_shape):
        pass

    def call(self, seq):
        num_steps = seq.shape[0]
        if num_steps is None:
            raise ValueError("the text sequence length T must be static")
        batch = tf.shape(seq)[1]
        c = tf.zeros(tf.stack([batch, self.output_dim]), dtype=seq.dtype)
        h = tf.zeros(tf.stack([batch, self.output_dim]), dtype=seq.dtype)
        matrix = tf.cast(self.matrix.value, seq.dtype)
        bias = tf.cast(self.bias.value, seq.dtype)
        for t in range(num_steps):
            z = tf.nn.bias_add(tf.matmul(tf.concat([seq[t], h], axis=1), matrix), bias)
            i, j, f, o = tf.split(z, 4, axis=1)
            c = c * tf.sigmoid(f + self.forget_bias) + tf.sigmoid(i) * tf.tanh(j)
            h = tf.tanh(c) * tf.sigmoid(o)
        return h

    def get_config(self):
        config = super().get_config()
        config.update(input_dim=self.input_dim, output_dim=self.output_dim,
                      forget_bias=self.forget_bias)
        return config
