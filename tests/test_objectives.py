"""Objectives on SessionRecommender's training step: values by hand, reduction, retracing."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from ader_tf.continual.importance import compute_fisher
from ader_tf.continual.teacher import frozen_teacher
from ader_tf.models.recommender import SessionRecommender, make_optimizer
from ader_tf.objectives import (
    CrossEntropy,
    Distillation,
    GradientProjection,
    ImportancePenalty,
    LogitMatching,
    Objective,
    Replay,
    combine,
)
from ader_tf.objectives.gradient_projection import project
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
    """A frozen previous model scoring TEACHER_ITEMS items, built as the cycle loop builds it."""
    model = tiny_model(NUM_ITEMS, maxlen=MAXLEN, seed=2, dropout_rate=0.3)
    randomize(model, seed=2)
    return frozen_teacher(model, TEACHER_ITEMS)


def distill(frozen: SessionRecommender, weight: float = LAMBDA) -> Objective:
    return combine(CrossEntropy(), Distillation(frozen, weight))


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
    model.set_objective(combine(CrossEntropy(), Replay(LAMBDA)))
    features, targets = batch()
    row_ce = ce(model.predict_logits(features["item_ids"]).numpy(), targets)
    values = step_values(model, features, targets)
    er = LAMBDA * row_ce[IS_EXEMPLAR == 1].mean()
    assert values["er_loss"] == pytest.approx(er, abs=1e-5)
    assert values["loss"] == pytest.approx(row_ce[IS_EXEMPLAR == 0].mean() + er, abs=1e-5)


def test_distill_uses_teacher_soft_labels_over_its_items() -> None:
    model, frozen = student(), teacher()
    model.set_objective(distill(frozen))
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


@pytest.mark.parametrize("run_eagerly", [True, False])
def test_distill_from_cached_teacher_vectors(run_eagerly: bool) -> None:
    """Cached teacher vectors, looked up by exemplar_index, give the on-the-fly term."""
    frozen = teacher()
    features, targets = batch()
    ex = IS_EXEMPLAR == 1
    # An exemplar set whose rows 4, 0, 2 are the batch's exemplar rows (in that order).
    rng = np.random.default_rng(5)
    exemplar_ids = left_padded(rng, [3, 1, 2, 5, 4], MAXLEN, NUM_ITEMS)
    index = np.array([4, 0, 2], np.int32)
    exemplar_ids[index] = features["item_ids"][ex]
    features["exemplar_index"] = np.where(ex, 0, -1).astype(np.int32)
    features["exemplar_index"][ex] = index
    values = {}
    for cached in (False, True):
        model = student(run_eagerly=run_eagerly)
        term = Distillation(frozen, LAMBDA)
        if cached:
            term.cache_teacher_vectors(exemplar_ids, batch_size=2)
        model.set_objective(combine(CrossEntropy(), term))
        values[cached] = step_values(model, features, targets)
    assert values[True]["kd_loss"] == pytest.approx(values[False]["kd_loss"], abs=1e-6)
    assert values[True]["loss"] == pytest.approx(values[False]["loss"], abs=1e-6)
    with pytest.raises(ValueError, match="exemplar rows"):
        Distillation(frozen, LAMBDA, rows="current").cache_teacher_vectors(exemplar_ids)


def test_ewc_adds_quadratic_penalty() -> None:
    model = student()
    rng = np.random.default_rng(4)
    variables = model.trainable_variables
    fisher = [rng.random(v.shape).astype(np.float32) for v in variables]
    previous = [
        (np.asarray(v) + rng.standard_normal(v.shape) * 0.1).astype(np.float32) for v in variables
    ]
    penalty_term = ImportancePenalty(
        tuple(map(tf.constant, fisher)), tuple(map(tf.constant, previous)), LAMBDA
    )
    model.set_objective(combine(CrossEntropy(), penalty_term))
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
    model.set_objective(distill(frozen))
    assert step_values(model, features, targets)["loss"] == pytest.approx(float(expected), abs=1e-5)


# === Edge cases, training, retracing ===


def test_no_exemplar_rows_give_zero_terms_not_nan() -> None:
    model = student()
    model.set_objective(distill(teacher()))
    features, targets = batch()
    features["is_exemplar"] = np.zeros_like(IS_EXEMPLAR)
    values = step_values(model, features, targets)
    assert values["kd_loss"] == 0.0 and np.isfinite(values["loss"])
    model.set_objective(combine(CrossEntropy(), Replay(LAMBDA)))
    values = step_values(model, features, targets)
    assert values["er_loss"] == 0.0 and np.isfinite(values["loss"])
    # Only exemplar rows: the current-row term is 0.
    features["is_exemplar"] = np.ones_like(IS_EXEMPLAR)
    values = step_values(model, features, targets)
    assert values["ce_loss"] == 0.0 and values["loss"] > 0
    assert all(np.isfinite(np.asarray(w)).all() for w in model.get_weights())


def objective_of(kind: str, model: SessionRecommender, features, targets) -> Objective:
    """One objective of each kind, weight 1."""
    if kind == "plain":
        return CrossEntropy()
    if kind == "distill":
        return distill(teacher(), 1.0)
    if kind == "replay":
        return combine(CrossEntropy(), Replay(1.0))
    if kind == "lwf":
        return combine(CrossEntropy(), Distillation(teacher(), 1.0, rows="current",
                                                     temperature=2.0, name="lwf_kd"))
    if kind == "agem":
        return combine(CrossEntropy(), GradientProjection())
    if kind == "derpp":
        scores = model.predict_logits(features["item_ids"][IS_EXEMPLAR == 1]).numpy()
        top = np.argsort(-scores, axis=1)[:, :5]
        stored = np.take_along_axis(scores, top, 1) + 0.5
        index = np.full(len(targets), -1, np.int32)
        index[IS_EXEMPLAR == 1] = np.arange(3)
        features["exemplar_index"] = index
        return combine(CrossEntropy(), LogitMatching(top, stored, np.full(3, NUM_ITEMS), 1.0),
                       Replay(1.0))
    state = compute_fisher(model, features["item_ids"], targets, batch_size=4)
    return combine(CrossEntropy(), ImportancePenalty(state.importance, state.anchor, 1.0))


TERMS = {"plain": ["ce_loss"], "distill": ["ce_loss", "kd_loss"],
         "replay": ["ce_loss", "er_loss"], "ewc": ["ce_loss", "ewc_loss"],
         "lwf": ["ce_loss", "lwf_kd"], "agem": ["ce_loss", "ref_loss"],
         "derpp": ["ce_loss", "der_loss", "er_loss"]}


@pytest.mark.parametrize("kind", sorted(TERMS))
def test_loss_goes_down_on_one_batch(kind: str) -> None:
    model = student(learning_rate=3e-2)
    features, targets = batch()
    objective = objective_of(kind, model, features, targets)
    model.set_objective(objective)
    # LwF's distillation cannot fall below the teacher's entropy on the current rows.
    floor = lwf_floor(objective, features["item_ids"][IS_EXEMPLAR == 0]) if kind == "lwf" else 0
    first = step_values(model, features, targets)["loss"] - floor
    data = tf.data.Dataset.from_tensors((features, targets)).repeat(12)
    history = model.fit(data, epochs=1, verbose=0)
    last = step_values(model, features, targets)["loss"] - floor
    assert last < 0.5 * first
    assert set(history.history) == {"loss", "examples", *TERMS[kind]}  # metrics named after terms


def lwf_floor(objective: Objective, ids: np.ndarray) -> float:
    """T^2 times the mean entropy of the teacher's softmax at temperature T."""
    distillation = objective.parts[1]
    t = distillation.temperature
    log_p = log_softmax(distillation.teacher.predict_logits(ids).numpy() / t)
    return float(distillation.weight * t**2 * (-(np.exp(log_p) * log_p).sum(-1)).mean())


