"""SASRec encoder (backbone): left-padded item ids -> session vector, as the reference."""

from __future__ import annotations

import itertools
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ader_tf.models.encoder import SessionEncoder, check_count
from ader_tf.models.layers import SASRecBlock, TF1LayerNorm, dropout_from_uniform, seeded


def trim_left_padding(item_ids: tf.Tensor) -> tf.Tensor:
    """Drops the leading columns that are padding (0) in every row, keeping at least one.

    With left padding and the reference's masking, the last position's output does not depend on
    padded positions, so this changes no result and saves the work on them.
    """
    any_item = tf.reduce_any(tf.not_equal(item_ids, 0), axis=0)  # [L]
    width = tf.shape(item_ids)[1]
    first = tf.cast(tf.argmax(tf.cast(any_item, tf.int32)), tf.int32)
    first = tf.where(tf.reduce_any(any_item), first, tf.maximum(width - 1, 0))
    return item_ids[:, first:]


# Group boundaries are searched among multiples of rows / _BOUND_GRID.
_BOUND_GRID = 16


def length_group_bounds(sorted_lengths: tf.Tensor, groups: int) -> tf.Tensor:
    """Where to cut rows sorted by length into ``groups`` groups: int32 [groups + 1].

    Each group is encoded at the width of its longest row, so a group of n rows costs about
    n x width. The cuts minimise the sum of those costs over equal-sized groups and cuts at
    multiples of rows / 16 (every choice of ``groups - 1`` of the 15 inner ones: 455 for 4
    groups, evaluated at once). On DIGINETICA's cycle-1 training batches of 256 rows (about
    1,030 items each) 4 groups then encode 1,408-1,456 positions (3 batches checked) where
    equal-sized groups encoded 2,330 on average. With more than 16 groups the groups are
    equal-sized. Which rows share a group changes a row's result only by float32 rounding
    (products over other row counts), but dropout masks are drawn per group, so other groups
    draw other (equally distributed) masks.

    Args:
        sorted_lengths: int [rows], the rows' item counts in ascending order.
        groups: The number of groups (>= 1).
    """
    sorted_lengths = tf.cast(sorted_lengths, tf.int32)
    rows = tf.shape(sorted_lengths)[0]
    grid = max(_BOUND_GRID, groups)
    inner = np.array(list(itertools.combinations(range(1, grid), groups - 1)), np.int32)
    inner = inner.reshape(len(inner), groups - 1)
    # Cuts as fractions of the rows over grid * groups: first the equal-sized groups (the
    # first of equal costs wins: batches of similar lengths, e.g. evaluation's length-sorted
    # ones, keep them), then every choice of cuts on the grid.
    equal = np.arange(groups + 1, dtype=np.int32)[None] * grid
    on_grid = np.concatenate([np.zeros((len(inner), 1), np.int32), inner,
                              np.full((len(inner), 1), grid, np.int32)], axis=1) * groups
    fractions = np.concatenate([equal, on_grid])
    cuts = (rows * tf.constant(fractions)) // (grid * groups)  # [choices, groups + 1]
    # A group's width: the length of its last row (at least 1, as trimming keeps a column);
    # index c - 1 of the lengths is index c of [1, lengths] (empty groups cost nothing).
    widths = tf.gather(tf.concat([[1], tf.maximum(sorted_lengths, 1)], 0), cuts[:, 1:])
    cost = tf.reduce_sum((cuts[:, 1:] - cuts[:, :-1]) * widths, axis=1)
    return cuts[tf.argmin(cost, output_type=tf.int32)]


