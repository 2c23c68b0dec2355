"""SavedModel export of a `SessionRecommender` for serving (no `ader_tf` needed to load it)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence

import keras
import tensorflow as tf

from ader_tf.models.recommender import SessionRecommender


def export_saved_model(
    model: SessionRecommender,
    export_dir: str,
    k: int = 20,
    raw_item_ids: Sequence[str] | None = None,
) -> str:
    """Writes a SavedModel with signatures over the items known now (1..model.max_item).

    - `serving_default`: input `item_ids` int32 [batch, length] (each row a session's clicks in
      order, left-padded with 0; rows longer than maxlen keep their last maxlen); outputs
      `top_items` int32 [batch, k] (item ids, best first) and `top_scores` float32 [batch, k].
    - `scores`: same input; output `scores` float32 [batch, max_item], column j = item j + 1.
    - `recommend`: the same in the click log's own ids (`raw_item_ids`; without them, the
      period files' ids as text: "1", "2", ...). Input `item_ids` string [batch, length], a
      session's ids in click order, right- or left-padded with ""; ids the model does not
      know are skipped. Outputs `top_items` string [batch, k] (ids, best first) and
      `top_scores` float32. The id map is a lookup table inside the SavedModel, so serving
      needs TensorFlow only.

    Scores are the model's own (`SessionRecommender.score`, over the max_item items known
    now, a static width), so the export cannot drift from training and evaluation.

    The directory is written beside its final place and renamed into it, so a reader never
    sees a half-written model; an existing export at `export_dir` is replaced.

    Args:
        model: The model to export (dropout is off in the exported functions).
        export_dir: Destination folder.
        k: Number of items of `serving_default` (capped at max_item).
        raw_item_ids: The raw id of each internal item: entry i names item i + 1 (at least
            max_item entries; items.csv of the period files, in item_id order). None: the
            period files' ids are the click log's (the paper's files, the built-in sample).

    Returns:
        `export_dir`.

    Raises:
        ValueError: If k < 1 or `raw_item_ids` does not cover items 1..max_item.
    """
    if k < 1:
        raise ValueError(f"`k` must be >= 1, got {k}.")
    if raw_item_ids is not None and len(raw_item_ids) < model.max_item:
        raise ValueError(
            f"`raw_item_ids` must name items 1..{model.max_item}, got {len(raw_item_ids)} ids."
        )
    num_items = model.max_item
    k = min(k, num_items)

    def scores(item_ids: tf.Tensor) -> tf.Tensor:
        # The item universe is frozen at export time, so the output width is static.
        return model.score(model.encoder(item_ids, training=False), num_items=num_items)

    signature = [tf.TensorSpec([None, None], tf.int32, name="item_ids")]

    def serving_default(item_ids: tf.Tensor) -> dict[str, tf.Tensor]:
        top = tf.math.top_k(scores(item_ids), k=k)
        return {"top_items": top.indices + 1, "top_scores": top.values}

    def scores_endpoint(item_ids: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"scores": scores(item_ids)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serving_default, input_signature=signature)
    archive.add_endpoint("scores", scores_endpoint, input_signature=signature)
    if raw_item_ids is None:
        raw_ids = [str(item) for item in range(1, num_items + 1)]
    else:
        raw_ids = [str(r) for r in raw_item_ids[:num_items]]
    to_internal = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(raw_ids), tf.range(1, num_items + 1, dtype=tf.int32)
        ),
        default_value=0,  # "" and unknown ids become padding, which the encoder skips
    )
    archive.track(to_internal)
    names = tf.constant(["", *raw_ids])

    def recommend(item_ids: tf.Tensor) -> dict[str, tf.Tensor]:
        top = tf.math.top_k(scores(left_align(to_internal.lookup(item_ids))), k=k)
        return {"top_items": tf.gather(names, top.indices + 1), "top_scores": top.values}

    archive.add_endpoint(
        "recommend", recommend,
        input_signature=[tf.TensorSpec([None, None], tf.string, name="item_ids")],
    )

    export_dir = os.path.abspath(export_dir)
    parent = os.path.dirname(export_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(export_dir)}.tmp-", dir=parent)
    try:
        archive.write_out(staging, verbose=False)
        if os.path.exists(export_dir):
            retired = tempfile.mkdtemp(prefix=f".{os.path.basename(export_dir)}.old-", dir=parent)
            os.replace(export_dir, os.path.join(retired, "export"))
            os.replace(staging, export_dir)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, export_dir)
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging, ignore_errors=True)
    return export_dir


def left_align(item_ids: tf.Tensor) -> tf.Tensor:
    """Moves each row's non-zero ids to the right end, in order: left padding with 0.

    Rows may come right-padded, or with unknown ids (0) between known ones; the encoder reads
    a session as its last ids with padding before them.
    """
    known = tf.cast(item_ids > 0, tf.int32)
    order = tf.argsort(known, axis=1, stable=True)  # zeros first, each group in its order
    return tf.gather(item_ids, order, batch_dims=1)
