"""STAMP / STMP encoder: hand-computed values, padding, serialisation, the score hook, training."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from ader_tf.data.examples import examples_from_sessions
from ader_tf.data.periods import group_sessions
from ader_tf.export import export_saved_model
from ader_tf.models.recommender import SessionRecommender, make_optimizer
from ader_tf.models.stamp import STAMPEncoder

NUM_ITEMS, MAXLEN = 20, 5


def tiny_model(attention: bool = True, seed: int = 1, **kwargs) -> SessionRecommender:
    kwargs = {"num_items": NUM_ITEMS, "hidden_units": 8, "maxlen": MAXLEN, **kwargs}
    return SessionRecommender(STAMPEncoder(attention=attention, seed=seed, **kwargs))


def randomize(model: SessionRecommender, seed: int = 0) -> None:
    """Values far from the tiny initialisation, so every term matters."""
    rng = np.random.default_rng(seed)
    for v in model.trainable_variables:
        v.assign((rng.standard_normal(v.shape) * 0.5).astype(np.float32))


def left_padded(rng: np.random.Generator, lengths: list[int], width: int) -> np.ndarray:
    ids = np.zeros((len(lengths), width), np.int32)
    for row, length in enumerate(lengths):
        ids[row, width - length :] = rng.integers(1, NUM_ITEMS + 1, length)
    return ids


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


# === Hand-computed values ===


def test_stmp_vector_by_hand() -> None:
    encoder = STAMPEncoder(4, hidden_units=2, attention=False, maxlen=4)
    table = np.array([[9, 9], [0.5, -1.0], [1.0, 0.5], [-0.5, 0.25], [0.2, 0.3]], np.float32)
    encoder.item_embeddings.assign(table)  # row 0 (padding) must not matter
    encoder.session_mlp.set_weights([np.array([[1, 0], [0, 2]], np.float32), np.array([0.1, 0.0])])
    encoder.last_mlp.set_weights([np.array([[0, 1], [1, 0]], np.float32), np.array([0.0, -0.2])])
    # m_s = mean(x1, x2, x3) = [1/3, -1/12]; m_t = x3 = [-0.5, 0.25]
    # h_s = tanh([1/3 + 0.1, 2 * -1/12]); h_t = tanh([0.25, -0.5 - 0.2])
    h_s = np.tanh([1 / 3 + 0.1, -1 / 6])
    h_t = np.tanh([0.25, -0.7])
    vector = encoder(np.array([[0, 1, 2, 3]], np.int32)).numpy()
    np.testing.assert_allclose(vector[0], h_s * h_t, atol=1e-6)

    model = SessionRecommender(encoder)
    trilinear = [(h_s * h_t * table[i]).sum() for i in range(1, 5)]  # <h_s, h_t, x_i>
    np.testing.assert_allclose(model.predict_logits([[0, 1, 2, 3]])[0], trilinear, atol=1e-6)
    paper = SessionRecommender(
        STAMPEncoder.from_config({**encoder.get_config(), "output_activation": "sigmoid"})
    )
    paper.set_weights(model.get_weights())
    np.testing.assert_allclose(
        paper.predict_logits([[0, 1, 2, 3]])[0], sigmoid(trilinear), atol=1e-6
    )


def test_stamp_attention_by_hand() -> None:
    encoder = STAMPEncoder(3, hidden_units=2, attention=True, maxlen=4)
    table = np.array([[5, -5], [1, 0], [0, 1], [1, 1]], np.float32)
    encoder.item_embeddings.assign(table)
    eye = np.eye(2, dtype=np.float32)
    encoder.attention_item.set_weights([eye, np.array([0.0, -1.0], np.float32)])  # W_1, b_a
    encoder.attention_last.set_weights([np.array([[0.5, 0], [0, 0]], np.float32)])  # W_2
    encoder.attention_session.set_weights([np.array([[0, 0], [0, 1]], np.float32)])  # W_3
    encoder.attention_score.set_weights([np.array([[1.0], [2.0]], np.float32)])  # w_0
    for mlp in (encoder.session_mlp, encoder.last_mlp):
        mlp.set_weights([eye, np.zeros(2, np.float32)])
    # x_t = [1, 1], m_s = [2/3, 2/3]: W_2 x_t + W_3 m_s + b_a = [0.5, 2/3 - 1]
    # W_1 x_i + that: [1.5, -1/3], [0.5, 2/3], [1.5, 2/3]; alpha_i = s(a) + 2 s(b)
    alpha = np.array(
        [
            sigmoid(1.5) + 2 * sigmoid(-1 / 3),
            sigmoid(0.5) + 2 * sigmoid(2 / 3),
            sigmoid(1.5) + 2 * sigmoid(2 / 3),
        ]
    )
    ids = np.array([[0, 1, 2, 3]], np.int32)
    np.testing.assert_allclose(encoder.attention_weights(ids).numpy()[0], [0.0, *alpha], atol=1e-6)
    m_a = alpha @ table[1:]  # sum_i alpha_i x_i
    np.testing.assert_allclose(
        encoder(ids).numpy()[0], np.tanh(m_a) * np.tanh([1.0, 1.0]), atol=1e-6
    )


# === Padding, widths, tracing ===


@pytest.mark.parametrize("attention", [True, False])
def test_left_padding_and_width_do_not_change_results(attention: bool) -> None:
    model = tiny_model(attention)
    randomize(model)
    rng = np.random.default_rng(3)
    lengths = [1, 2, 5, 3, 4]
    full = left_padded(rng, lengths, MAXLEN)
    expected = model.predict_logits(full).numpy()
    for row, length in enumerate(lengths):
        alone = model.predict_logits(full[row : row + 1, MAXLEN - length :]).numpy()
        np.testing.assert_allclose(alone[0], expected[row], atol=1e-5)
    wider = np.concatenate([np.zeros((5, 3), np.int32), full], axis=1)
    np.testing.assert_allclose(model.predict_logits(wider).numpy(), expected, atol=1e-6)
    # Rows longer than maxlen keep their last maxlen items.
    long_rows = np.concatenate([rng.integers(1, NUM_ITEMS + 1, (5, 3)), full], axis=1)
    long_rows[:, 3:] = np.where(full == 0, 7, full)
    np.testing.assert_allclose(
        model.predict_logits(long_rows).numpy(),
        model.predict_logits(long_rows[:, -MAXLEN:]).numpy(),
        atol=1e-6,
    )
    # One compiled function ([None, None] int32) served every batch size and width.
    assert model._compiled["logits"].experimental_get_tracing_count() == 1


# === Configuration and serialisation ===


def test_constructor_validation() -> None:
    for kwargs, quoted in (
        ({"num_items": 0}, "0"),
        ({"hidden_units": -2}, "-2"),
        ({"maxlen": 0}, "0"),
        ({"dropout_rate": 1.5}, "1.5"),
        ({"output_activation": "softmax"}, "softmax"),
        ({"attention": "yes"}, "yes"),
    ):
        with pytest.raises(ValueError, match=quoted):
            STAMPEncoder(**{"num_items": 10, **kwargs})


def test_config_round_trip() -> None:
    encoder = STAMPEncoder(
        12,
        hidden_units=6,
        attention=False,
        maxlen=7,
        dropout_rate=0.2,
        seed=3,
        output_activation="sigmoid",
        name="stmp",
    )
    config = encoder.get_config()
    arguments = {
        "num_items",
        "hidden_units",
        "attention",
        "maxlen",
        "dropout_rate",
        "seed",
        "output_activation",
    }
    assert arguments <= set(config)
    assert STAMPEncoder.from_config(config).get_config() == config
    model = SessionRecommender(encoder)
    assert SessionRecommender.from_config(model.get_config()).encoder.get_config() == config
    # STMP has no attention weights; STAMP adds W_1, b_a, W_2, W_3, w_0.
    assert len(encoder.trainable_weights) == 5
    assert len(STAMPEncoder(12, hidden_units=6).trainable_weights) == 10


def test_paper_initialisation() -> None:
    encoder = STAMPEncoder(2000, hidden_units=50, seed=0)
    table = keras.ops.convert_to_numpy(encoder.item_embeddings)
    assert table.std() == pytest.approx(0.002, rel=0.05)
    kernel = keras.ops.convert_to_numpy(encoder.attention_item.kernel)
    assert kernel.std() == pytest.approx(0.05, rel=0.1)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(encoder.session_mlp.bias), 0.0)


@pytest.mark.parametrize("output_activation", ["sigmoid", "none"])
def test_keras_file_round_trip(tmp_path, output_activation: str) -> None:
    model = tiny_model(dropout_rate=0.3, output_activation=output_activation)
    randomize(model)
    model.set_max_item(15)
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.encoder, STAMPEncoder)
    assert loaded.encoder.get_config() == model.encoder.get_config()
    ids = left_padded(np.random.default_rng(0), [1, 4, 5], MAXLEN)
    np.testing.assert_allclose(loaded.predict_logits(ids), model.predict_logits(ids), atol=0)


def test_saved_model_export(tmp_path) -> None:
    model = tiny_model(attention=True)
    randomize(model)
    path = export_saved_model(model, os.path.join(tmp_path, "saved_model"), k=3)
    loaded = tf.saved_model.load(path)
    rng = np.random.default_rng(2)
    for width in (2, MAXLEN, MAXLEN + 2):  # one [None, None] signature serves every width
        ids = left_padded(rng, [1, 2, 2], width)
        scores = loaded.signatures["scores"](item_ids=tf.constant(ids))["scores"]
        np.testing.assert_allclose(scores, model.predict_logits(ids), atol=1e-6)


# === The score hook ===


@pytest.mark.parametrize("attention", [True, False])
def test_sigmoid_hook_applies_only_when_asked(attention: bool) -> None:
    raw = tiny_model(attention, output_activation="none")
    randomize(raw)
    squashed = tiny_model(attention, output_activation="sigmoid")
    squashed.set_weights(raw.get_weights())
    ids = left_padded(np.random.default_rng(1), [2, 3, 5], MAXLEN)
    table = keras.ops.convert_to_numpy(raw.encoder.item_embeddings)[1:]
    scores = raw.represent(ids).numpy() @ table.T
    np.testing.assert_allclose(raw.predict_logits(ids), scores, atol=1e-5)
    assert ((scores <= 0) | (scores >= 1)).any()
    logits = squashed.predict_logits(ids).numpy()
    assert ((logits > 0) & (logits < 1)).all()
    np.testing.assert_allclose(logits, sigmoid(scores), atol=1e-6)


# === Training ===


def prefix_examples(num_sessions: int = 48, seed: int = 0):
    """Full-softmax prefix examples of sessions that walk item i -> i + 1 (learnable)."""
    rng = np.random.default_rng(seed)
    session_ids, item_ids = [], []
    for s in range(num_sessions):
        length = int(rng.integers(2, 7))
        start = int(rng.integers(1, NUM_ITEMS - length + 2))
        session_ids += [s] * length
        item_ids += list(range(start, start + length))
    sessions = group_sessions(np.array(session_ids), np.array(item_ids, np.int32))
    examples = examples_from_sessions(sessions, MAXLEN)
    is_exemplar = np.zeros(len(examples), np.float32)
    return {"item_ids": examples.inputs, "is_exemplar": is_exemplar}, examples.targets


@pytest.mark.parametrize(
    "attention, output_activation", [(True, "none"), (False, "none"), (True, "sigmoid")]
)
def test_fit_lowers_the_loss(attention: bool, output_activation: str) -> None:
    model = tiny_model(attention, seed=2, output_activation=output_activation)
    model.compile(optimizer=make_optimizer(5e-2))
    features, targets = prefix_examples()
    before = float(np.mean(model.per_example_loss(features, targets)))
    assert before == pytest.approx(np.log(NUM_ITEMS), abs=1e-3)  # tiny init: near uniform
    data = tf.data.Dataset.from_tensor_slices((features, targets)).shuffle(256, seed=0).batch(32)
    model.fit(data, epochs=12, verbose=0, shuffle=False)
    after = float(np.mean(model.per_example_loss(features, targets)))
    # Softmax over sigmoid scores cannot beat log(1 + (n - 1) / e) per row.
    floor = np.log(1 + (NUM_ITEMS - 1) / np.e) if output_activation == "sigmoid" else 0.0
    assert after < before - 0.4 * (before - floor)


def test_distill_with_a_stamp_teacher() -> None:
    teacher = tiny_model(seed=3, dropout_rate=0.2)
    randomize(teacher, seed=3)
    teacher.set_max_item(12)
    teacher = teacher.frozen_copy()
    model = tiny_model(seed=4, dropout_rate=0.2)
    randomize(model, seed=4)
    model.compile(optimizer=make_optimizer(1e-2), run_eagerly=True)
    model.configure_continual("distill", lambda_t=0.5, teacher=teacher)
    features, targets = prefix_examples(num_sessions=8)
    features["is_exemplar"][::2] = 1.0
    values = model.train_on_batch(features, targets, return_dict=True)
    assert np.isfinite(values["kd_loss"]) and values["kd_loss"] > 0
    assert np.isfinite(values["loss"])


def test_reseed_dropout_reaches_the_embedding_dropout() -> None:
    model = tiny_model(dropout_rate=0.5)
    randomize(model)
    ids = left_padded(np.random.default_rng(0), [3, 4, 5], MAXLEN)
    model.reseed_dropout(11)
    first = model.represent(ids, training=True).numpy()
    model.represent(ids, training=True)
    model.reseed_dropout(11)
    np.testing.assert_array_equal(model.represent(ids, training=True).numpy(), first)
