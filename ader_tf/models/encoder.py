"""The common base of the session encoders: what `SessionRecommender` needs from any of them."""

from __future__ import annotations

import math
from typing import Any

import keras
import tensorflow as tf

from ader_tf.models.layers import seeded


def check_count(name: str, value: Any, minimum: int = 1) -> None:
    """Raises ValueError unless the integer argument `name` is at least `minimum`."""
    if int(value) < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value}.")


def check_rate(name: str, value: float) -> None:
    """Raises ValueError unless the dropout rate `name` is in [0, 1)."""
    if not 0.0 <= value < 1.0:
        raise ValueError(f"`{name}` must be in [0, 1), got {value}.")


@keras.saving.register_keras_serializable(package="ader_tf")
class ItemRowsGlorotUniform(keras.initializers.GlorotUniform):
    """Glorot-uniform with the limit of a table of `rows` rows, whatever the table's size.

    An item table grows when new items arrive, but each row must start as it would have in a
    table made at any size: the limit is fixed by `rows` (Glorot's own limit would shrink as
    the table grows), and the seeded draws fill the table row by row, so the first rows of a
    larger table equal a smaller table's rows. With `rows` equal to the table's row count
    this is exactly `GlorotUniform` (TF1's default, which the reference uses).

    Args:
        rows: The row count whose Glorot limit is used.
        seed: As for `GlorotUniform`.
    """

    def __init__(self, rows: int, seed: Any = None) -> None:
        super().__init__(seed=seed)
        check_count("rows", rows)
        self.rows = int(rows)

    def __call__(self, shape: Any, dtype: Any = None) -> Any:
        # The computation of keras' VarianceScaling (fan_avg, uniform) with fan_in = rows.
        scale = 1.0 / max(1.0, (self.rows + shape[-1]) / 2.0)
        limit = math.sqrt(3.0 * scale)
        return keras.random.uniform(shape, minval=-limit, maxval=limit, dtype=dtype,
                                    seed=self.seed)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rows": self.rows}


class SessionEncoder(keras.layers.Layer):
    """Maps sessions to vectors: item ids [B, L], left-padded with 0, to [B, hidden_units].

    `SessionRecommender` scores a session vector against rows 1..max_item of the encoder's item
    table and passes the result through `transform_scores`. Subclasses create that table, the
    weight `item_embeddings` [num_items + 1, hidden_units], in their own `build` (row 0 is
    padding and is never scored); its initialiser and the order in which the weights are made
    are each subclass's own, because checkpoints and seeded runs depend on them. Tables with
    one row per item (`item_tables`) may grow between cycles (see `models.growth`), so their
    initialisers must give each row a value that does not depend on the table's size
    (`ItemRowsGlorotUniform` with `init_items`, or a scale-free initialiser).

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
        init_items: The item count whose table's Glorot limit initialises item rows (None:
            `num_items`). A grown copy keeps its original's, so old and new rows are drawn
            alike.
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
        init_items: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_count("num_items", num_items)
        if init_items is not None:
            check_count("init_items", init_items)
        check_count("hidden_units", hidden_units)
        check_count("maxlen", maxlen)
        check_rate("dropout_rate", dropout_rate)
        self.num_items = int(num_items)
        self.hidden_units = int(hidden_units)
        self.maxlen = int(maxlen)
        self.dropout_rate = float(dropout_rate)
        self.seed = seed
        self.init_items = int(init_items) if init_items is not None else self.num_items

    def item_table_initializer(self, offset: int) -> keras.initializers.Initializer:
        """Glorot-uniform for a [num_items + 1, d] table, its limit fixed by `init_items`."""
        return ItemRowsGlorotUniform(self.init_items + 1, seed=seeded(self.seed, offset))

    def item_tables(self) -> list[keras.Variable]:
        """The weights with one row per item id (row 0 = padding): what growing resizes."""
        return [self.item_embeddings]

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
                "init_items": self.init_items,
            }
        )
        return config
