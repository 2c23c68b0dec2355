"""Continual losses of SessionRecommender (plain, distill, replay, EWC) and Fisher information."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from ader_tf.continual.ewc import EWCState, compute_fisher
from ader_tf.models.recommender import SessionRecommender, make_optimizer
from tests.helpers import left_padded, randomize
from tests.helpers import tiny_sasrec_model as tiny_model

NUM_ITEMS, MAXLEN, TEACHER_ITEMS, LAMBDA = 30, 6, 20, 0.7
IS_EXEMPLAR = np.array([0, 0, 0, 0, 0, 1, 1, 1], np.float32)


def batch(seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = left_padded(rng, [1, 2, 6, 3, 4, 5, 2, 1], MAXLEN, NUM_ITEMS)
    targets = rng.integers(1, NUM_ITEMS + 1, len(ids)).astype(np.int32)
    return {"item_ids": ids, "is_exemplar": IS_EXEMPLAR.copy()}, targets


def student(learning_rate: float = 5e-4, run_eagerly: bool = True) -> SessionRecommender:
    """The model under test; eager by default (tracing costs more than these tiny steps)."""
    model = tiny_model(NUM_ITEMS, maxlen=MAXLEN, seed=1)
    randomize(model, seed=1)
    model.compile(optimizer=make_optimizer(learning_rate), run_eagerly=run_eagerly)
    model.build_all(MAXLEN)  # optimizer slots now, so the first fit traces once, not twice
    return model


def teacher() -> SessionRecommender:
    model = tiny_model(NUM_ITEMS, maxlen=MAXLEN, seed=2, dropout_rate=0.3)
    randomize(model, seed=2)
    model.set_max_item(TEACHER_ITEMS)
    return model.frozen_copy()


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def ce(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    return -log_softmax(logits)[np.arange(len(targets)), targets - 1]


def step_values(model: SessionRecommender, features, targets) -> dict[str, float]:
    """The loss terms of one training step (computed before its update)."""
    out = model.train_on_batch(features, targets, return_dict=True)
    return {k: float(v) for k, v in out.items()}


# === Hand-computed values ===


def test_plain_is_mean_ce_over_current_rows() -> None:
    model = student()
    features, targets = batch()
    logits = model.predict_logits(features["item_ids"]).numpy()
    current = IS_EXEMPLAR == 0
    values = step_values(model, features, targets)
    expected = ce(logits, targets)[current].mean()
    assert values["loss"] == pytest.approx(expected, abs=1e-5)
    assert values["ce_loss"] == pytest.approx(expected, abs=1e-5)

    # Without is_exemplar every row is a current row.
    model = student()
    values = step_values(model, {"item_ids": features["item_ids"]}, targets)
    assert values["loss"] == pytest.approx(ce(logits, targets).mean(), abs=1e-5)


def test_replay_adds_lambda_times_exemplar_ce() -> None:
    model = student()
    model.configure_continual("replay", lambda_t=LAMBDA)
    features, targets = batch()
    row_ce = ce(model.predict_logits(features["item_ids"]).numpy(), targets)
    values = step_values(model, features, targets)
    er = LAMBDA * row_ce[IS_EXEMPLAR == 1].mean()
    assert values["er_loss"] == pytest.approx(er, abs=1e-5)
    assert values["loss"] == pytest.approx(row_ce[IS_EXEMPLAR == 0].mean() + er, abs=1e-5)


def test_distill_uses_teacher_soft_labels_over_its_items() -> None:
    model, frozen = student(), teacher()
    model.configure_continual("distill", lambda_t=LAMBDA, teacher=frozen)
    features, targets = batch()
    ids = features["item_ids"]
    logits = model.predict_logits(ids).numpy()
    ex = IS_EXEMPLAR == 1
    t_logits = frozen.predict_logits(ids[ex]).numpy()
    assert t_logits.shape == (3, TEACHER_ITEMS)
    t_probs = np.exp(log_softmax(t_logits))
    kd = LAMBDA * (-(t_probs * log_softmax(logits[ex, :TEACHER_ITEMS])).sum(-1)).mean()
    values = step_values(model, features, targets)
    assert values["kd_loss"] == pytest.approx(kd, abs=1e-5)
    assert values["loss"] == pytest.approx(ce(logits, targets)[~ex].mean() + kd, abs=1e-5)


def test_ewc_adds_quadratic_penalty() -> None:
    model = student()
    rng = np.random.default_rng(4)
    variables = model.trainable_variables
    fisher = [rng.random(v.shape).astype(np.float32) for v in variables]
    previous = [
        (np.asarray(v) + rng.standard_normal(v.shape) * 0.1).astype(np.float32) for v in variables
    ]
    state = EWCState(tuple(map(tf.constant, fisher)), tuple(map(tf.constant, previous)), 5)
    model.configure_continual("ewc", lambda_t=LAMBDA, ewc=state)
    features, targets = batch()
    logits = model.predict_logits(features["item_ids"]).numpy()
    penalty = sum(
        float((f.astype(np.float64) * (np.asarray(v) - p) ** 2).sum())
        for v, f, p in zip(variables, fisher, previous, strict=True)
    )
    values = step_values(model, features, targets)
    assert values["ewc_loss"] == pytest.approx(LAMBDA / 2 * penalty, rel=1e-5)
    expected = ce(logits, targets)[IS_EXEMPLAR == 0].mean() + LAMBDA / 2 * penalty
    assert values["loss"] == pytest.approx(expected, rel=1e-5)


# === The teacher replaces stored logits ===


def stored_logits_loss(logits, targets, stored, lambda_t: float) -> tf.Tensor:
    """The reference's ADER loss: current rows first, then exemplar rows with stored logits."""
    train_size = tf.shape(logits)[0] - tf.shape(stored)[0]
    labels = tf.one_hot(targets - 1, tf.shape(logits)[1])
    loss = tf.reduce_mean(
        tf.nn.softmax_cross_entropy_with_logits(
            labels=labels[:train_size], logits=logits[:train_size]
        )
    )
    exemplar_logits = logits[train_size:, : tf.shape(stored)[1]]
    return loss + lambda_t * tf.reduce_mean(
        tf.nn.softmax_cross_entropy_with_logits(
            labels=tf.nn.softmax(stored), logits=exemplar_logits
        )
    )


