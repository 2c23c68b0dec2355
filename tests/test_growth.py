"""Item tables that grow: the initialiser's rows, and a grown model carrying everything over."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from ader_tf.continual.artifacts import check_weights_stored
from ader_tf.continual.importance import ImportanceState
from ader_tf.continual.teacher import frozen_teacher
from ader_tf.models.encoder import ItemRowsGlorotUniform
from ader_tf.models.growth import grow_items
from ader_tf.models.gru4rec import GRU4RecEncoder
from ader_tf.models.recommender import SessionRecommender, make_optimizer
from ader_tf.models.sasrec import SASRecEncoder
from ader_tf.models.stamp import STAMPEncoder
from tests.helpers import left_padded

SMALL, LARGE, MAXLEN = 12, 20, 5


def _encoder(backbone: str, num_items: int, init_items: int = SMALL):
    common = dict(hidden_units=8, maxlen=MAXLEN, seed=3, init_items=init_items)
    if backbone == "gru4rec":
        return GRU4RecEncoder(num_items, **common)
    if backbone == "stamp":
        return STAMPEncoder(num_items, **common)
    return SASRecEncoder(num_items, num_blocks=1, dropout_rate=0.0, **common)


def _model(backbone: str, num_items: int) -> SessionRecommender:
    model = SessionRecommender(_encoder(backbone, num_items))
    model.compile(optimizer=make_optimizer(1e-2))
    model.build_all(MAXLEN)
    return model


def _batches(num_items: int, seed: int, steps: int = 3):
    """Training batches whose items (inputs and targets) are all in 1..num_items."""
    rng = np.random.default_rng(seed)
    ids = left_padded(rng, list(rng.integers(1, MAXLEN + 1, 16 * steps)), MAXLEN, num_items)
    targets = rng.integers(1, num_items + 1, 16 * steps).astype(np.int32)
    return tf.data.Dataset.from_tensor_slices(({"item_ids": ids}, targets)).batch(16)


def _values(variables) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(v) for v in variables]


# === The initialiser ===


def test_item_rows_initialiser_is_glorot_when_the_table_has_its_rows():
    expected = keras.initializers.GlorotUniform(7)((101, 16))
    actual = ItemRowsGlorotUniform(101, seed=7)((101, 16))
    np.testing.assert_array_equal(np.asarray(actual), np.asarray(expected))


def test_item_rows_do_not_depend_on_the_tables_size():
    small = np.asarray(ItemRowsGlorotUniform(101, seed=7)((40, 16)))
    large = np.asarray(ItemRowsGlorotUniform(101, seed=7)((400, 16)))
    np.testing.assert_array_equal(large[:40], small)
    # The limit is that of 101 rows, not of the 400 drawn (Glorot's own would be 0.12).
    limit = np.sqrt(6.0 / (101 + 16))
    assert limit * 0.95 < np.abs(large).max() <= limit


def test_encoders_keep_init_items_through_their_config():
    encoder = _encoder("sasrec", LARGE, init_items=SMALL)
    assert type(encoder).from_config(encoder.get_config()).init_items == SMALL
    assert _encoder("sasrec", LARGE, init_items=None).init_items == LARGE


# === Growing a model ===


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec", "stamp"])
def test_growth_carries_every_weight_and_optimizer_slot(backbone):
    model = _model(backbone, SMALL)
    model.fit(_batches(SMALL, 0), epochs=1, verbose=0, shuffle=False)
    grown = grow_items(model, LARGE)

    assert grown.encoder.num_items == LARGE and grown.max_item == model.max_item
    tables = {id(t) for t in model.encoder.item_tables()}
    fresh = _encoder(backbone, LARGE)  # what a table made at the larger size holds
    fresh_tables = _values(fresh.item_tables())
    grown_tables = _values(grown.encoder.item_tables())
    assert len(grown_tables) == (2 if backbone == "gru4rec" else 1)
    for old, new, initial in zip(_values(model.encoder.item_tables()), grown_tables,
                                 fresh_tables, strict=True):
        np.testing.assert_array_equal(new[: SMALL + 1], old)
        np.testing.assert_array_equal(new[SMALL + 1 :], initial[SMALL + 1 :])
    others = [v for v in model.encoder.weights if id(v) not in tables]
    grown_tables_ids = {id(t) for t in grown.encoder.item_tables()}
    grown_others = [v for v in grown.encoder.weights if id(v) not in grown_tables_ids]
    for old, new in zip(_values(others), _values(grown_others), strict=True):
        np.testing.assert_array_equal(new, old)

    assert int(grown.optimizer.iterations) == int(model.optimizer.iterations) == 3
    padded = 0
    for old, new in zip(_values(model.optimizer.variables), _values(grown.optimizer.variables),
                        strict=True):
        if old.shape != new.shape:
            padded += 1
            np.testing.assert_array_equal(new[: SMALL + 1], old)
            assert not new[SMALL + 1 :].any()  # no past gradient for a new row
        else:
            np.testing.assert_array_equal(new, old)
    assert padded == 2 * len(grown_tables)  # Adam's two moments per table
    assert grow_items(grown, LARGE) is grown
    with pytest.raises(ValueError, match="cannot shrink"):
        grow_items(grown, SMALL)


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec"])
def test_a_grown_model_trains_as_one_that_had_the_large_table_all_along(backbone):
    """Rows of items not yet seen get no gradient and Adam leaves them as they are, so
    growing later equals building the large table at the start."""
    small, large = _model(backbone, SMALL), _model(backbone, LARGE)
    large.set_max_item(SMALL)
    for model in (small, large):
        model.fit(_batches(SMALL, 0), epochs=1, verbose=0, shuffle=False)
    grown = grow_items(small, LARGE)
    for model in (grown, large):
        model.set_max_item(LARGE)
        model.fit(_batches(LARGE, 1), epochs=1, verbose=0, shuffle=False)
    for a, b in zip(_values(grown.variables), _values(large.variables), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(_values(grown.optimizer.variables), _values(large.optimizer.variables),
                    strict=True):
        np.testing.assert_array_equal(a, b)


# === What continual methods keep across growth ===


def test_a_teacher_is_remade_when_the_students_tables_grew():
    student = _model("sasrec", SMALL)
    teacher = frozen_teacher(student, SMALL)
    assert frozen_teacher(student, SMALL, reuse=teacher) is teacher
    grown = grow_items(student, LARGE)
    bigger = frozen_teacher(grown, SMALL, reuse=teacher)
    assert bigger is not teacher and bigger.encoder.num_items == LARGE
    assert bigger.max_item == SMALL


def test_the_checkpoint_check_accepts_a_grown_table_and_only_if_its_rows_match(tmp_path):
    model = _model("sasrec", SMALL)
    prefix = tf.train.Checkpoint(model=model, optimizer=model.optimizer).write(
        str(tmp_path / "ckpt"))
    grown = grow_items(model, LARGE)
    check_weights_stored(grown.encoder, prefix)
    table = grown.encoder.item_embeddings
    table.assign(tf.tensor_scatter_nd_add(table, [[1]], tf.ones([1, 8])))
    with pytest.raises(AssertionError, match="item_embeddings"):
        check_weights_stored(grown.encoder, prefix)


def test_importance_fits_a_grown_table_without_penalising_new_rows():
    model = _model("sasrec", SMALL)
    variables = model.trainable_variables
    state = ImportanceState(
        importance=tuple(tf.ones_like(v) for v in variables),
        anchor=tuple(tf.convert_to_tensor(v) for v in variables),
        num_examples=4,
    )
    grown = grow_items(model, LARGE)
    fitted = state.fit_to(grown.trainable_variables)
    fitted.check_matches(grown.trainable_variables)
    index = [i for i, v in enumerate(grown.trainable_variables)
             if v is grown.encoder.item_embeddings][0]
    importance = np.asarray(fitted.importance[index])
    assert importance[: SMALL + 1].all() and not importance[SMALL + 1 :].any()
    np.testing.assert_array_equal(np.asarray(fitted.anchor[index]),
                                  keras.ops.convert_to_numpy(grown.encoder.item_embeddings))
    with pytest.raises(ValueError, match="importance is for shape"):
        fitted.fit_to(variables)  # a smaller model than the state's
