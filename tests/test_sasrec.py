"""SASRec encoder: parity with the reference, padding tricks, tied dropout; the recommender
around it: item universe, frozen copies, checkpoints, the fused Adam."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from ader_tf.continual.teacher import frozen_teacher
from ader_tf.convert import load_original_checkpoint
from ader_tf.models import layers as ader_layers
from ader_tf.models import sasrec as sasrec_module
from ader_tf.models.recommender import SessionRecommender, make_optimizer
from ader_tf.models.sasrec import SASRecEncoder, trim_left_padding
from tests.encoder_test_case import run_encoder_test
from tests.helpers import left_padded, randomize, tiny_sasrec_model
from tests.sasrec_reference import sasrec_fixture

# === Checks shared by every encoder ===


@pytest.mark.parametrize(
    "init_kwargs",
    [
        {"num_heads": 2, "dropout_rate": 0.3},
        {"num_blocks": 1, "dropout_rate": 0.2, "tied_dropout": False, "length_groups": 1},
    ],
    ids=["tied-dropout", "untied-one-block"],
)
def test_encoder_checks(tmp_path, init_kwargs: dict) -> None:
    base = {"num_items": 20, "hidden_units": 8, "maxlen": 5, "seed": 5}
    run_encoder_test(SASRecEncoder, base | init_kwargs, tmp_path)


# === Architecture parity ===


def test_parity_with_reference_checkpoint() -> None:
    fixture = sasrec_fixture()
    model = load_original_checkpoint(fixture["checkpoint"], fixture["meta"]["num_heads"])
    logits = model.predict_logits(fixture["inputs"]).numpy()
    rep = model.represent(fixture["inputs"]).numpy()
    np.testing.assert_allclose(rep, fixture["rep"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(logits, fixture["logits"], atol=1e-5, rtol=0)


def test_tf1_default_initialisation() -> None:
    model = tiny_sasrec_model(num_items=300, hidden_units=16, maxlen=10, num_blocks=1, num_heads=1)
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
def test_trimming_and_length_groups_change_nothing(num_heads: int) -> None:
    model = tiny_sasrec_model(num_heads=num_heads)
    randomize(model)
    full = left_padded(np.random.default_rng(3), [1, 2, 3, 6, 4, 2], 6, 30)
    expected = model.predict_logits(full).numpy()
    # Without trimming (static shapes, e.g. for XLA) the result is the same.
    untrimmed = tiny_sasrec_model(num_heads=num_heads, trim_padding=False)
    untrimmed.set_weights(model.get_weights())
    np.testing.assert_allclose(untrimmed.predict_logits(full).numpy(), expected, atol=1e-5)
    # One trimmed group, or as many groups as rows (or more): the same again.
    for groups in (1, 6, 9):
        grouped = tiny_sasrec_model(num_heads=num_heads, length_groups=groups)
        grouped.set_weights(model.get_weights())
        np.testing.assert_allclose(grouped.predict_logits(full).numpy(), expected, atol=1e-5)


def test_a_fresh_model_scores_each_row_alike_in_any_batch() -> None:
    """A fresh model's queries are centred rows (layer-norm gain 1, bias 0) that sum to 0 up to
    rounding: whether a row attends must not depend on which rows share its batch (it did,
    under a rule that tested that sum, so one device and two replicas trained differently)."""
    model = tiny_sasrec_model(num_heads=1)  # as initialised: no `randomize`
    lengths = np.random.default_rng(0).integers(1, 7, 64).tolist()
    ids = left_padded(np.random.default_rng(1), lengths, 6, 30)
    together = model.predict_logits(ids).numpy()
    alone = np.concatenate([model.predict_logits(ids[i : i + 1]).numpy() for i in range(64)])
    np.testing.assert_allclose(alone, together, atol=1e-5)
    halves = np.concatenate([model.predict_logits(ids[:32]).numpy(),
                             model.predict_logits(ids[32:]).numpy()])
    np.testing.assert_allclose(halves, together, atol=1e-5)


def test_attention_masks_padded_positions_not_rows_that_sum_to_zero() -> None:
    """Keys at all-zero rows are masked and queries there attend to nothing; a real query whose
    values happen to sum to exactly 0 attends like any other."""
    layer = ader_layers.CausalSelfAttention(4, num_heads=1, seed=0)
    keys = np.array([[[0, 0, 0, 0], [1, 2, -1, 0.5], [0.5, -1, 2, 1]]], np.float32)
    queries = np.array([[[0.3, 0.1, 0.2, 0.4], [1, -1, 2, -2], [0.5, -0.5, 1, -1]]], np.float32)
    out = layer(queries, keys).numpy()[0]
    kernels = {name: [keras.ops.convert_to_numpy(w) for w in dense.weights]
               for name, dense in (("q", layer.query_dense), ("k", layer.key_dense),
                                   ("v", layer.value_dense))}
    q, k, v = (x @ kernels[n][0] + kernels[n][1]
               for n, x in (("q", queries[0]), ("k", keys[0]), ("v", keys[0])))
    scores = q @ k.T / 2.0  # sqrt(d / heads) = 2
    # Position 0 is padding: its query attends to nothing (output = its query alone).
    np.testing.assert_allclose(out[0], queries[0, 0], atol=1e-6)
    # Position 1 sees key 1 only (key 0 is padding); position 2 sees keys 1 and 2.
    np.testing.assert_allclose(out[1], v[1] + queries[0, 1], atol=1e-5)
    weights = np.exp(scores[2, 1:] - scores[2, 1:].max())
    weights /= weights.sum()
    np.testing.assert_allclose(out[2], weights @ v[1:] + queries[0, 2], atol=1e-5)


@pytest.mark.parametrize("rows, groups", [(256, 4), (37, 3), (3, 4), (0, 4), (40, 20)])
def test_length_group_bounds_pad_least(rows: int, groups: int) -> None:
    """The cuts cover every row in order and cost no more than any other cuts on the grid
    (brute force), equal-sized groups included."""
    import itertools

    lengths = np.sort(np.random.default_rng(rows).geometric(0.25, rows).clip(1, 50))
    bounds = sasrec_module.length_group_bounds(tf.constant(lengths), groups).numpy()
    assert bounds.shape == (groups + 1,) and bounds[0] == 0 and bounds[-1] == rows
    assert np.all(np.diff(bounds) >= 0)

    def cost(cuts) -> int:
        return sum((end - start) * lengths[end - 1] for start, end in zip(cuts, cuts[1:])
                   if end > start)

    grid = max(16, groups)
    equal = [(rows * g) // groups for g in range(groups + 1)]
    best = min(cost([0, *[(rows * c) // grid for c in inner], rows])
               for inner in itertools.combinations(range(1, grid), groups - 1))
    assert cost(list(bounds)) == min(best, cost(equal))
    # Rows of one length: every choice costs the same, and the equal-sized groups are kept.
    same = sasrec_module.length_group_bounds(tf.fill([rows], 3), groups).numpy()
    np.testing.assert_array_equal(same, equal)


def test_widths_do_not_retrace() -> None:
    model = tiny_sasrec_model()
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
    model = tiny_sasrec_model()
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
    """SASRec's own arguments (the shared ones are checked in test_encoder.py)."""
    for kwargs, message in (
        ({"hidden_units": 10, "num_heads": 3}, "divisible"),
        ({"num_heads": 0}, "`num_heads` must be >= 1, got 0"),
        ({"num_blocks": -1}, "`num_blocks` must be >= 0, got -1"),
        ({"length_groups": 0}, "`length_groups` must be >= 1, got 0"),
        ({"l2_emb": -0.5}, "`l2_emb` must be >= 0, got -0.5"),
    ):
        with pytest.raises(ValueError, match=message):
            SASRecEncoder(10, **kwargs)