def test_teacher_logits_on_the_fly_equal_stored_logits() -> None:
    model, frozen = student(), teacher()
    features, targets = batch()
    ids = features["item_ids"]
    # What the reference stores when it selects exemplars at the end of the previous cycle.
    stored = frozen.predict_logits(ids[IS_EXEMPLAR == 1]).numpy().astype(np.float32)
    expected = stored_logits_loss(model.predict_logits(ids), targets, stored, LAMBDA)
    model.configure_continual("distill", lambda_t=LAMBDA, teacher=frozen)
    assert step_values(model, features, targets)["loss"] == pytest.approx(float(expected), abs=1e-5)


# === Edge cases, training, retracing ===


def test_no_exemplar_rows_give_zero_terms_not_nan() -> None:
    model = student()
    model.configure_continual("distill", lambda_t=LAMBDA, teacher=teacher())
    features, targets = batch()
    features["is_exemplar"] = np.zeros_like(IS_EXEMPLAR)
    values = step_values(model, features, targets)
    assert values["kd_loss"] == 0.0 and np.isfinite(values["loss"])
    model.configure_continual("replay", lambda_t=LAMBDA)
    values = step_values(model, features, targets)
    assert values["er_loss"] == 0.0 and np.isfinite(values["loss"])
    # Only exemplar rows: the current-row term is 0.
    features["is_exemplar"] = np.ones_like(IS_EXEMPLAR)
    values = step_values(model, features, targets)
    assert values["ce_loss"] == 0.0 and values["loss"] > 0
    assert all(np.isfinite(np.asarray(w)).all() for w in model.get_weights())


@pytest.mark.parametrize("mode", ["plain", "distill", "replay", "ewc"])
def test_loss_goes_down_on_one_batch(mode: str) -> None:
    model = student(learning_rate=3e-2)
    features, targets = batch()
    kwargs = {"lambda_t": 1.0}
    if mode == "distill":
        kwargs["teacher"] = teacher()
    if mode == "ewc":
        kwargs["ewc"] = compute_fisher(model, features["item_ids"], targets, batch_size=4)
    model.configure_continual(mode, **kwargs)
    first = step_values(model, features, targets)["loss"]
    data = tf.data.Dataset.from_tensors((features, targets)).repeat(12)
    history = model.fit(data, epochs=1, verbose=0)
    last = step_values(model, features, targets)["loss"]
    assert last < 0.5 * first
    extra = {"distill": "kd_loss", "replay": "er_loss", "ewc": "ewc_loss", "plain": "ce_loss"}
    assert {"loss", "ce_loss", extra[mode]} <= set(history.history)


