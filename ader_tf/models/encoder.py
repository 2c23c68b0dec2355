"""The common base of the session encoders: what `SessionRecommender` needs from any of them."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf


def check_count(name: str, value: Any, minimum: int = 1) -> None:
    """Raises ValueError unless the integer argument `name` is at least `minimum`."""
    if int(value) < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value}.")


def check_rate(name: str, value: float) -> None:
    """Raises ValueError unless the dropout rate `name` is in [0, 1)."""
    if not 0.0 <= value < 1.0:
        raise ValueError(f"`{name}` must be in [0, 1), got {value}.")


class SessionEncoder(keras.layers.Layer):
    """Maps sessions to vectors: item ids [B, L], left-padded with 0, to [B, hidden_units].

    `SessionRecommender` scores a session vector against rows 1..max_item of the encoder's item
    table and passes the result through `transform_scores`. Subclasses create that table, the
    weight `item_embeddings` [num_items + 1, hidden_units], in their own `build` (row 0 is
    padding and is never scored); its initialiser and the order in which the weights are made
    are each subclass's own, because checkpoints and seeded runs depend on them.

    A subclass passes the arguments below to this constructor, which checks them and sets the
    attributes of the same names, and adds its own arguments to `get_config`, so that the
    config holds exactly the constructor's arguments. Rows longer than `maxlen` keep their
    last `maxlen` items.

    Args:
        num_items: Largest item id; the item table has `num_items + 1` rows.
        hidden_units: Width d of the session vectors and of the item table.
        maxlen: Number of last items of a row that are read.
        dropout_rate: The encoder's main dropout rate during training, in [0, 1).
        seed: Base seed for initialisers and dropout (None: not seeded).
        **kwargs: Forwarded to `keras.layers.Layer`.

    Raises:
        ValueError: If a size is below 1 or `dropout_rate` is outside [0, 1).
    """

    # Created by each subclass's `build` (declared here for readers and type checkers).
    item_embeddings: keras.Variable

    def __init__(
        self,
        num_items: int,
        hidden_units: int,
        maxlen: int,
        dropout_rate: float = 0.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_count("num_items", num_items)
        check_count("hidden_units", hidden_units)
        check_count("maxlen", maxlen)
        check_rate("dropout_rate", dropout_rate)
        self.num_items = int(num_items)
        self.hidden_units = int(hidden_units)
        self.maxlen = int(maxlen)
        self.dropout_rate = float(dropout_rate)
        self.seed = seed

    def call(self, item_ids: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        """Session vectors [B, hidden_units] of item ids [B, L] (any L, left-padded with 0)."""
        raise NotImplementedError(f"{type(self).__name__} must implement `call`.")

    def transform_scores(self, logits: tf.Tensor) -> tf.Tensor:
        """Maps the dot-product scores [B, n] before the softmax, ranking and export.

        The identity here; an encoder whose model squashes its scores (STAMP's optional
        sigmoid) overrides it, so that losses, teachers and served scores all agree.
        """
        return logits

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "num_items": self.num_items,
                "hidden_units": self.hidden_units,
                "maxlen": self.maxlen,
                "dropout_rate": self.dropout_rate,
                "seed": self.seed,
            }
        )
        return config
