"""Growing a recommender's item tables when new items arrive, keeping everything it learned."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from ader_tf.models.recommender import SessionRecommender


def grow_items(model: SessionRecommender, num_items: int) -> SessionRecommender:
    """A copy of ``model`` whose item tables have ``num_items + 1`` rows.

    Keras variables cannot change shape, so the copy is a new model of the same encoder
    config with the larger ``num_items``: every weight is copied, the item tables' old rows
    included; the new rows keep the values the encoder's initialiser gives them, which are
    the values a table made at the larger size would hold (see `ItemRowsGlorotUniform`).
    The optimizer is rebuilt from its config and every slot is copied, the item tables'
    slots padded with zeros (a new row has no past gradient); its step count carries over.
    Call it inside the strategy scope the model was made in.

    Args:
        model: A built recommender (compiled, if its optimizer state is to carry over).
        num_items: The new largest item id, at least the current one.

    Returns:
        ``model`` itself if its tables already have ``num_items + 1`` rows, else the copy.

    Raises:
        ValueError: If ``num_items`` is smaller than the model's, or the copy's variables do
            not line up with the model's (which would be a bug in an encoder's `build`).
    """
    old_items = model.encoder.num_items
    if num_items < old_items:
        raise ValueError(f"cannot shrink the item tables from {old_items} to {num_items} items")
    if num_items == old_items:
        return model
    config = dict(model.encoder.get_config(), num_items=int(num_items))
    config.pop("name", None)  # a fresh layer name: two live layers may not share one
    grown = SessionRecommender(type(model.encoder).from_config(config))
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None:
        grown.compile(optimizer=type(optimizer).from_config(optimizer.get_config()))
    grown.build_all(model.encoder.maxlen)
    _copy_padded(model.variables, grown.variables, new_rows="initial")
    if optimizer is not None:
        _copy_padded(optimizer.variables, grown.optimizer.variables, new_rows="zeros")
    grown.set_max_item(model.max_item)
    return grown


def padded_rows(value: Any, target: Any, new_rows: str) -> np.ndarray:
    """``value`` with rows appended up to ``target``'s shape (a grown item table's).

    The added rows are ``target``'s own rows there (``new_rows="initial"``) or zeros
    (``"zeros"``). ``value`` already of ``target``'s shape comes back as it is.

    Raises:
        ValueError: If the shapes differ other than by rows added to ``target``.
    """
    value = keras.ops.convert_to_numpy(value)
    shape = tuple(target.shape)
    if value.shape == shape:
        return value
    if value.shape[1:] != shape[1:] or value.shape[0] > shape[0]:
        raise ValueError(f"cannot fit {value.shape} to {shape}")
    tail = (keras.ops.convert_to_numpy(target)[value.shape[0]:] if new_rows == "initial"
            else np.zeros((shape[0] - value.shape[0], *shape[1:]), value.dtype))
    return np.concatenate([value, tail])


def _copy_padded(sources: list[Any], targets: list[Any], new_rows: str) -> None:
    """Assigns each source to its target, padded to its rows as `padded_rows` says."""
    if len(sources) != len(targets):
        raise ValueError(f"{len(sources)} variables to copy into {len(targets)}")
    for source, target in zip(sources, targets, strict=True):
        try:
            target.assign(padded_rows(source, target, new_rows))
        except ValueError as e:
            raise ValueError(f"cannot copy {source.path} into {target.path}: {e}") from e


def table_items(current: int, needed: int, growth: float, limit: int | None = None) -> int:
    """Items the item tables hold after a cycle that needs ``needed`` (tables hold ``current``).

    Tables that are too small grow ``growth`` times (never beyond ``limit``, never below
    ``needed``), so a stream whose item set grows every cycle rebuilds its model, and retraces
    its functions, about log(final / first) / log(growth) times instead of every cycle.
    TensorFlow keeps some native memory for every trace it frees, so each rebuild costs memory
    for the rest of the run (`benchmarks/memory_over_cycles.py`). Rows beyond the largest item
    seen change no result: scores stop at ``max_item``, and a row that no example touches keeps
    its initial values and zero Adam moments, as a row added later starts with.
    """
    if needed <= current:
        return current
    grown = int(np.ceil(current * growth))
    if limit is not None:
        grown = min(grown, limit)
    return max(needed, grown)
