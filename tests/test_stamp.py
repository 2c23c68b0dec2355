"""STAMP / STMP encoder: the shared encoder checks, hand-computed values, the score hook."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from ader_tf.continual.teacher import frozen_teacher
from ader_tf.data.examples import examples_from_sessions
from ader_tf.data.periods import group_sessions
from ader_tf.models.recommender import SessionRecommender, make_optimizer
from ader_tf.models.stamp import STAMPEncoder
from ader_tf.objectives import CrossEntropy, Distillation, combine
from tests.encoder_test_case import run_encoder_test
from tests.helpers import left_padded, randomize

NUM_ITEMS, MAXLEN = 20, 5


def tiny_stamp(attention: bool = True, seed: int = 1, **kwargs) -> SessionRecommender:
    kwargs = {"num_items": NUM_ITEMS, "hidden_units": 8, "maxlen": MAXLEN, **kwargs}
    return SessionRecommender(STAMPEncoder(attention=attention, seed=seed, **kwargs))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


# === Checks shared by every encoder ===


@pytest.mark.parametrize(
    "attention, output_activation", [(True, "none"), (False, "none"), (True, "sigmoid")]
)
def test_encoder_checks(tmp_path, attention: bool, output_activation: str) -> None:
    init_kwargs = {
        "num_items": NUM_ITEMS,
        "hidden_units": 8,
        "attention": attention,
        "maxlen": MAXLEN,
        "dropout_rate": 0.2,
        "seed": 2,
        "output_activation": output_activation,
    }
    losses = run_encoder_test(
        STAMPEncoder, init_kwargs, tmp_path, learning_rate=5e-2, epochs=8
    )
    before, after = losses["loss_before"], losses["loss_after"]
    assert before == pytest.approx(np.log(NUM_ITEMS), abs=1e-3)  # tiny init: near uniform
    # Softmax over sigmoid scores cannot beat log(1 + (n - 1) / e) per row.
    floor = np.log(1 + (NUM_ITEMS - 1) / np.e) if output_activation == "sigmoid" else 0.0
    assert after < before - 0.4 * (before - floor)


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


# === Configuration ===


def test_constructor_validation() -> None:
    """STAMP's own arguments (the shared ones are checked in test_encoder.py)."""
    for kwargs, quoted in (
        ({"output_activation": "softmax"}, "softmax"),
        ({"attention": "yes"}, "yes"),
    ):
        with pytest.raises(ValueError, match=quoted):
            STAMPEncoder(**{"num_items": 10, **kwargs})


def test_stmp_has_no_attention_weights() -> None:
    # STMP has W_s, b_s, W_t, b_t and the table; STAMP adds W_1, b_a, W_2, W_3, w_0.
    assert len(STAMPEncoder(12, hidden_units=6, attention=False).trainable_weights) == 5
    assert len(STAMPEncoder(12, hidden_units=6).trainable_weights) == 10


def test_paper_initialisation() -> None:
    encoder = STAMPEncoder(2000, hidden_units=50, seed=0)
    table = keras.ops.convert_to_numpy(encoder.item_embeddings)
    assert table.std() == pytest.approx(0.002, rel=0.05)
    kernel = keras.ops.convert_to_numpy(encoder.attention_item.kernel)
    assert kernel.std() == pytest.approx(0.05, rel=0.1)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(encoder.session_mlp.bias), 0.0)


# === The score hook ===


@pytest.mark.parametrize("attention", [True, False])
def test_sigmoid_hook_applies_only_when_asked(attention: bool) -> None:
    raw = tiny_stamp(attention, output_activation="none")
    randomize(raw, scale=0.5)
    squashed = tiny_stamp(attention, output_activation="sigmoid")
    squashed.set_weights(raw.get_weights())
    ids = left_padded(np.random.default_rng(1), [2, 3, 5], MAXLEN, NUM_ITEMS)
    table = keras.ops.convert_to_numpy(raw.encoder.item_embeddings)[1:]
    scores = raw.represent(ids).numpy() @ table.T
    np.testing.assert_allclose(raw.predict_logits(ids), scores, atol=1e-5)
    assert ((scores <= 0) | (scores >= 1)).any()
    logits = squashed.predict_logits(ids).numpy()
    assert ((logits > 0) & (logits < 1)).all()
    np.testing.assert_allclose(logits, sigmoid(scores), atol=1e-6)


# === Distillation ===


def prefix_examples(num_sessions: int = 48, seed: int = 0):
    """Prefix examples of sessions that walk item i -> i + 1, none of them an exemplar."""
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


def test_distill_with_a_stamp_teacher() -> None:
    teacher = tiny_stamp(seed=3, dropout_rate=0.2)
    randomize(teacher, seed=3, scale=0.5)
    teacher = frozen_teacher(teacher, 12)
    model = tiny_stamp(seed=4, dropout_rate=0.2)
    randomize(model, seed=4, scale=0.5)
    model.compile(optimizer=make_optimizer(1e-2), run_eagerly=True)
    model.set_objective(combine(CrossEntropy(), Distillation(teacher, 0.5)))
    features, targets = prefix_examples(num_sessions=8)
    features["is_exemplar"][::2] = 1.0
    values = model.train_on_batch(features, targets, return_dict=True)
    assert np.isfinite(values["kd_loss"]) and values["kd_loss"] > 0
    assert np.isfinite(values["loss"])
