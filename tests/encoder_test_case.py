"""Checks that every `SessionEncoder` must pass, run by each encoder's test module.

`run_encoder_test(cls, init_kwargs, tmp_path)` builds the encoder from `init_kwargs` and checks,
each on a fresh instance: its config, a `.keras` round trip, left-padding invariance, seeded
dropout, the SavedModel export of a `SessionRecommender` around it, and that a few `fit`
epochs on a patterned dataset lower the loss. The checks are also callable one by one.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ader_tf.data.examples import examples_from_sessions
from ader_tf.export import export_saved_model
from ader_tf.models.encoder import SessionEncoder
from ader_tf.models.recommender import SessionRecommender, make_optimizer
from ader_tf.random_streams import RandomStreams
from tests.helpers import left_padded, patterned_sessions, randomize

# Keys that `keras.layers.Layer.get_config` adds to every layer's config.
_LAYER_KEYS = frozenset(keras.layers.Layer().get_config())


def run_encoder_test(
    cls: type[SessionEncoder],
    init_kwargs: dict[str, Any],
    tmp_path: Any,
    *,
    learning_rate: float = 1e-2,
    epochs: int = 4,
    min_loss_drop: float = 0.1,
) -> dict[str, float]:
    """Runs every generic encoder check on `cls(**init_kwargs)`.

    Args:
        cls: The encoder class.
        init_kwargs: Constructor arguments; keep the model tiny and seeded.
        tmp_path: Folder for the saved files (pytest's `tmp_path`).
        learning_rate: Learning rate of the fitting check.
        epochs: Epochs of the fitting check.
        min_loss_drop: Relative drop of the training loss the fitting check requires.

    Returns:
        The fitting check's mean training loss before and after, as `loss_before` and
        `loss_after`, for encoder-specific assertions.
    """
    check_config_round_trip(cls, init_kwargs)
    check_keras_round_trip(cls, init_kwargs, os.path.join(tmp_path, "model.keras"))
    check_padding_invariance(cls, init_kwargs)
    check_seeded_dropout(cls, init_kwargs)
    check_saved_model_export(cls, init_kwargs, os.path.join(tmp_path, "saved_model"))
    before, after = check_fit_lowers_loss(cls, init_kwargs, learning_rate, epochs, min_loss_drop)
    return {"loss_before": before, "loss_after": after}


def sample_ids(encoder: SessionEncoder, seed: int = 0) -> np.ndarray:
    """Random left-padded ids [6, maxlen]: sessions of 1, 2, 3 and up to maxlen items."""
    maxlen = encoder.maxlen
    lengths = [max(1, min(n, maxlen)) for n in (1, 2, maxlen, 3, maxlen - 1, 2)]
    return left_padded(np.random.default_rng(seed), lengths, encoder.maxlen, encoder.num_items)


def check_config_round_trip(cls: type[SessionEncoder], init_kwargs: dict[str, Any]) -> None:
    """The config holds exactly the constructor's arguments and rebuilds the same encoder."""
    encoder = cls(**init_kwargs)
    assert isinstance(encoder, SessionEncoder)
    assert keras.saving.get_registered_name(cls) == f"ader_tf>{cls.__name__}"
    config = encoder.get_config()
    parameters = inspect.signature(cls.__init__).parameters.values()
    arguments = {p.name for p in parameters if p.name != "self" and p.kind != p.VAR_KEYWORD}
    assert set(config) - _LAYER_KEYS == arguments
    for name, value in init_kwargs.items():
        assert config[name] == value, name

    restored = cls.from_config(config)
    assert restored.get_config() == config
    # Same variables in the same order: checkpoints and `set_weights` rely on it.
    assert [v.path for v in restored.weights] == [v.path for v in encoder.weights]
    assert [v.shape for v in restored.weights] == [v.shape for v in encoder.weights]
    model = SessionRecommender(encoder)
    assert SessionRecommender.from_config(model.get_config()).encoder.get_config() == config

    assert tuple(encoder.item_embeddings.shape) == (encoder.num_items + 1, encoder.hidden_units)
    vectors = encoder(sample_ids(encoder))
    assert tuple(vectors.shape) == (6, encoder.hidden_units)


def check_keras_round_trip(
    cls: type[SessionEncoder], init_kwargs: dict[str, Any], path: str
) -> None:
    """A compiled `SessionRecommender` saved to `path` (.keras) loads with the same logits."""
    model = SessionRecommender(cls(**init_kwargs))
    randomize(model)
    model.set_max_item(model.encoder.num_items - 3)
    model.compile(optimizer=make_optimizer())
    model.build_all()  # the optimizer's slots too, so that they are saved and restored
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, SessionRecommender) and type(loaded.encoder) is cls
    assert loaded.encoder.get_config() == model.encoder.get_config()
    assert loaded.max_item == model.max_item
    ids = sample_ids(model.encoder)
    np.testing.assert_allclose(loaded.predict_logits(ids), model.predict_logits(ids), atol=0)


