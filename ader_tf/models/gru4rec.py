"""GRU4Rec encoder (backbone): left-padded item ids -> last hidden state of a GRU.

Hidasi, Karatzoglou, Baltrunas & Tikk, "Session-based recommendations with recurrent neural
networks" (ICLR 2016, arXiv 1511.06939), with the dropout placement and initialisation of the
authors' code (github.com/hidasib/GRU4Rec, GRU4Rec_PyTorch_Official).
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from ader_tf.models.encoder import SessionEncoder, check_count, check_rate
from ader_tf.models.layers import seeded
from ader_tf.models.sasrec import trim_left_padding


@keras.saving.register_keras_serializable(package="ader_tf")
class GRU4RecEncoder(SessionEncoder):
    """GRU session encoder: the hidden state of the top layer after the last click, [B, d].

    The input of the first GRU layer is an item's row of `input_embeddings`: the paper feeds a
    one-hot vector times a weight matrix, which is an embedding lookup; here that matrix is
    factorised as table [num_items + 1, d] times the layer's input kernel [d, 3d]. Scores are
    session vector · rows of the separate output table `item_embeddings`, as in the paper
    (no output bias: `SessionRecommender` scores with the table alone).

    Each layer is the paper's GRU (Cho et al.: the reset gate acts before the recurrent
    matmul), h' = (1 - z) * h + z * tanh(W_h x + U_h (r * h) + b_h). As in both official
    implementations, hidden dropout is applied to each layer's output and the dropped-out
    vector is also the state carried to the next click.

    `call` takes ids [B, L] left-padded with 0 (rows longer than `maxlen` keep their last
    `maxlen` items). A padded step leaves the state unchanged, so the state is still zero
    when the first real click arrives and a padded row gives the same vector as the bare
    session; an all-padding row gives zeros. `step` advances one click per row, for GRU4Rec's
    session-parallel training (`ader_tf.models.session_parallel`).

    Args:
        num_items: Largest item id; both tables have `num_items + 1` rows (row 0 = padding).
        hidden_units: Width d of the embeddings and of every GRU layer.
        num_layers: Number of stacked GRU layers.
        dropout_rate: Dropout on each GRU layer's output during training (GRU4Rec's
            `dropout_p_hidden`).
        embedding_dropout: Dropout on the input embeddings during training (GRU4Rec's
            `dropout_p_embed`).
        maxlen: Number of last clicks `call` reads.
        seed: Base seed for initialisers and dropout (None: not seeded).
        init_items: The item count whose Glorot limit initialises item rows (None: `num_items`;
            see `SessionEncoder`).
        **kwargs: Forwarded to `keras.layers.Layer`.
    """

    def __init__(
        self,
        num_items: int,
        hidden_units: int = 100,
        num_layers: int = 1,
        dropout_rate: float = 0.0,
        embedding_dropout: float = 0.0,
        maxlen: int = 50,
        seed: int | None = None,
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
        check_count("num_layers", num_layers)
        check_rate("embedding_dropout", embedding_dropout)
        self.num_layers = int(num_layers)
        self.embedding_dropout = float(embedding_dropout)

        # === Layers === (the Dropout layers own the seed generators `reseed_dropout` finds)
        self.input_dropout = keras.layers.Dropout(
            embedding_dropout, seed=seeded(seed, 2), name="input_dropout"
        )
        self.hidden_dropouts = [
            keras.layers.Dropout(
                dropout_rate, seed=seeded(seed, 10 + i), name=f"hidden_dropout_{i}"
            )
            for i in range(num_layers)
        ]
        # Every shape is known from the arguments: variables exist right after construction.
        self.build()

    def build(self, input_shape: tuple | None = None) -> None:
        if self.built:
            return
        d = self.hidden_units

        def uniform(limit: float, offset: int) -> keras.initializers.Initializer:
            return keras.initializers.RandomUniform(-limit, limit, seed=seeded(self.seed, offset))

        # === Weights === (the official init: uniform +-sqrt(6 / (rows + cols)) per matrix,
        # each gate's block of a [in, 3d] kernel counting as its own [in, d] matrix)
        self.input_embeddings = self.add_weight(
            name="input_embeddings",
            shape=(self.num_items + 1, d),
            initializer=self.item_table_initializer(0),
        )
        self.item_embeddings = self.add_weight(
            name="item_embeddings",
            shape=(self.num_items + 1, d),
            initializer=self.item_table_initializer(1),
        )
        self.kernels, self.recurrent_kernels, self.biases = [], [], []
        for i in range(self.num_layers):
            # Gate order in the last axis: reset, update, candidate.
            self.kernels.append(
                self.add_weight(
                    name=f"gru_{i}_kernel",
                    shape=(d, 3 * d),
                    initializer=uniform((6.0 / (2 * d)) ** 0.5, 100 * (i + 1)),
                )
            )
            self.recurrent_kernels.append(
                self.add_weight(
                    name=f"gru_{i}_recurrent_kernel",
                    shape=(d, 3 * d),
                    initializer=uniform((6.0 / (2 * d)) ** 0.5, 100 * (i + 1) + 1),
                )
            )
            self.biases.append(
                self.add_weight(name=f"gru_{i}_bias", shape=(3 * d,), initializer="zeros")
            )
        self.built = True

    # === Recurrence ===

    def initial_state(self, batch_size: int | tf.Tensor) -> list[tf.Tensor]:
        """Zero states, one [batch_size, d] tensor per layer."""
        return [
            tf.zeros(tf.stack([batch_size, self.hidden_units]), self.compute_dtype)
            for _ in range(self.num_layers)
        ]

    def _cell(self, layer: int, projected: tf.Tensor, state: tf.Tensor) -> tf.Tensor:
        """One GRU update from the projected input W x + b [B, 3d] and the state [B, d]."""
        d = self.hidden_units
        recurrent = self.recurrent_kernels[layer]
        gates = tf.sigmoid(projected[:, : 2 * d] + tf.matmul(state, recurrent[:, : 2 * d]))
        reset, update = gates[:, :d], gates[:, d:]
        candidate = tf.tanh(projected[:, 2 * d :] + tf.matmul(reset * state, recurrent[:, 2 * d :]))
        return (1.0 - update) * state + update * candidate

    def step(
        self,
        item_ids: tf.Tensor,
        states: list[tf.Tensor],
        training: bool | None = None,
    ) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """Advances every row by one click.

        Args:
            item_ids: [B] int, the current click of each row.
            states: One [B, d] state per layer (`initial_state` for new sessions).
            training: Whether dropout is active.

        Returns:
            (output [B, d], new states); the output is the top layer's new state.
        """
        x = tf.gather(self.input_embeddings, tf.cast(item_ids, tf.int32))
        x = self.input_dropout(x, training=training)
        new_states = []
        for i, state in enumerate(states):
            x = self._cell(i, tf.matmul(x, self.kernels[i]) + self.biases[i], state)
            x = self.hidden_dropouts[i](x, training=training)
            new_states.append(x)
        return x, new_states

    def item_tables(self) -> list[keras.Variable]:
        """Both tables have a row per item: the input embeddings and the output table."""
        return [self.input_embeddings, self.item_embeddings]

    def call(self, item_ids: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        # Leading all-padding columns would leave every state at zero: dropping them is exact.
        item_ids = trim_left_padding(tf.cast(item_ids, tf.int32)[:, -self.maxlen :])
        batch, width = tf.shape(item_ids)[0], tf.shape(item_ids)[1]
        # Transposed as ids, not as booleans: oneDNN's transpose of a bool tensor falls back
        # to Eigen with an error-level notice on CPUs without AVX-512 (same values).
        is_item = tf.not_equal(tf.transpose(item_ids), 0)[:, :, None]  # [L, B, 1]
        x = tf.gather(self.input_embeddings, item_ids)
        x = self.input_dropout(x, training=training)
        x = tf.transpose(x, [1, 0, 2])  # time-major [L, B, d]
        drop = bool(training) and self.dropout_rate > 0.0

        for i in range(self.num_layers):
            # Input projections of all clicks at once; only the recurrent matmul is sequential.
            projected = tf.einsum("lbd,dk->lbk", x, self.kernels[i]) + self.biases[i]
            # The masks `step` would draw click by click, drawn for the whole sequence.
            masks = (
                self.hidden_dropouts[i](
                    tf.ones(tf.stack([width, batch, self.hidden_units]), x.dtype), training=True
                )
                if drop
                else tf.ones_like(is_item, x.dtype)
            )

            def advance(state: tf.Tensor, inputs: tuple, layer: int = i) -> tf.Tensor:
                step_projected, step_is_item, step_mask = inputs
                new = self._cell(layer, step_projected, state) * step_mask
                return tf.where(step_is_item, new, state)

            x = tf.scan(
                advance,
                (projected, is_item, masks),
                initializer=tf.zeros(tf.stack([batch, self.hidden_units]), x.dtype),
            )
        return x[-1]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "num_layers": self.num_layers,
                "embedding_dropout": self.embedding_dropout,
            }
        )
        return config
