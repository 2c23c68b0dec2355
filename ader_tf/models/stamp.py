"""STAMP / STMP encoder (backbone): left-padded item ids -> session vector (KDD 2018)."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from ader_tf.models.encoder import SessionEncoder
from ader_tf.models.layers import seeded

OUTPUT_ACTIVATIONS = ("sigmoid", "none")

# The paper's initialisation (Sec. 5.3, and `stddev` / `emb_stddev` in the authors' config):
# weight matrices N(0, 0.05^2), item embeddings N(0, 0.002^2), biases zero.
_WEIGHT_STDDEV = 0.05
_EMBEDDING_STDDEV = 0.002


@keras.saving.register_keras_serializable(package="ader_tf")
class STAMPEncoder(SessionEncoder):
    """Short-Term Attention/Memory Priority encoder; `attention=False` gives STMP.

    With x_1..x_t the embeddings of a session's items (padding excluded), m_s their mean and
    m_t = x_t the last one:

    - STMP: h_s = tanh(W_s m_s + b_s), h_t = tanh(W_t m_t + b_t).
    - STAMP: m_s above is replaced by m_a = sum_i alpha_i x_i with
      alpha_i = w_0 . sigmoid(W_1 x_i + W_2 x_t + W_3 m_s + b_a) (not normalised, as written).

    The encoder returns h_s * h_t [B, d]; the recommender's dot product with the item table then
    gives the paper's trilinear score <h_s, h_t, x_i> = sum_k h_s,k h_t,k x_i,k, and
    `transform_scores` applies the paper's sigmoid before the softmax.

    On that sigmoid: the paper writes y = softmax(sigmoid(z)). Scores in (0, 1) bound the ratio
    of any two softmax probabilities by e, so over thousands of items the softmax stays almost
    uniform: the cross-entropy cannot fall much below log(n / e), and a distillation teacher's
    soft labels carry almost no signal. The authors' released code (uestcnlp/STAMP,
    `model/STAMP_rsc.py`) has no sigmoid: it feeds the raw trilinear scores to
    `sparse_softmax_cross_entropy_with_logits` and ranks by them. The default here follows the
    released code ("none"); "sigmoid" gives the paper as written (ranks are the same up to ties
    where the sigmoid saturates in float32). The released code also differs from the paper in
    ways this layer does not follow: no biases, m_a = sum_i alpha_i x_i + m_s, and embedding
    lookups clipped to norm 1 (`max_norm=1`).

    Maps item ids [B, L] (left-padded with 0, any L; rows longer than `maxlen` keep their last
    `maxlen` items) to [B, d]. Padding is masked out of the mean and the attention sum, so any
    amount of left padding gives the same result.

    Args:
        num_items: Largest item id; the item table has `num_items + 1` rows (row 0 is padding,
            stored but never used).
        hidden_units: Embedding and hidden width d (paper: 100).
        attention: True for STAMP (attention over the session), False for STMP (mean).
        maxlen: Number of last items of a row that are read.
        dropout_rate: Dropout on the item embeddings during training (the paper uses none).
        seed: Base seed for initialisers and dropout (None: not seeded).
        init_items: Kept for the common config (see `SessionEncoder`); STAMP's item rows are
            drawn from a normal whose scale does not depend on the table's size.
        output_activation: "sigmoid" (paper) or "none" (released code, default) on the scores.
        **kwargs: Forwarded to `keras.layers.Layer`.

    Raises:
        ValueError: On a non-positive size, a dropout rate outside [0, 1) or an unknown
            `output_activation`.
    """

    def __init__(
        self,
        num_items: int,
        hidden_units: int = 100,
        attention: bool = True,
        maxlen: int = 50,
        dropout_rate: float = 0.0,
        seed: int | None = None,
        output_activation: str = "none",
        init_items: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            num_items=num_items,
            hidden_units=hidden_units,
            maxlen=maxlen,
            dropout_rate=dropout_rate,
            seed=seed,
            init_items=init_items,
            **kwargs,
        )
        if attention not in (True, False):
            raise ValueError(f"`attention` must be a bool, got {attention!r}.")
        if output_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(
                f"`output_activation` must be one of {OUTPUT_ACTIVATIONS}, "
                f"got {output_activation!r}."
            )
        self.attention = bool(attention)
        self.output_activation = output_activation

        # === Layers ===
        self.embedding_dropout = keras.layers.Dropout(
            dropout_rate, seed=seeded(seed, 1), name="embedding_dropout"
        )
        # MLP cells A and B of the paper: session memory (m_s or m_a) and last click (m_t).
        self.session_mlp = self._dense("session_mlp", offset=2, use_bias=True, activation="tanh")
        self.last_mlp = self._dense("last_mlp", offset=3, use_bias=True, activation="tanh")
        if self.attention:
            # alpha_i = w_0 . sigmoid(W_1 x_i + W_2 x_t + W_3 m_s + b_a); b_a sits on W_1.
            self.attention_item = self._dense("attention_item", offset=4, use_bias=True)
            self.attention_last = self._dense("attention_last", offset=5, use_bias=False)
            self.attention_session = self._dense("attention_session", offset=6, use_bias=False)
            self.attention_score = self._dense("attention_score", offset=7, use_bias=False, units=1)
        # All shapes are known from the arguments, so build now (as SASRecEncoder does).
        self.build()

    def _dense(
        self,
        name: str,
        offset: int,
        use_bias: bool,
        activation: str | None = None,
        units: int | None = None,
    ) -> keras.layers.Dense:
        return keras.layers.Dense(
            units or self.hidden_units,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=keras.initializers.RandomNormal(
                stddev=_WEIGHT_STDDEV, seed=seeded(self.seed, offset)
            ),
            bias_initializer="zeros",
            name=name,
        )

    def build(self, input_shape: tuple | None = None) -> None:
        if self.built:
            return
        # === Weights ===
        self.item_embeddings = self.add_weight(
            name="item_embeddings",
            shape=(self.num_items + 1, self.hidden_units),
            initializer=keras.initializers.RandomNormal(
                stddev=_EMBEDDING_STDDEV, seed=seeded(self.seed, 0)
            ),
        )
        shape = (None, self.hidden_units)
        dense_layers = [self.session_mlp, self.last_mlp]
        if self.attention:
            dense_layers += [
                self.attention_item,
                self.attention_last,
                self.attention_session,
                self.attention_score,
            ]
        for layer in dense_layers:
            layer.build(shape)
        self.built = True

    def call(self, item_ids: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        return self._encode(item_ids, training)[0]

    def attention_weights(self, item_ids: Any, training: bool | None = False) -> tf.Tensor:
        """STAMP's alpha [B, min(L, maxlen)], 0 on padding (STMP: 1 / length on each item)."""
        return self._encode(tf.convert_to_tensor(item_ids), training)[1]

    def _encode(self, item_ids: tf.Tensor, training: bool | None) -> tuple[tf.Tensor, tf.Tensor]:
        """(session vectors [B, d], weights of the items in the session memory [B, L])."""
        item_ids = tf.cast(item_ids, tf.int32)[:, -self.maxlen :]
        mask = tf.cast(tf.not_equal(item_ids, 0), self.compute_dtype)  # [B, L]
        # Padded positions are multiplied by the mask, so row 0 gets neither value nor gradient.
        x = tf.gather(self.item_embeddings, item_ids)
        x = self.embedding_dropout(x, training=training) * mask[:, :, None]  # [B, L, d]
        last = x[:, -1, :]  # left padding: the last column is the last click (m_t = x_t)
        length = tf.reduce_sum(mask, axis=1, keepdims=True)  # [B, 1]
        mean = tf.math.divide_no_nan(tf.reduce_sum(x, axis=1), length)  # m_s
        if self.attention:
            hidden = tf.sigmoid(
                self.attention_item(x)
                + self.attention_last(last)[:, None, :]
                + self.attention_session(mean)[:, None, :]
            )
            alpha = self.attention_score(hidden)[:, :, 0] * mask  # [B, L]
        else:
            alpha = tf.math.divide_no_nan(mask, length)
        memory = tf.reduce_sum(alpha[:, :, None] * x, axis=1)  # m_a (STAMP) or m_s (STMP)
        return self.session_mlp(memory) * self.last_mlp(last), alpha

    def transform_scores(self, logits: tf.Tensor) -> tf.Tensor:
        """The scores fed to the softmax: sigmoid(<h_s, h_t, x_i>) or the raw trilinear score."""
        if self.output_activation == "sigmoid":
            return tf.sigmoid(logits)
        return logits

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "attention": self.attention,
                "output_activation": self.output_activation,
            }
        )
        return config
