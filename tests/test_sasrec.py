"""SASRec encoder and SessionRecommender: parity, padding invariance, state and serialisation."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_sasrec_reference import sasrec_fixture

from ader_tf.convert import load_original_checkpoint
from ader_tf.models import layers as ader_layers
from ader_tf.models import sasrec as sasrec_module
from ader_tf.models.recommender import SessionRecommender, make_optimizer
from ader_tf.models.sasrec import SASRecEncoder, trim_left_padding


def tiny_model(
    num_items: int = 30,
    hidden_units: int = 8,
    maxlen: int = 6,
    num_blocks: int = 2,
    num_heads: int = 2,
    dropout_rate: float = 0.0,
    seed: int = 1,
    **kwargs,
) -> SessionRecommender:
    encoder = SASRecEncoder(
        num_items,
        hidden_units=hidden_units,
        maxlen=maxlen,
        num_blocks=num_blocks,
        num_heads=num_heads,
        dropout_rate=dropout_rate,
        seed=seed,
        **kwargs,
    )
    return SessionRecommender(encoder)


def randomize(model: SessionRecommender, seed: int = 0) -> None:
    """Non-trivial values everywhere (LN betas too, which exercises the query-mask quirk)."""
    rng = np.random.default_rng(seed)
    for v in model.trainable_variables:
        value = rng.standard_normal(v.shape) * 0.3
        if v.path.endswith("gamma"):
            value += 1.0
        v.assign(value.astype(np.float32))


def left_padded(rng: np.random.Generator, lengths: list[int], width: int, num_items: int):
    ids = np.zeros((len(lengths), width), np.int32)
    for row, length in enumerate(lengths):
        if length:
            ids[row, width - length :] = rng.integers(1, num_items + 1, length)
    return ids


# === Architecture parity ===


def test_parity_with_reference_checkpoint() -> None:
    fixture = sasrec_fixture()
    model = load_original_checkpoint(fixture["checkpoint"], fixture["meta"]["num_heads"])
    logits = model.predict_logits(fixture["inputs"]).numpy()
    rep = model.represent(fixture["inputs"]).numpy()
    np.testing.assert_allclose(rep, fixture["rep"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(logits, fixture["logits"], atol=1e-5, rtol=0)


def test_tf1_default_initialisation() -> None:
    model = tiny_model(num_items=300, hidden_units=16, maxlen=10, num_blocks=1, num_heads=1)
    encoder = model.encoder
    table = keras.ops.convert_to_numpy(encoder.item_embeddings)
    limit = np.sqrt(6.0 / (301 + 16))  # Glorot over the table's own shape
    assert np.abs(table).max() <= limit and np.abs(table).max() > 0.9 * limit
    block = encoder.blocks[0]
    kernel = keras.ops.convert_to_numpy(block.ffn_inner.kernel)
    assert np.abs(kernel).max() <= np.sqrt(6.0 / 32)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(block.ffn_inner.bias), 0.0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(block.attention_norm.gamma), 1.0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(encoder.final_norm.beta), 0.0)


# === Padding and widths ===


def test_trim_left_padding() -> None:
    ids = tf.constant([[0, 0, 0, 3, 4], [0, 0, 5, 6, 7]])
    np.testing.assert_array_equal(trim_left_padding(ids).numpy(), [[0, 3, 4], [5, 6, 7]])
    np.testing.assert_array_equal(trim_left_padding(tf.zeros([2, 4], tf.int32)).shape, [2, 1])


@pytest.mark.parametrize("num_heads", [1, 2])
def test_any_width_gives_the_padded_result(num_heads: int) -> None:
    model = tiny_model(num_heads=num_heads)
    randomize(model)
    rng = np.random.default_rng(3)
    lengths = [1, 2, 3, 6, 4, 2]
    full = left_padded(rng, lengths, 6, 30)
    expected = model.predict_logits(full).numpy()
    # Width = longest row, rows alone at their own width, and rows wider than maxlen.
    np.testing.assert_allclose(model.predict_logits(full[:, -6:]).numpy(), expected, atol=1e-5)
    for row, length in enumerate(lengths):
        alone = model.predict_logits(full[row : row + 1, 6 - length :]).numpy()
        np.testing.assert_allclose(alone[0], expected[row], atol=1e-5)
    short = full[[1, 5]]
    np.testing.assert_allclose(
        model.predict_logits(short[:, -2:]).numpy(), expected[[1, 5]], atol=1e-5
    )
    wider = np.concatenate([rng.integers(1, 31, (6, 3)).astype(np.int32), full], axis=1)
    wider[:, 3:] = full
    wider[:, :3][np.asarray(lengths) < 6] = 0  # left padding stays padding
    np.testing.assert_allclose(model.predict_logits(wider).numpy(), expected, atol=1e-5)
    # Rows longer than maxlen keep their last maxlen items.
    long_rows = np.concatenate([rng.integers(1, 31, (6, 4)).astype(np.int32), full], axis=1)
    long_rows[:, 4:] = np.where(full == 0, 7, full)
    np.testing.assert_allclose(
        model.predict_logits(long_rows).numpy(),
        model.predict_logits(long_rows[:, -6:]).numpy(),
        atol=1e-6,
    )
    # Without trimming (static shapes, e.g. for XLA) the result is the same.
    untrimmed = tiny_model(num_heads=num_heads, trim_padding=False)
    untrimmed.set_weights(model.get_weights())
    np.testing.assert_allclose(untrimmed.predict_logits(full).numpy(), expected, atol=1e-5)
    # One trimmed group, or as many groups as rows: the same again.
    for groups in (1, 6, 9):
        grouped = tiny_model(num_heads=num_heads, length_groups=groups)
        grouped.set_weights(model.get_weights())
        np.testing.assert_allclose(grouped.predict_logits(full).numpy(), expected, atol=1e-5)


def test_widths_do_not_retrace() -> None:
    model = tiny_model()
    rng = np.random.default_rng(0)
    for width in range(1, 7):
        model.predict_logits(left_padded(rng, [width] * 3, width, 30))
    assert model._compiled["logits"].experimental_get_tracing_count() == 1


def _apply_step(optimizer: keras.optimizers.Optimizer, variable: keras.Variable):
    @tf.function
    def step(gradient: tf.Tensor) -> None:
        optimizer.apply_gradients([(gradient, variable)])

    return step


def test_fused_adam_matches_keras_adam() -> None:
    rng = np.random.default_rng(0)
    start = rng.standard_normal((40, 7)).astype(np.float32)
    grads = [rng.standard_normal((40, 7)).astype(np.float32) * (i + 1) for i in range(4)]
    results = []
    for optimizer in (keras.optimizers.Adam(1e-2, epsilon=1e-8), make_optimizer(1e-2)):
        variable = keras.Variable(start)
        optimizer.build([variable])
        step = _apply_step(optimizer, variable)
        for g in grads:
            step(tf.constant(g))
        results.append(np.asarray(variable))
    assert np.abs(results[1] - start).max() > 1e-2
    np.testing.assert_allclose(results[1], results[0], atol=1e-6)


# === Item universe ===


def test_max_item_restricts_scores_without_rebuild() -> None:
    model = tiny_model()
    ids = np.array([[0, 0, 0, 0, 1, 2]], np.int32)
    all_items = model.predict_logits(ids).numpy()
    assert all_items.shape == (1, 30)
    model.set_max_item(12)
    assert model.max_item == 12
    np.testing.assert_allclose(model.predict_logits(ids).numpy(), all_items[:, :12], atol=1e-6)
    assert model._compiled["logits"].experimental_get_tracing_count() == 1
    for bad in (0, 31):
        with pytest.raises(ValueError, match=str(bad)):
            model.set_max_item(bad)


def test_constructor_validation() -> None:
    with pytest.raises(ValueError, match="divisible"):
        SASRecEncoder(10, hidden_units=10, num_heads=3)
    with pytest.raises(ValueError, match="num_items"):
        SASRecEncoder(0)
    with pytest.raises(ValueError, match="dropout_rate"):
        SASRecEncoder(10, dropout_rate=1.5)
    with pytest.raises(ValueError, match="must have"):
        SessionRecommender(keras.layers.Dense(3))


def test_frozen_copy_is_an_identical_frozen_model() -> None:
    model = tiny_model()
    randomize(model)
    model.set_max_item(20)
    teacher = model.frozen_copy()
    assert not teacher.trainable and teacher.max_item == 20
    assert teacher.trainable_variables == []
    ids = np.array([[0, 0, 3, 4, 5, 6]], np.int32)
    np.testing.assert_allclose(teacher.predict_logits(ids), model.predict_logits(ids), atol=0)


# === Serialisation and checkpoints ===


def test_keras_file_round_trip(tmp_path) -> None:
    model = tiny_model(dropout_rate=0.3, seed=5)
    randomize(model)
    model.set_max_item(17)
    model.compile(optimizer=make_optimizer())
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, SessionRecommender)
    assert loaded.encoder.get_config() == model.encoder.get_config()
    assert loaded.max_item == 17
    ids = np.array([[0, 0, 3, 4, 5, 6], [0, 0, 0, 0, 0, 9]], np.int32)
    np.testing.assert_allclose(loaded.predict_logits(ids), model.predict_logits(ids), atol=0)
    restored = SessionRecommender.from_config(model.get_config())
    assert restored.encoder.get_config() == model.encoder.get_config()


def _fit_batches(model: SessionRecommender, steps: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ids = left_padded(rng, list(rng.integers(1, 7, 16)), 6, 30)
    targets = rng.integers(1, 31, 16).astype(np.int32)
    data = tf.data.Dataset.from_tensor_slices(({"item_ids": ids}, targets)).batch(8)
    model.fit(data.repeat(steps // 2), epochs=1, verbose=0)


def test_checkpoint_restores_model_and_optimizer(tmp_path) -> None:
    model = tiny_model()
    model.compile(optimizer=make_optimizer())
    _fit_batches(model, 4, seed=0)
    prefix = tf.train.Checkpoint(model=model, optimizer=model.optimizer).write(
        os.path.join(tmp_path, "ckpt")
    )

    restored = tiny_model(seed=99)
    restored.compile(optimizer=make_optimizer())
    restored.build_all(6)
    tf.train.Checkpoint(model=restored, optimizer=restored.optimizer).read(prefix).assert_consumed()
    ids = np.array([[0, 0, 3, 4, 5, 6]], np.int32)
    np.testing.assert_allclose(restored.predict_logits(ids), model.predict_logits(ids), atol=0)
    assert int(restored.optimizer.iterations) == int(model.optimizer.iterations) == 4

    # Adam's moments came back too: one more identical step gives identical weights.
    _fit_batches(model, 2, seed=1)
    _fit_batches(restored, 2, seed=1)
    for a, b in zip(model.get_weights(), restored.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_reseed_dropout_fixes_the_masks():
    """Same reseed -> same training-mode output, whatever ran before (resume relies on it)."""
    model = tiny_model(seed=1, dropout_rate=0.5)
    model.compile(optimizer=make_optimizer())
    model.build_all(6)
    ids = left_padded(np.random.default_rng(0), [3, 5, 6], 6, 30)
    model.reseed_dropout(11)
    first = model.represent(ids, training=True).numpy()
    model.represent(ids, training=True)  # advances the generators
    model.reseed_dropout(11)
    again = model.represent(ids, training=True).numpy()
    model.reseed_dropout(12)
    other = model.represent(ids, training=True).numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


# === Tied dropout (the reference's shared op seed) ===


def test_dropout_from_uniform_keeps_where_noise_reaches_the_rate() -> None:
    x = tf.constant([[1.0, 2.0, 3.0, 4.0]])
    noise = tf.constant([[0.1, 0.5, 0.25, 0.9]])
    out = ader_layers.dropout_from_uniform(x, noise, 0.25).numpy()
    np.testing.assert_allclose(out, [[0.0, 2.0 / 0.75, 3.0 / 0.75, 4.0 / 0.75]])
    np.testing.assert_array_equal(ader_layers.dropout_from_uniform(x, noise, 0.0), x)


def _recorded_noise(monkeypatch, tied: bool, lengths: list[int]) -> list[np.ndarray]:
    """The noise tensors each tied dropout received during one training-mode forward pass."""
    seen: list[np.ndarray] = []
    original = ader_layers.dropout_from_uniform

    def record(x, uniform, rate):
        seen.append(np.asarray(uniform))
        return original(x, uniform, rate)

    monkeypatch.setattr(ader_layers, "dropout_from_uniform", record)
    monkeypatch.setattr(sasrec_module, "dropout_from_uniform", record)
    model = tiny_model(dropout_rate=0.3, num_heads=2, length_groups=1, tied_dropout=tied)
    model.represent(left_padded(np.random.default_rng(0), lengths, 6, 30), training=True)
    return seen


def test_tied_dropout_shares_masks_like_the_reference(monkeypatch) -> None:
    """Embedding and FFN-output dropouts get one noise; attention-weight dropouts another."""
    seen = _recorded_noise(monkeypatch, tied=True, lengths=[2, 4, 5])
    # Order: embedding, block 0 (attention weights, FFN output), block 1 (same, last query).
    embedding, weights_0, output_0, weights_1, output_1 = seen
    assert embedding.shape == (3, 5, 8) and weights_0.shape == (3, 2, 5, 5)
    np.testing.assert_array_equal(output_0, embedding)
    np.testing.assert_array_equal(output_1, embedding[:, -1:])
    np.testing.assert_array_equal(weights_1, weights_0[:, :, -1:])


def test_untied_dropout_draws_each_mask_itself(monkeypatch) -> None:
    assert _recorded_noise(monkeypatch, tied=False, lengths=[2, 4, 5]) == []


def test_tied_dropout_changes_nothing_without_training() -> None:
    ids = left_padded(np.random.default_rng(3), [1, 3, 6], 6, 30)
    tied = tiny_model(dropout_rate=0.3, tied_dropout=True)
    untied = tiny_model(dropout_rate=0.3, tied_dropout=False)
    untied.set_weights(tied.get_weights())
    np.testing.assert_allclose(tied.predict_logits(ids), untied.predict_logits(ids), atol=1e-6)