@keras.saving.register_keras_serializable(package="ader_tf")
class SASRecEncoder(SessionEncoder):
    """Self-attentive session encoder (Kang & McAuley 2018) in the ADER reference's variant.

    Maps item ids [B, L] (left-padded with 0, any L; rows longer than `maxlen` keep their last
    `maxlen` items) to the final layer-normalised vector of the last position, [B, d].
    Positions are absolute in the `maxlen` window: the last input item always uses positional
    row `maxlen - 1`, so an input of width L gives the same result as the same rows padded to
    `maxlen`.

    Args:
        num_items: Largest item id; the item table has `num_items + 1` rows (row 0 is padding,
            stored but never used: lookups of id 0 are masked and scoring starts at row 1).
        hidden_units: Model width d.
        maxlen: Window length (size of the positional table).
        num_blocks: Number of self-attention blocks.
        num_heads: Attention heads (must divide `hidden_units`).
        dropout_rate: Dropout rate during training.
        l2_emb: L2 weight on both embedding tables, added to `self.losses`. (The reference
            declares this regulariser but never adds it to its loss; the default 0 matches it.)
        seed: Base seed for initialisers and dropout (None: not seeded).
        init_items: The item count whose Glorot limit initialises item rows (None: `num_items`;
            see `SessionEncoder`).
        trim_padding: Drop all-padding leading columns of each batch before the blocks (same
            result, less work). Turn off where static shapes are needed (XLA).
        length_groups: With trimming, encode the batch as this many groups of rows sorted by
            length, each trimmed to its own longest row (same result per row; short sessions
            stop paying for the batch's longest one). The group boundaries are chosen per
            batch to pad the fewest positions (see `length_group_bounds`).
        **kwargs: Forwarded to `keras.layers.Layer`.
    """

    def __init__(
        self,
        num_items: int,
        hidden_units: int = 150,
        maxlen: int = 50,
        num_blocks: int = 2,
        num_heads: int = 1,
        dropout_rate: float = 0.3,
        l2_emb: float = 0.0,
        seed: int | None = None,
        trim_padding: bool = True,
        length_groups: int = 4,
        tied_dropout: bool = True,
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
        check_count("num_heads", num_heads)
        check_count("num_blocks", num_blocks, minimum=0)
        if hidden_units % num_heads != 0:
            raise ValueError(
                f"`hidden_units` ({hidden_units}) must be divisible by `num_heads` ({num_heads})."
            )
        check_count("length_groups", length_groups)
        if l2_emb < 0:
            raise ValueError(f"`l2_emb` must be >= 0, got {l2_emb}.")
        self.num_blocks = int(num_blocks)
        self.num_heads = int(num_heads)
        self.l2_emb = float(l2_emb)
        self.trim_padding = bool(trim_padding)
        self.length_groups = int(length_groups)
        self.tied_dropout = bool(tied_dropout)

        # === Layers ===
        # The noise of the tied dropout masks (found by `SessionRecommender.reseed_dropout`).
        self.seed_generator = keras.random.SeedGenerator(seeded(seed, 3), name="tied_dropout")
        self.embedding_dropout = keras.layers.Dropout(
            dropout_rate, seed=seeded(seed, 2), name="embedding_dropout"
        )
        self.blocks = [
            SASRecBlock(
                hidden_units,
                num_heads,
                dropout_rate,
                seed=seeded(seed, 100 * (i + 1)),
                name=f"block_{i}",
            )
            for i in range(num_blocks)
        ]
        self.final_norm = TF1LayerNorm(name="final_norm")
        # All shapes are known from the arguments, so build now: the variables exist right
        # after construction (checkpoint restore, weight copies, conversion need no dummy call).
        self.build()

    def build(self, input_shape: tuple | None = None) -> None:
        if self.built:
            return
        regularizer = keras.regularizers.L2(self.l2_emb) if self.l2_emb > 0 else None
        # === Weights === (TF1's default initialiser: Glorot-uniform over each table's own
        # shape; the item table's limit is that of `init_items` items, so that it can grow)
        self.item_embeddings = self.add_weight(
            name="item_embeddings",
            shape=(self.num_items + 1, self.hidden_units),
            initializer=self.item_table_initializer(0),
            regularizer=regularizer,
        )
        self.position_embeddings = self.add_weight(
            name="position_embeddings",
            shape=(self.maxlen, self.hidden_units),
            initializer=keras.initializers.GlorotUniform(seeded(self.seed, 1)),
            regularizer=regularizer,
        )
        shape = (None, None, self.hidden_units)
        for block in self.blocks:
            block.build(shape, (None, None, 1))
        self.final_norm.build(shape)
        self.built = True

    def call(self, item_ids: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        item_ids = tf.cast(item_ids, tf.int32)[:, -self.maxlen :]
        if not self.trim_padding:
            return self._encode(item_ids, training)
        if self.length_groups == 1:
            return self._encode(trim_left_padding(item_ids), training)
        # Rows sorted by length, cut into groups, each trimmed; outputs put back in row order.
        lengths = tf.reduce_sum(tf.cast(tf.not_equal(item_ids, 0), tf.int32), axis=1)
        order = tf.argsort(lengths, stable=True)
        sorted_ids = tf.gather(item_ids, order)
        bounds = length_group_bounds(tf.gather(lengths, order), self.length_groups)
        outputs = [
            self._encode(trim_left_padding(sorted_ids[bounds[g]:bounds[g + 1]]), training)
            for g in range(self.length_groups)
        ]
        return tf.gather(tf.concat(outputs, axis=0), tf.math.invert_permutation(order))

    def _encode(self, item_ids: tf.Tensor, training: bool | None) -> tf.Tensor:
        """Session vectors of left-padded ids at most `maxlen` wide."""
        width = tf.shape(item_ids)[1]
        mask = tf.cast(tf.not_equal(item_ids, 0), self.compute_dtype)[:, :, None]

        # Row 0 of the table is never seen: padded positions are multiplied by the mask below,
        # so their value and their gradient are zero, as with the reference's zero row.
        x = tf.gather(self.item_embeddings, item_ids) * (self.hidden_units**0.5)
        x = x + self.position_embeddings[self.maxlen - width :][None]
        noise = self._tied_noise(x) if training else None
        if noise is not None:
            x = dropout_from_uniform(x, noise[0], self.dropout_rate)
        else:
            x = self.embedding_dropout(x, training=training)
        x = x * mask

        for block in self.blocks[:-1]:
            x = block(x, mask, training=training, shared_noise=noise)
        if self.blocks:
            # Only the last position is read out, so the last block computes that query alone.
            x = self.blocks[-1](x, mask, training=training, last_only=True, shared_noise=noise)
        return self.final_norm(x[:, -1, :])

    def _tied_noise(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor] | None:
        """Uniform noise ([B, L, d], [B, h, L, L]) shared by the tied dropouts, or None."""
        if not self.tied_dropout or self.dropout_rate <= 0.0:
            return None
        batch, width = tf.shape(x)[0], tf.shape(x)[1]
        outputs = keras.random.uniform(tf.shape(x), seed=self.seed_generator, dtype=x.dtype)
        weights_shape = tf.stack([batch, self.num_heads, width, width])
        weights = keras.random.uniform(weights_shape, seed=self.seed_generator, dtype=x.dtype)
        return outputs, weights

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "num_blocks": self.num_blocks,
                "num_heads": self.num_heads,
                "l2_emb": self.l2_emb,
                "trim_padding": self.trim_padding,
                "length_groups": self.length_groups,
                "tied_dropout": self.tied_dropout,
            }
        )
        return config
