"""Converts a checkpoint of the reference TF1 code into a SavedModel and a `.keras` model.

Usage:
    python -m ader_tf.convert --checkpoint=PATH --output_dir=DIR [--num_heads=1] [--k=20]

PATH is a checkpoint prefix (e.g. `model/period1/epoch=3.ckpt`) or a folder holding a TF1
`checkpoint` file. Items, width, length and blocks are read from the variable shapes; the number
of heads is not recorded in a checkpoint and comes from the flag. Writes `DIR/saved_model/`
(see `ader_tf.export`) and `DIR/model.keras`.
"""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np
import tensorflow as tf
from absl import app, flags

from ader_tf.models.recommender import SessionRecommender
from ader_tf.models.sasrec import SASRecEncoder

_PREFIX = "SASRec/"
_ITEM_TABLE = _PREFIX + "input_embeddings/lookup_table"
_POSITION_TABLE = _PREFIX + "dec_pos/lookup_table"
_BLOCK = re.compile(r"^SASRec/num_blocks_(\d+)/")


def _reader(checkpoint: str) -> tf.train.CheckpointReader:
    if os.path.isdir(checkpoint):
        latest = tf.train.latest_checkpoint(checkpoint)
        if latest is None:
            raise ValueError(f"no checkpoint found in folder {checkpoint!r}.")
        checkpoint = latest
    return tf.train.load_checkpoint(checkpoint)


def infer_config(shapes: dict[str, list[int]]) -> dict[str, int]:
    """Reads num_items, hidden_units, maxlen and num_blocks off the reference variable shapes.

    Raises:
        ValueError: If the variables of a reference SASRec checkpoint are missing.
    """
    for name in (_ITEM_TABLE, _POSITION_TABLE):
        if name not in shapes:
            raise ValueError(f"not a reference SASRec checkpoint: no variable {name!r}.")
    rows, hidden_units = shapes[_ITEM_TABLE]
    maxlen, width = shapes[_POSITION_TABLE]
    if width != hidden_units:
        raise ValueError(f"item width {hidden_units} != positional width {width}.")
    blocks = {int(m.group(1)) for name in shapes if (m := _BLOCK.match(name))}
    if blocks != set(range(len(blocks))):
        raise ValueError(f"block indices are not 0..n-1: {sorted(blocks)}.")
    return {
        "num_items": rows - 1,
        "hidden_units": hidden_units,
        "maxlen": maxlen,
        "num_blocks": len(blocks),
    }


def _variable_map(encoder: SASRecEncoder) -> dict[str, tuple[Any, bool]]:
    """Reference variable name -> (our variable, whether to drop a leading conv1d axis)."""
    mapping: dict[str, tuple[Any, bool]] = {
        _ITEM_TABLE: (encoder.item_embeddings, False),
        _POSITION_TABLE: (encoder.position_embeddings, False),
        _PREFIX + "ln/Variable": (encoder.final_norm.beta, False),
        _PREFIX + "ln/Variable_1": (encoder.final_norm.gamma, False),
    }
    for i, block in enumerate(encoder.blocks):
        scope = f"{_PREFIX}num_blocks_{i}/"
        for norm, name in ((block.attention_norm, "ln"), (block.ffn_norm, "ln_1")):
            mapping[f"{scope}{name}/Variable"] = (norm.beta, False)
            mapping[f"{scope}{name}/Variable_1"] = (norm.gamma, False)
        attention = block.attention
        dense = (
            (attention.query_dense, "self_attention/dense"),
            (attention.key_dense, "self_attention/dense_1"),
            (attention.value_dense, "self_attention/dense_2"),
            (block.ffn_inner, "multihead_attention/conv1d"),
            (block.ffn_outer, "multihead_attention/conv1d_1"),
        )
        for layer, name in dense:
            mapping[f"{scope}{name}/kernel"] = (layer.kernel, "conv1d" in name)
            mapping[f"{scope}{name}/bias"] = (layer.bias, False)
    return mapping


def load_original_checkpoint(
    checkpoint: str, num_heads: int = 1, dropout_rate: float = 0.3
) -> SessionRecommender:
    """Builds a `SessionRecommender` with the weights of a reference SASRec checkpoint.

    Args:
        checkpoint: Checkpoint prefix, or a folder with a TF1 `checkpoint` file.
        num_heads: Attention heads the checkpoint was trained with (not stored in it).
        dropout_rate: Dropout for further training (inference never uses it).

    Returns:
        The model, scoring all items of the table (max_item = num_items).

    Raises:
        ValueError: If a variable is missing or has an unexpected shape.
    """
    reader = _reader(checkpoint)
    shapes = reader.get_variable_to_shape_map()
    config = infer_config(shapes)
    encoder = SASRecEncoder(
        num_heads=num_heads, dropout_rate=dropout_rate, name="sasrec_encoder", **config
    )
    model = SessionRecommender(encoder, name="session_recommender")
    for name, (variable, squeeze) in _variable_map(encoder).items():
        if name not in shapes:
            raise ValueError(f"variable {name!r} missing from the checkpoint.")
        value = np.asarray(reader.get_tensor(name))
        if squeeze:
            value = value[0]
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(f"{name!r} has shape {value.shape}, expected {tuple(variable.shape)}.")
        variable.assign(value)
    return model


def convert(checkpoint: str, output_dir: str, num_heads: int = 1, k: int = 20) -> Any:
    """Converts a reference checkpoint into ``output_dir/saved_model`` and ``model.keras``."""
    from ader_tf.export import export_saved_model

    model = load_original_checkpoint(checkpoint, num_heads=num_heads)
    os.makedirs(output_dir, exist_ok=True)
    export_saved_model(model, os.path.join(output_dir, "saved_model"), k=k)
    model.save(os.path.join(output_dir, "model.keras"))
    return model


def _define_flags() -> None:
    """Flags of the command line (defined only when run as a program, not on import)."""
    flags.DEFINE_string("checkpoint", None, "Reference checkpoint prefix or folder.")
    flags.DEFINE_string("output_dir", None, "Where to write saved_model/, model.keras.")
    flags.DEFINE_integer("num_heads", 1, "Attention heads of the checkpoint's model.")
    flags.DEFINE_integer("k", 20, "Items returned by the serving_default signature.")
    flags.mark_flags_as_required(["checkpoint", "output_dir"])


def main(argv: list[str]) -> None:
    del argv
    f = flags.FLAGS
    model = convert(f.checkpoint, f.output_dir, num_heads=f.num_heads, k=f.k)
    encoder = model.encoder
    print(
        f"converted: num_items={encoder.num_items} hidden_units={encoder.hidden_units} "
        f"maxlen={encoder.maxlen} num_blocks={encoder.num_blocks} "
        f"num_heads={encoder.num_heads} -> {f.output_dir}"
    )


if __name__ == "__main__":
    _define_flags()
    app.run(main)
