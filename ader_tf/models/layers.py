"""Building blocks of the SASRec encoder, written to match the reference TF1 graph.

The reference (`modules.py` of doublemul/ADER, itself from kang205/SASRec) differs from the
textbook Transformer in ways that change the numbers, so these layers copy its behaviour:

- layer normalisation is `(x - mean) / sqrt(var + 1e-8) * gamma + beta`;
- padding is detected on activations (an all-zero row of a block's input), not on ids (the
  reference tests a row's sum, and for queries the normalised row's: see `CausalSelfAttention`);
- masked attention scores are filled with `-2**32 + 1`, not `-inf`;
- both residual connections add the *normalised* input.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

# The reference's fill value for masked attention scores (float32 rounds it to -2**32).
_MASK_FILL = -(2.0**32) + 1.0


def seeded(seed: int | None, offset: int) -> int | None:
    """Derives a distinct seed per layer from a base seed (None stays None)."""
    return None if seed is None else seed + offset


def dropout_from_uniform(x: tf.Tensor, uniform: tf.Tensor, rate: float) -> tf.Tensor:
    """Inverted dropout whose mask comes from given uniform noise (kept where noise >= rate).

    Several layers given the same noise drop the same units: that is how the reference's
    dropouts behave, since they share one op seed (see `SASRecEncoder`'s `tied_dropout`).
    """
    if rate <= 0.0:
        return x
    return tf.where(uniform >= rate, x / (1.0 - rate), tf.zeros_like(x))


@keras.saving.register_keras_serializable(package="ader_tf")
class TF1LayerNorm(keras.layers.Layer):
    """Layer normalisation over the last axis exactly as the reference's `normalize`.

    Args:
        epsilon: Added to the variance before the square root (reference: 1e-8).
        **kwargs: Forwarded to `keras.layers.Layer`.
    """

    def __init__(self, epsilon: float = 1e-8, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if epsilon < 0:
            raise ValueError(f"`epsilon` must be >= 0, got {epsilon}.")
        self.epsilon = epsilon

    def build(self, input_shape: tuple) -> None:
        dim = int(input_shape[-1])
        # Names follow the reference's order: `ln/Variable` is beta, `ln/Variable_1` is gamma.
        self.beta = self.add_weight(name="beta", shape=(dim,), initializer="zeros")
        self.gamma = self.add_weight(name="gamma", shape=(dim,), initializer="ones")

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        mean, variance = tf.nn.moments(inputs, axes=[-1], keepdims=True)
        normalized = (inputs - mean) / ((variance + self.epsilon) ** 0.5)
        return self.gamma * normalized + self.beta

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"epsilon": self.epsilon})
        return config


@keras.saving.register_keras_serializable(package="ader_tf")
class CausalSelfAttention(keras.layers.Layer):
    """The reference's `multihead_attention` with causality, queries LN(x) and keys x.

    Args:
        hidden_units: Model width d (also the width of Q, K and V).
        num_heads: Number of heads; each takes a contiguous slice of d / num_heads units.
        dropout_rate: Dropout on the attention weights during training.
        seed: Base seed for initialisers and dropout (None: not seeded).
        **kwargs: Forwarded to `keras.layers.Layer`.

    Call args:
        queries: [B, Lq, d] normalised sequence, the last Lq positions of the keys' (Lq <= L).
        keys: [B, L, d] un-normalised sequence (also the values).
        training: Whether dropout is active.
        weights_noise: Optional uniform noise [B, h, Lq, L] that decides the weights' dropout
            mask instead of this layer's own generator (tied dropout).

    Returns:
        [B, Lq, d] attention output plus the queries (the reference's residual).
    """

    def __init__(
        self,
        hidden_units: int,
        num_heads: int = 1,
        dropout_rate: float = 0.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if hidden_units % num_heads != 0:
            raise ValueError(
                f"`hidden_units` ({hidden_units}) must be divisible by `num_heads` ({num_heads})."
            )
        self.hidden_units = hidden_units
        self.num_heads = num_heads
        self.dropout_rate = dropout_rate
        self.seed = seed

        # === Layers ===
        def projection(name: str, offset: int) -> keras.layers.Dense:
            return keras.layers.Dense(
                hidden_units,
                kernel_initializer=keras.initializers.GlorotUniform(seeded(seed, offset)),
                bias_initializer="zeros",
                name=name,
            )

        self.query_dense = projection("query", 0)
        self.key_dense = projection("key", 1)
        self.value_dense = projection("value", 2)
        self.weights_dropout = keras.layers.Dropout(
            dropout_rate, seed=seeded(seed, 3), name="weights_dropout"
        )

    def build(self, queries_shape: tuple, keys_shape: tuple | None = None) -> None:
        shape = (None, None, self.hidden_units)
        for layer in (self.query_dense, self.key_dense, self.value_dense):
            layer.build(shape)

    def _split_heads(self, x: tf.Tensor) -> tf.Tensor:
        batch, length = tf.shape(x)[0], tf.shape(x)[1]
        x = tf.reshape(x, [batch, length, self.num_heads, self.hidden_units // self.num_heads])
        return tf.transpose(x, [0, 2, 1, 3])  # [B, h, L, d/h]

    def call(
        self,
        queries: tf.Tensor,
        keys: tf.Tensor,
        training: bool | None = None,
        weights_noise: tf.Tensor | None = None,
    ) -> tf.Tensor:
        q = self._split_heads(self.query_dense(queries))
        k = self._split_heads(self.key_dense(keys))
        v = self._split_heads(self.value_dense(keys))

        scores = tf.matmul(q, k, transpose_b=True) / ((self.hidden_units // self.num_heads) ** 0.5)

        # Keys at padded positions (all-zero rows of `keys`) and future keys are masked.
        padded = tf.reduce_all(tf.equal(keys, 0.0), axis=-1)  # [B, Lk]
        key_mask = tf.logical_not(padded)[:, None, None, :]
        # Queries are the last Lq of the Lk positions: query i sits at key position Lk - Lq + i.
        q_len, k_len = tf.shape(queries)[1], tf.shape(keys)[1]
        causal = tf.linalg.band_part(tf.ones([q_len, k_len], dtype=tf.bool), -1, k_len - q_len)
        fill = tf.fill(tf.shape(scores), tf.constant(_MASK_FILL, dtype=scores.dtype))
        scores = tf.where(key_mask, scores, fill)
        scores = tf.where(causal[None, None], scores, fill)
        weights = tf.nn.softmax(scores, axis=-1)

        # Rows of queries at padded positions are zeroed. The reference tests whether a row sums
        # to exactly 0 (keys: the row of x; queries: the row of the normalised q). On padding both
        # rules agree wherever it matters (a padded position's output is zeroed after the block
        # anyway), but a real query row of a fresh model (layer-norm gain 1, bias 0: the row is
        # centred) sums to 0 up to rounding, and whether that rounding gives exactly 0.0 depends
        # on the order the kernels add in, which changes with the batch's size and layout: 4 of
        # 64 rows of the tiny model lost their attention in a batch of 64 and kept it alone, on
        # a 2-core AMD EPYC, so one device and two replicas took different first steps. Testing
        # for zero rows of the block's input gives each row one answer in any batch, replica and
        # machine, and differs from the reference only where its answer is such an accident.
        query_mask = tf.cast(tf.logical_not(padded[:, k_len - q_len:]), weights.dtype)
        weights = weights * query_mask[:, None, :, None]
        if training and weights_noise is not None:
            weights = dropout_from_uniform(weights, weights_noise, self.dropout_rate)
        else:
            weights = self.weights_dropout(weights, training=training)

        outputs = tf.matmul(weights, v)  # [B, h, L, d/h]
        outputs = tf.transpose(outputs, [0, 2, 1, 3])
        outputs = tf.reshape(outputs, tf.shape(queries))
        return outputs + queries

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "hidden_units": self.hidden_units,
                "num_heads": self.num_heads,
                "dropout_rate": self.dropout_rate,
                "seed": self.seed,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="ader_tf")
class SASRecBlock(keras.layers.Layer):
    """One SASRec block: LN -> causal self-attention -> LN -> point-wise FFN -> padding mask.

    The FFN's two dense layers are the reference's width-1 `conv1d` layers (kernel [1, d, d]:
    Glorot fans d and d, the same as a [d, d] dense kernel).

    Args:
        hidden_units: Model width d.
        num_heads: Attention heads.
        dropout_rate: Dropout on attention weights and after each FFN layer.
        seed: Base seed for initialisers and dropout (None: not seeded).
        **kwargs: Forwarded to `keras.layers.Layer`.

    Call args:
        x: [B, L, d] sequence, zero at padded positions.
        mask: [B, L, 1] float, 1 at real items.
        training: Whether dropout is active.
        last_only: Compute the output of the last position only ([B, 1, d]); exact, since
            every operation after the attention is per position.
        shared_noise: Optional pair of uniform noise tensors ([B, L, d], [B, h, L, L]) that
            decide the FFN output dropout and the attention-weight dropout masks (tied
            dropout); the FFN inner dropout always draws its own, as in the reference.
    """

    def __init__(
        self,
        hidden_units: int,
        num_heads: int = 1,
        dropout_rate: float = 0.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hidden_units = hidden_units
        self.num_heads = num_heads
        self.dropout_rate = dropout_rate
        self.seed = seed

        # === Layers ===
        self.attention_norm = TF1LayerNorm(name="attention_norm")
        self.attention = CausalSelfAttention(
            hidden_units, num_heads, dropout_rate, seed=seeded(seed, 0), name="attention"
        )
        self.ffn_norm = TF1LayerNorm(name="ffn_norm")
        self.ffn_inner = keras.layers.Dense(
            hidden_units,
            activation="relu",
            kernel_initializer=keras.initializers.GlorotUniform(seeded(seed, 10)),
            name="ffn_inner",
        )
        self.ffn_inner_dropout = keras.layers.Dropout(
            dropout_rate, seed=seeded(seed, 11), name="ffn_inner_dropout"
        )
        self.ffn_outer = keras.layers.Dense(
            hidden_units,
            kernel_initializer=keras.initializers.GlorotUniform(seeded(seed, 12)),
            name="ffn_outer",
        )
        self.ffn_outer_dropout = keras.layers.Dropout(
            dropout_rate, seed=seeded(seed, 13), name="ffn_outer_dropout"
        )

    def build(self, x_shape: tuple, mask_shape: tuple | None = None) -> None:
        shape = (None, None, self.hidden_units)
        self.attention_norm.build(shape)
        self.attention.build(shape, shape)
        self.ffn_norm.build(shape)
        self.ffn_inner.build(shape)
        self.ffn_outer.build(shape)

    def call(
        self,
        x: tf.Tensor,
        mask: tf.Tensor,
        training: bool | None = None,
        last_only: bool = False,
        shared_noise: tuple[tf.Tensor, tf.Tensor] | None = None,
    ) -> tf.Tensor:
        output_noise = weights_noise = None
        if training and shared_noise is not None:
            output_noise, weights_noise = shared_noise
        queries = self.attention_norm(x)
        if last_only:
            queries, mask = queries[:, -1:], mask[:, -1:]
            if output_noise is not None:
                output_noise, weights_noise = output_noise[:, -1:], weights_noise[:, :, -1:]
        x = self.attention(queries, x, training=training, weights_noise=weights_noise)
        f = self.ffn_norm(x)
        h = self.ffn_inner_dropout(self.ffn_inner(f), training=training)
        h = self.ffn_outer(h)
        if output_noise is not None:
            h = dropout_from_uniform(h, output_noise, self.dropout_rate)
        else:
            h = self.ffn_outer_dropout(h, training=training)
        return (h + f) * mask

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "hidden_units": self.hidden_units,
                "num_heads": self.num_heads,
                "dropout_rate": self.dropout_rate,
                "seed": self.seed,
            }
        )
        return config