def test_per_example_loss_is_row_ce_without_dropout() -> None:
    model = tiny_model(NUM_ITEMS, maxlen=MAXLEN, seed=1, dropout_rate=0.5)
    features, targets = batch()
    expected = ce(model.predict_logits(features["item_ids"]).numpy(), targets)
    np.testing.assert_allclose(model.per_example_loss(features, targets), expected, atol=1e-5)


def test_weight_and_max_item_changes_do_not_retrace(monkeypatch) -> None:
    traces = []
    original = SessionRecommender._loss_shares

    def counting(self, *args, **kwargs):
        traces.append(self.objective.term_names)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SessionRecommender, "_loss_shares", counting)
    model = student(run_eagerly=False)
    model.set_max_item(25)
    features, targets = batch()
    targets = np.minimum(targets, 25)

    def fit(width: int) -> float:
        data = {"item_ids": features["item_ids"][:, -width:], "is_exemplar": IS_EXEMPLAR}
        history = model.fit(tf.data.Dataset.from_tensors((data, targets)), epochs=1, verbose=0)
        return history.history["kd_loss"][0] if "kd_loss" in history.history else 0.0

    fit(6)
    fit(6)
    weight = tf.Variable(0.5, trainable=False)
    objective = distill(teacher(), weight)
    model.set_objective(objective)
    model.set_max_item(30)
    low = fit(6)
    weight.assign(1.0)
    model.set_objective(objective)  # the same object: nothing to retrace
    high = fit(6)
    assert traces == [("ce_loss",), ("ce_loss", "kd_loss")]
    assert high > low > 0  # the step reads the new weight


def test_objective_checks() -> None:
    model = student()
    with pytest.raises(ValueError, match="Objective"):
        model.set_objective("distill")
    with pytest.raises(ValueError, match="rows"):
        Distillation(teacher(), 1.0, rows="all")
    with pytest.raises(ValueError, match="distinct"):
        combine(CrossEntropy(), CrossEntropy())
    with pytest.raises(ValueError, match="one tensor per variable"):
        ImportancePenalty([tf.zeros(2)], [], 1.0)


# === Methods beyond the paper: defining behaviour ===