def check_padding_invariance(cls: type[SessionEncoder], init_kwargs: dict[str, Any]) -> None:
    """Left padding changes no session vector; rows longer than maxlen keep their last items."""
    encoder = cls(**init_kwargs)
    randomize(encoder)
    maxlen = encoder.maxlen
    ids = sample_ids(encoder, seed=1)
    expected = encoder(ids, training=False).numpy()
    lengths = np.count_nonzero(ids, axis=1)
    for row, length in enumerate(lengths):
        alone = encoder(ids[row : row + 1, maxlen - length :], training=False).numpy()
        np.testing.assert_allclose(alone[0], expected[row], atol=1e-5)
    wider = np.concatenate([np.zeros((len(ids), 3), np.int32), ids], axis=1)
    np.testing.assert_allclose(encoder(wider, training=False).numpy(), expected, atol=1e-5)

    rng = np.random.default_rng(2)
    longer = np.concatenate([rng.integers(1, encoder.num_items + 1, (len(ids), 3)), ids], axis=1)
    longer[:, 3:] = np.where(ids == 0, 1, ids)  # padding inside a long row becomes an item
    np.testing.assert_allclose(
        encoder(longer.astype(np.int32), training=False).numpy(),
        encoder(longer[:, -maxlen:].astype(np.int32), training=False).numpy(),
        atol=1e-5,
    )


def check_seeded_dropout(cls: type[SessionEncoder], init_kwargs: dict[str, Any]) -> None:
    """Dropout acts only in training, and `reseed_dropout` fixes its masks (resumed runs).

    Does nothing for an encoder configured without dropout.
    """
    encoder = cls(**init_kwargs)
    dropouts = [
        layer
        for layer in encoder._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.Dropout) and layer.rate > 0
    ]
    if not dropouts:
        return
    model = SessionRecommender(encoder)
    randomize(model)  # away from tiny initial values, where any two outputs are close
    ids = sample_ids(encoder, seed=3)
    inference = model.represent(ids).numpy()
    def states(seed: int) -> Callable[[int], tuple[int, int]]:
        return lambda layer: RandomStreams(seed).tf_seed_pair("dropout", 1, layer)

    model.reseed_dropout(states(11))
    first = model.represent(ids, training=True).numpy()
    model.represent(ids, training=True)  # advances the generators
    model.reseed_dropout(states(11))
    np.testing.assert_array_equal(model.represent(ids, training=True).numpy(), first)
    model.reseed_dropout(states(12))
    assert not np.allclose(model.represent(ids, training=True).numpy(), first)
    assert not np.allclose(first, inference)
    # Inference draws no noise: the generators' state does not reach it.
    np.testing.assert_array_equal(model.represent(ids).numpy(), inference)


def check_saved_model_export(
    cls: type[SessionEncoder], init_kwargs: dict[str, Any], path: str
) -> None:
    """The SavedModel of a `SessionRecommender` around the encoder serves the model's scores."""
    model = SessionRecommender(cls(**init_kwargs))
    randomize(model)
    model.set_max_item(model.encoder.num_items - 2)
    loaded = tf.saved_model.load(export_saved_model(model, path, k=3))
    ids = sample_ids(model.encoder, seed=4)
    # One [None, None] int32 signature serves every batch size and width.
    for batch in (ids, ids[:2, -2:], np.pad(ids[:3], [(0, 0), (2, 0)])):
        served = loaded.signatures["scores"](item_ids=tf.constant(batch))["scores"].numpy()
        np.testing.assert_allclose(served, model.predict_logits(batch).numpy(), atol=1e-5)


def check_fit_lowers_loss(
    cls: type[SessionEncoder],
    init_kwargs: dict[str, Any],
    learning_rate: float = 1e-2,
    epochs: int = 4,
    min_loss_drop: float = 0.1,
) -> tuple[float, float]:
    """A few `fit` epochs on learnable sessions lower the mean training loss.

    Returns:
        (mean loss before, mean loss after), dropout off.
    """
    model = SessionRecommender(cls(**init_kwargs))
    model.compile(optimizer=make_optimizer(learning_rate))
    sessions = patterned_sessions(60, num_items=model.encoder.num_items)
    examples = examples_from_sessions(sessions, model.encoder.maxlen)
    features = {"item_ids": examples.inputs}
    before = float(np.mean(model.per_example_loss(features, examples.targets)))
    data = tf.data.Dataset.from_tensor_slices((features, examples.targets))
    model.fit(data.shuffle(256, seed=0).batch(32), epochs=epochs, verbose=0, shuffle=False)
    after = float(np.mean(model.per_example_loss(features, examples.targets)))
    assert after < (1.0 - min_loss_drop) * before, (before, after)
    return before, after
