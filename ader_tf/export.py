"""SavedModel export of a `SessionRecommender` for serving (no `ader_tf` needed to load it)."""

from __future__ import annotations

import os
import shutil
import tempfile

import keras
import tensorflow as tf

from ader_tf.models.recommender import SessionRecommender


def export_saved_model(model: SessionRecommender, export_dir: str, k: int = 20) -> str:
    """Writes a SavedModel with two signatures over the items known now (1..model.max_item).

    - `serving_default`: input `item_ids` int32 [batch, length] (each row a session's clicks in
      order, left-padded with 0; rows longer than maxlen keep their last maxlen); outputs
      `top_items` int32 [batch, k] (item ids, best first) and `top_scores` float32 [batch, k].
    - `scores`: same input; output `scores` float32 [batch, max_item], column j = item j + 1.

    The directory is written beside its final place and renamed into it, so a reader never
    sees a half-written model; an existing export at `export_dir` is replaced.

    Args:
        model: The model to export (dropout is off in the exported functions).
        export_dir: Destination folder.
        k: Number of items of `serving_default` (capped at max_item).

    Returns:
        `export_dir`.

    Raises:
        ValueError: If k < 1.
    """
    if k < 1:
        raise ValueError(f"`k` must be >= 1, got {k}.")
    num_items = model.max_item
    k = min(k, num_items)
    encoder = model.encoder

    def scores(item_ids: tf.Tensor) -> tf.Tensor:
        representation = encoder(item_ids, training=False)
        # The item universe is frozen at export time, so the output width is static.
        rows = encoder.item_embeddings[1 : num_items + 1]
        logits = tf.matmul(representation, rows, transpose_b=True)
        return encoder.transform_scores(logits)  # as the model's own (STAMP's sigmoid)

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