def test_frozen_teacher_is_an_identical_frozen_model() -> None:
    model = tiny_sasrec_model()
    randomize(model)
    model.set_max_item(25)
    teacher = frozen_teacher(model, 20)
    assert not teacher.trainable and teacher.max_item == 20
    assert teacher.trainable_variables == []
    ids = np.array([[0, 0, 3, 4, 5, 6]], np.int32)
    np.testing.assert_allclose(
        teacher.predict_logits(ids), model.predict_logits(ids)[:, :20], atol=0
    )
    # Refilled in place: the same object takes the student's new weights.
    randomize(model, seed=9)
    assert frozen_teacher(model, 25, reuse=teacher) is teacher
    np.testing.assert_allclose(teacher.predict_logits(ids), model.predict_logits(ids), atol=0)


# === Serialisation and checkpoints ===


def _fit_batches(model: SessionRecommender, steps: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ids = left_padded(rng, list(rng.integers(1, 7, 16)), 6, 30)
    targets = rng.integers(1, 31, 16).astype(np.int32)
    data = tf.data.Dataset.from_tensor_slices(({"item_ids": ids}, targets)).batch(8)
    model.fit(data.repeat(steps // 2), epochs=1, verbose=0)


def test_checkpoint_restores_model_and_optimizer(tmp_path) -> None:
    model = tiny_sasrec_model()
    model.compile(optimizer=make_optimizer())
    _fit_batches(model, 4, seed=0)
    prefix = tf.train.Checkpoint(model=model, optimizer=model.optimizer).write(
        os.path.join(tmp_path, "ckpt")
    )

    restored = tiny_sasrec_model(seed=99)
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
    model = tiny_sasrec_model(dropout_rate=0.3, num_heads=2, length_groups=1, tied_dropout=tied)
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
    tied = tiny_sasrec_model(dropout_rate=0.3, tied_dropout=True)
    untied = tiny_sasrec_model(dropout_rate=0.3, tied_dropout=False)
    untied.set_weights(tied.get_weights())
    np.testing.assert_allclose(tied.predict_logits(ids), untied.predict_logits(ids), atol=1e-6)