def test_per_example_loss_is_row_ce_without_dropout() -> None:
    model = tiny_model(NUM_ITEMS, maxlen=MAXLEN, seed=1, dropout_rate=0.5)
    features, targets = batch()
    expected = ce(model.predict_logits(features["item_ids"]).numpy(), targets)
    np.testing.assert_allclose(model.per_example_loss(features, targets), expected, atol=1e-5)
    ranks = model.target_ranks(features, targets).numpy()
    logits = model.predict_logits(features["item_ids"]).numpy()
    target_logits = logits[np.arange(8), targets - 1]
    np.testing.assert_array_equal(ranks, (logits > target_logits[:, None]).sum(1))


def test_lambda_and_max_item_changes_do_not_retrace(monkeypatch) -> None:
    traces = []
    original = SessionRecommender._loss_terms

    def counting(self, *args, **kwargs):
        traces.append(self.mode)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SessionRecommender, "_loss_terms", counting)
    model = student(run_eagerly=False)
    model.set_max_item(25)
    features, targets = batch()
    targets = np.minimum(targets, 25)

    def fit(width: int) -> None:
        data = {"item_ids": features["item_ids"][:, -width:], "is_exemplar": IS_EXEMPLAR}
        model.fit(tf.data.Dataset.from_tensors((data, targets)), epochs=1, verbose=0)

    fit(6)
    fit(6)
    frozen = teacher()
    model.configure_continual("distill", lambda_t=0.5, teacher=frozen)
    model.set_max_item(30)
    fit(6)
    model.configure_continual("distill", lambda_t=0.9, teacher=frozen)
    assert model.lambda_t == pytest.approx(0.9)
    fit(6)
    assert traces == ["plain", "distill"]


# === Fisher information ===


def test_fisher_equals_mean_squared_per_example_gradient() -> None:
    model = student()
    model.set_max_item(25)
    rng = np.random.default_rng(7)
    ids = left_padded(rng, list(rng.integers(1, 7, 7)), MAXLEN, NUM_ITEMS)
    targets = rng.integers(1, 26, 7).astype(np.int32)
    state = compute_fisher(model, ids, targets, batch_size=3)

    variables = model.trainable_variables
    expected = [np.zeros(v.shape) for v in variables]
    for row in range(len(ids)):
        with tf.GradientTape() as tape:
            loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
                targets[row : row + 1] - 1, model(ids[row : row + 1], training=False)
            )[0]
        for e, g in zip(expected, tape.gradient(loss, variables), strict=True):
            e += np.square(np.asarray(tf.convert_to_tensor(g)))
    assert state.num_examples == 7
    for f, e in zip(state.fisher, expected, strict=True):
        np.testing.assert_allclose(np.asarray(f), e / 7, rtol=1e-4, atol=1e-9)
    np.testing.assert_array_equal(np.asarray(state.fisher[0])[0], 0.0)  # padding row
    for p, v in zip(state.previous, variables, strict=True):
        np.testing.assert_array_equal(np.asarray(p), np.asarray(v))


def test_ewc_state_save_load_and_checks(tmp_path) -> None:
    model = student()
    state = EWCState(
        tuple(tf.random.uniform(v.shape) for v in model.trainable_variables),
        tuple(tf.convert_to_tensor(v) for v in model.trainable_variables),
        num_examples=8,
    )
    path = str(tmp_path / "ewc.npz")
    state.save(path)
    loaded = EWCState.load(path, model)
    assert loaded.num_examples == 8
    for a, b in zip(state.fisher, loaded.fisher, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    other = tiny_model(NUM_ITEMS + 1, maxlen=MAXLEN)
    with pytest.raises(ValueError, match="shapes"):
        EWCState.load(path, other)
    with pytest.raises(ValueError, match="teacher"):
        model.configure_continual("distill", lambda_t=1.0)
    with pytest.raises(ValueError, match="mode"):
        model.configure_continual("joint")
