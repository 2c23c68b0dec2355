"""GRU4Rec encoder: padding invariance, step == call, serialisation, export and fitting."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from ader_tf.data.examples import examples_from_sessions
from ader_tf.data.periods import Sessions
from ader_tf.export import export_saved_model
from ader_tf.models.gru4rec import GRU4RecEncoder
from ader_tf.models.recommender import SessionRecommender, make_optimizer

NUM_ITEMS, HIDDEN, MAXLEN = 20, 8, 6


def tiny_encoder(**kwargs) -> GRU4RecEncoder:
    args = {"hidden_units": HIDDEN, "num_layers": 2, "maxlen": MAXLEN, "seed": 1}
    return GRU4RecEncoder(NUM_ITEMS, **(args | kwargs))


def left_padded(sessions: list[list[int]], width: int) -> np.ndarray:
    ids = np.zeros((len(sessions), width), np.int32)
    for row, session in enumerate(sessions):
        if session:
            ids[row, width - len(session) :] = session
    return ids


def patterned_sessions(num_sessions: int, seed: int = 0) -> Sessions:
    """Sessions that walk 1 -> 2 -> ... (mod NUM_ITEMS) from a random start: learnable."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 7, num_sessions)
    starts = rng.integers(0, NUM_ITEMS, num_sessions)
    items = np.concatenate([(s + np.arange(n)) % NUM_ITEMS + 1 for s, n in zip(starts, lengths)])
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return Sessions(items.astype(np.int32), offsets)


SESSIONS = [[3], [4, 5], [6, 7, 8], [9, 10, 11, 12, 13, 14], [1, 2, 3, 4]]


def test_left_padding_and_width_do_not_change_the_vector() -> None:
    encoder = tiny_encoder()
    padded = encoder(left_padded(SESSIONS, MAXLEN)).numpy()
    for row, session in enumerate(SESSIONS):
        alone = encoder(np.array([session], np.int32)).numpy()
        np.testing.assert_allclose(padded[row], alone[0], atol=1e-6)
    # Extra padding columns change nothing; longer rows keep their last maxlen clicks.
    wider = encoder(left_padded(SESSIONS, MAXLEN + 3)).numpy()
    np.testing.assert_allclose(wider, padded, atol=1e-6)
    long_row = np.array([[7, 8, 9] + SESSIONS[3]], np.int32)
    np.testing.assert_allclose(encoder(long_row).numpy()[0], padded[3], atol=1e-6)
    # An all-padding row gives zeros, and the state does not depend on the batch.
    np.testing.assert_array_equal(encoder(np.zeros((1, 4), np.int32)).numpy(), 0.0)


def test_step_loop_equals_call() -> None:
    encoder = tiny_encoder(num_layers=3)
    for session in SESSIONS:
        states = encoder.initial_state(1)
        for item in session:
            output, states = encoder.step(np.array([item], np.int32), states)
        expected = encoder(np.array([session], np.int32)).numpy()
        np.testing.assert_allclose(output.numpy(), expected, atol=1e-6)
        np.testing.assert_allclose(states[-1].numpy(), expected, atol=1e-6)


def test_dropout_is_seeded_and_only_in_training() -> None:
    encoder = tiny_encoder(dropout_rate=0.5, embedding_dropout=0.3)
    ids = left_padded(SESSIONS, MAXLEN)
    inference = encoder(ids).numpy()
    np.testing.assert_array_equal(encoder(ids, training=False).numpy(), inference)
    model = SessionRecommender(encoder)
    model.reseed_dropout(3)
    first = encoder(ids, training=True).numpy()
    model.reseed_dropout(3)
    np.testing.assert_array_equal(encoder(ids, training=True).numpy(), first)
    assert not np.allclose(first, inference)


def test_constructor_validation_and_config_round_trip() -> None:
    encoder = tiny_encoder(dropout_rate=0.25, embedding_dropout=0.1)
    config = encoder.get_config()
    keys = {"num_items", "hidden_units", "num_layers", "dropout_rate"}
    keys |= {"embedding_dropout", "maxlen", "seed"}
    assert keys <= set(config)
    restored = GRU4RecEncoder.from_config(config)
    assert restored.get_config() == config
    assert [v.shape for v in restored.weights] == [v.shape for v in encoder.weights]
    assert encoder.item_embeddings.shape == (NUM_ITEMS + 1, HIDDEN)
    for kwargs, match in (
        ({"num_items": 0}, "num_items"),
        ({"num_items": 5, "num_layers": 0}, "num_layers"),
        ({"num_items": 5, "dropout_rate": 1.0}, "dropout_rate"),
        ({"num_items": 5, "embedding_dropout": -0.1}, "embedding_dropout"),
    ):
        with pytest.raises(ValueError, match=match):
            GRU4RecEncoder(**kwargs)


def test_keras_file_and_saved_model_give_the_same_logits(tmp_path) -> None:
    model = SessionRecommender(tiny_encoder(dropout_rate=0.2, seed=5))
    model.set_max_item(17)
    model.compile(optimizer=make_optimizer())
    ids = left_padded(SESSIONS, MAXLEN)
    expected = model.predict_logits(ids).numpy()

    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.encoder, GRU4RecEncoder)
    assert loaded.encoder.get_config() == model.encoder.get_config()
    np.testing.assert_allclose(loaded.predict_logits(ids).numpy(), expected, atol=0)

    # The package's SavedModel export: one [None, None] int32 signature for any batch/width.
    path = export_saved_model(model, os.path.join(tmp_path, "saved"), k=3)
    scores = tf.saved_model.load(path).signatures["scores"]
    for batch in (ids, ids[3:4, -2:]):
        served = scores(item_ids=tf.constant(batch))["scores"].numpy()
        np.testing.assert_allclose(served, model.predict_logits(batch).numpy(), atol=1e-6)


def test_fit_with_full_softmax_lowers_the_loss() -> None:
    examples = examples_from_sessions(patterned_sessions(60), MAXLEN)
    model = SessionRecommender(tiny_encoder(num_layers=1, hidden_units=16))
    model.compile(optimizer=make_optimizer(1e-2))
    data = tf.data.Dataset.from_tensor_slices(
        ({"item_ids": examples.inputs}, examples.targets)
    ).batch(32)
    before = model.evaluate(data, verbose=0, return_dict=True)["loss"]
    model.fit(data, epochs=4, verbose=0)
    after = model.evaluate(data, verbose=0, return_dict=True)["loss"]
    assert after < 0.8 * before, (before, after)