def test_lwf_distils_on_current_rows_at_temperature() -> None:
    model, frozen = student(), teacher()
    temperature = 2.0
    model.set_objective(combine(CrossEntropy(), Distillation(
        frozen, LAMBDA, rows="current", temperature=temperature)))
    features, targets = batch()
    ids = features["item_ids"]
    current = IS_EXEMPLAR == 0
    logits = model.predict_logits(ids).numpy()[current, :TEACHER_ITEMS] / temperature
    t_probs = np.exp(log_softmax(frozen.predict_logits(ids[current]).numpy() / temperature))
    kd = temperature**2 * (-(t_probs * log_softmax(logits)).sum(-1)).mean()
    values = step_values(model, features, targets)
    assert values["kd_loss"] == pytest.approx(LAMBDA * kd, rel=1e-5)


def test_projection_removes_the_conflict_and_leaves_agreement_alone() -> None:
    rng = np.random.default_rng(0)
    reference = [tf.constant(rng.standard_normal((3, 4)), tf.float32),
                 tf.constant(rng.standard_normal(5), tf.float32)]
    conflicting = [-2.0 * r + 0.1 * tf.constant(rng.standard_normal(r.shape), tf.float32)
                   for r in reference]

    def dot(a, b):
        return float(sum(np.sum(np.asarray(x, np.float64) * np.asarray(y)) for x, y in zip(a, b)))

    assert dot(conflicting, reference) < 0
    projected = project(conflicting, reference)
    assert dot(projected, reference) >= -1e-5
    assert dot(projected, reference) == pytest.approx(0.0, abs=1e-4)
    agreeing = [r + 0.1 for r in reference]
    assert dot(agreeing, reference) > 0
    for a, b in zip(project(agreeing, reference), agreeing, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_agem_step_applies_the_projected_gradient() -> None:
    """One SGD step of A-GEM moves the weights by -lr times the projected gradient."""
    model = tiny_model(NUM_ITEMS, maxlen=MAXLEN, seed=1, dropout_rate=0.0)
    randomize(model, seed=1)
    model.compile(optimizer="sgd", run_eagerly=True)
    model.build_all(MAXLEN)
    features, targets = batch()
    ids = features["item_ids"]
    variables = model.trainable_variables
    before = [np.asarray(v).copy() for v in variables]
    current, exemplar = IS_EXEMPLAR == 0, IS_EXEMPLAR == 1

    def gradient(rows) -> list[tf.Tensor]:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                targets[rows] - 1, model(ids[rows], training=False)))
        return [tf.convert_to_tensor(g) for g in tape.gradient(loss, variables)]

    expected = project(gradient(current), gradient(exemplar))
    model.set_objective(combine(CrossEntropy(), GradientProjection()))
    model.optimizer.learning_rate.assign(0.5)
    model.train_on_batch(features, targets)
    for v, b, g in zip(variables, before, expected, strict=True):
        np.testing.assert_allclose(np.asarray(v), b - 0.5 * np.asarray(g), atol=1e-6)


def test_logit_matching_by_hand() -> None:
    model = student()
    features, targets = batch()
    ids = features["item_ids"]
    exemplar = IS_EXEMPLAR == 1
    rng = np.random.default_rng(3)
    k, scored = 4, np.array([NUM_ITEMS, 20, 25], np.int32)
    top = np.stack([rng.choice(n, k, replace=False) for n in scored]).astype(np.int32)
    stored = -np.sort(-rng.standard_normal((3, k)).astype(np.float32), axis=1)
    index = np.full(len(targets), -1, np.int32)
    index[exemplar] = [2, 0, 1]  # batch rows point at their exemplar's stored scores
    features["exemplar_index"] = index
    model.set_objective(combine(CrossEntropy(), LogitMatching(top, stored, scored, LAMBDA)))
    logits = model.predict_logits(ids).numpy()[exemplar]
    errors = []
    for row, e in zip(logits, [2, 0, 1], strict=True):
        n, bound = scored[e], stored[e, -1]
        rest = [i for i in range(n) if i not in set(top[e])]
        error = ((row[top[e]] - stored[e]) ** 2).sum()
        error += (np.maximum(row[rest] - bound, 0.0) ** 2).sum()
        errors.append(error / n)
    values = step_values(model, features, targets)
    assert values["der_loss"] == pytest.approx(LAMBDA * np.mean(errors), rel=1e-5)


def test_regularisation_losses_are_added_to_the_loss() -> None:
    """The encoder's L2 term (a row-free term) joins the objective's terms in the loss."""
    model = tiny_model(NUM_ITEMS, maxlen=MAXLEN, seed=1, l2_emb=0.01)
    randomize(model, seed=1)
    model.compile(optimizer=make_optimizer(), run_eagerly=True)
    model.build_all(MAXLEN)
    features, targets = batch()
    model(features["item_ids"], training=False)  # fills model.losses for these weights
    expected = float(tf.add_n(model.losses))
    assert expected > 0
    values = step_values(model, features, targets)
    assert values["loss"] - values["ce_loss"] == pytest.approx(expected, rel=1e-4)
