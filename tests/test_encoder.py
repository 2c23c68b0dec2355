"""SessionEncoder, the base of every encoder: shared argument checks, config and score hook."""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from ader_tf.models import (
    GRU4RecEncoder,
    SASRecEncoder,
    SessionEncoder,
    SessionRecommender,
    STAMPEncoder,
)
from ader_tf.models.encoder import check_count, check_rate

ENCODERS = [SASRecEncoder, GRU4RecEncoder, STAMPEncoder]
TINY = {"num_items": 10, "hidden_units": 4, "maxlen": 3}


@pytest.mark.parametrize("cls", [SessionEncoder, *ENCODERS])
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_items": 0}, "`num_items` must be >= 1, got 0."),
        ({"hidden_units": -2}, "`hidden_units` must be >= 1, got -2."),
        ({"maxlen": 0}, "`maxlen` must be >= 1, got 0."),
        ({"dropout_rate": 1.0}, "`dropout_rate` must be in [0, 1), got 1.0."),
        ({"dropout_rate": -0.1}, "`dropout_rate` must be in [0, 1), got -0.1."),
    ],
)
def test_shared_arguments_are_checked(
    cls: type[SessionEncoder], kwargs: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        cls(**(TINY | kwargs))


def test_check_helpers_name_the_argument_and_value() -> None:
    check_count("num_blocks", 0, minimum=0)
    check_rate("rate", 0.0)
    with pytest.raises(ValueError, match=re.escape("`num_blocks` must be >= 0, got -1.")):
        check_count("num_blocks", -1, minimum=0)
    with pytest.raises(ValueError, match=re.escape("`rate` must be in [0, 1), got 1.5.")):
        check_rate("rate", 1.5)


def test_base_holds_the_shared_arguments_and_leaves_call_to_subclasses() -> None:
    encoder = SessionEncoder(7, hidden_units=4, maxlen=3, dropout_rate=0.25, seed=2)
    config = encoder.get_config()
    expected = {"num_items": 7, "hidden_units": 4, "maxlen": 3, "dropout_rate": 0.25, "seed": 2}
    assert {k: config[k] for k in expected} == expected
    assert (encoder.num_items, encoder.hidden_units, encoder.maxlen) == (7, 4, 3)
    with pytest.raises(NotImplementedError, match="SessionEncoder"):
        encoder.call(tf.ones([1, 2], tf.int32))


@pytest.mark.parametrize("cls", ENCODERS)
def test_encoders_are_session_encoders(cls: type[SessionEncoder]) -> None:
    assert issubclass(cls, SessionEncoder)
    encoder = cls(**TINY)
    assert isinstance(encoder, SessionEncoder)
    assert isinstance(encoder, keras.layers.Layer)
    assert tuple(encoder.item_embeddings.shape) == (11, 4)


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (SessionEncoder, {}),
        (SASRecEncoder, {}),
        (GRU4RecEncoder, {}),
        (STAMPEncoder, {"output_activation": "none"}),
    ],
)
def test_transform_scores_is_the_identity_by_default(
    cls: type[SessionEncoder], kwargs: dict
) -> None:
    logits = tf.constant([[-3.0, 0.0, 2.5]])
    np.testing.assert_array_equal(cls(**TINY, **kwargs).transform_scores(logits), logits)


def test_stamp_overrides_transform_scores() -> None:
    logits = tf.constant([[-3.0, 0.0, 2.5]])
    encoder = STAMPEncoder(**TINY, output_activation="sigmoid")
    np.testing.assert_allclose(encoder.transform_scores(logits), tf.sigmoid(logits), atol=0)


def test_recommender_refuses_a_layer_that_is_not_an_encoder() -> None:
    with pytest.raises((TypeError, ValueError), match="encoder"):
        SessionRecommender(keras.layers.Dense(3))
