"""SA-CAISR: Fisher-weighted screening of the old model, its masks, the InfoNCE term."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from ader_tf.continual.methods import CycleContext, KeptObjects, make_method
from ader_tf.continual.teacher import frozen_teacher
from ader_tf.data.examples import Examples
from ader_tf.models.recommender import make_optimizer
from ader_tf.objectives import Consistency, CrossEntropy, FisherScreening, StepInputs
from ader_tf.objectives.consistency import hard_negative_info_nce
from ader_tf.objectives.screening import drop_probabilities, ema_fisher, screening_mask
from ader_tf.plugins import make_config
from tests.helpers import left_padded, randomize
from tests.helpers import tiny_sasrec_model as tiny_model

NUM_ITEMS, MAXLEN, MAX_ITEM = 30, 6, 24


def _model(seed: int = 1, dropout_rate: float = 0.0):
    model = tiny_model(NUM_ITEMS, maxlen=MAXLEN, seed=seed, dropout_rate=dropout_rate)
    randomize(model, seed=seed)
    model.compile(optimizer=make_optimizer(1e-2), run_eagerly=True)
    model.build_all(MAXLEN)
    model.set_max_item(MAX_ITEM)
    return model


def _batch(n: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = left_padded(rng, list(rng.integers(1, MAXLEN + 1, n)), MAXLEN, MAX_ITEM)
    return ids, rng.integers(1, MAX_ITEM + 1, n).astype(np.int32)


def _inputs(model, ids, targets, training=True, is_exemplar=None, logits=None) -> StepInputs:
    n = len(targets)
    if logits is None:
        logits = model(ids, training=False)
    return StepInputs(
        model=model, item_ids=tf.constant(ids), targets=tf.constant(targets),
        is_exemplar=tf.constant(np.zeros(n) if is_exemplar is None else is_exemplar,
                                tf.float32),
        exemplar_index=tf.fill([n], -1), logits=tf.convert_to_tensor(logits, tf.float32),
        row_ce=tf.zeros([n]), training=training,
    )


# === Fisher-weighted screening ===


def test_the_most_conflicting_weight_of_each_tensor_is_dropped_most_often():
    """Known gradients of the old model on the new data: conflict = smoothed g^2, drop
    probability = max_p x its min-max normalisation within the tensor."""
    small = tf.constant([0.0, 1.0, 2.0, -3.0])  # tiny gradients...
    large = tf.constant([[10.0, 0.0], [0.0, -20.0]])  # ...and large ones, in another tensor
    fisher = [ema_fisher(tf.zeros_like(g), g, beta=0.63) for g in (small, large)]
    np.testing.assert_allclose(fisher[0], 0.37 * np.array([0, 1, 4, 9]), rtol=1e-6)
    p_small, p_large = (drop_probabilities(f, max_p=0.8).numpy() for f in fisher)
    np.testing.assert_allclose(p_small, 0.8 * np.array([0, 1, 4, 9]) / 9, rtol=1e-6)
    np.testing.assert_allclose(p_large, [[0.2, 0.0], [0.0, 0.8]], rtol=1e-6)
    # Per tensor: the largest conflict of each gets max_p, whatever the gradients' scale.
    assert p_small.max() == pytest.approx(p_large.max())

    # One draw of 0.5 for every weight: kept where the draw exceeds p, scaled by 1 / (1 - p).
    mask = screening_mask(fisher[0], 0.8, tf.fill([4], 0.5)).numpy()
    np.testing.assert_allclose(mask, [1.0, 1 / (1 - 0.8 / 9), 1 / (1 - 3.2 / 9), 0.0],
                               rtol=1e-6)
    mask = screening_mask(fisher[1], 0.8, tf.fill([2, 2], 0.5)).numpy()
    np.testing.assert_allclose(mask, [[1 / 0.8, 1.0], [1.0, 0.0]], rtol=1e-6)

    # Over many draws each weight is dropped with its probability; the mask's mean is 1.
    draws = tf.random.stateless_uniform([20000, 4], seed=[1, 2])
    masks = screening_mask(fisher[0], 0.8, draws).numpy()
    np.testing.assert_allclose((masks == 0).mean(axis=0), p_small, atol=0.015)
    np.testing.assert_allclose(masks.mean(axis=0), 1.0, atol=0.05)


def test_fisher_is_smoothed_over_batches_and_decays_once_per_epoch():
    screening = FisherScreening(frozen_teacher(_model(), MAX_ITEM), max_p=0.8, ema_beta=0.63,
                                decay=0.9)
    screening.start_cycle(seed=3, steps_per_epoch=2)
    first = [tf.fill(w.shape, 2.0) for w in screening.weights]
    second = [tf.fill(w.shape, 1.0) for w in screening.weights]
    screening.update(first, tf.constant(0, tf.int64))
    np.testing.assert_allclose(screening.fisher[0].numpy(), 0.37 * 4.0, rtol=1e-6)
    screening.update(second, tf.constant(1, tf.int64))  # same epoch: no decay
    np.testing.assert_allclose(screening.fisher[0].numpy(), 0.63 * 1.48 + 0.37, rtol=1e-6)
    screening.update(second, tf.constant(2, tf.int64))  # first step of epoch 2
    np.testing.assert_allclose(screening.fisher[0].numpy(),
                               0.63 * 0.9 * (0.63 * 1.48 + 0.37) + 0.37, rtol=1e-6)
    screening.start_cycle(seed=3, steps_per_epoch=2)  # each cycle estimates afresh
    assert all(not np.any(f.numpy()) for f in screening.fisher)
    assert int(screening.step.numpy()) == 0


def test_fisher_is_the_old_models_gradient_on_the_new_batch_squared():
    """The screening's gradient is the old model's own mean cross-entropy gradient, so the
    weights the new data pulls hardest on are the likeliest to be dropped."""
    student = _model()
    teacher = frozen_teacher(student, MAX_ITEM)
    screening = FisherScreening(teacher, max_p=0.8, ema_beta=0.63, decay=0.9)
    screening.start_cycle(seed=3, steps_per_epoch=10)
    ids, targets = _batch()
    with tf.GradientTape() as tape:  # the same weights, trainable in the student
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=targets - 1, logits=student(ids, training=False)))
    expected = tape.gradient(loss, student.encoder.weights)
    screening.logits(_inputs(student, ids, targets))
    for fisher, g in zip(screening.fisher, expected, strict=True):
        np.testing.assert_allclose(fisher.numpy(), 0.37 * np.square(tf.convert_to_tensor(g)),
                                   rtol=1e-4, atol=1e-12)
    # Item rows the batch never scores (beyond max_item) have no conflict: never dropped.
    table = screening.masks(tf.constant(0, tf.int64))[0].numpy()
    np.testing.assert_array_equal(table[MAX_ITEM + 1:], 1.0)
    assert int(screening.step.numpy()) == 1


def test_the_mask_acts_on_the_old_models_forward_pass_only():
    """The screened scores are those of the old model with its weights times the mask; the
    old model's stored weights never change, and the student is not masked: its weights
    under dropped ones move in the step like the rest."""
    config = make_config(method="sacaisr")
    method, student = make_method(config), _model(dropout_rate=0.3)
    teacher = frozen_teacher(student, 20)
    stored = [w.numpy().copy() for w in teacher.encoder.weights]
    ids, targets = _batch()
    objective = method.objective(_context(config, student, teacher))
    assert teacher.max_item == MAX_ITEM  # the old model scores every item known now
    screening = objective.parts[1].reference.__self__

    student.set_objective(objective)
    before = [w.numpy().copy() for w in student.encoder.weights]
    values = student.train_on_batch({"item_ids": ids}, targets, return_dict=True)
    assert set(values) == {"loss", "examples", "ce_loss", "nce_loss"}
    assert values["examples"] == len(targets)  # the rows trained on
    assert all(np.isfinite(v) for v in values.values())
    for w, s in zip(teacher.encoder.weights, stored, strict=True):
        np.testing.assert_array_equal(w.numpy(), s, err_msg=w.path)

    masks = [m.numpy() for m in screening.masks(tf.constant(0, tf.int64))]  # step 0's masks
    # The weight the mask drops most of (which one depends on the seed's draws).
    index = int(np.argmax([(m == 0).sum() for m in masks]))
    dropped = masks[index] == 0
    assert dropped.any() and (masks[index] > 1).any()  # some dropped, the kept ones scaled up
    moved = before[index] != student.encoder.weights[index].numpy()
    assert moved[dropped].all()

    # The same screened scores from an old model whose weights are set to weights x mask.
    screened = frozen_teacher(teacher, MAX_ITEM)
    for w, s, m in zip(screened.encoder.weights, stored, masks, strict=True):
        w.assign(s * m)
    inputs = _inputs(student, ids, targets, training=False)
    screening.step.assign(0)  # outside training nothing is updated: step 0's mask again
    np.testing.assert_allclose(screening.logits(inputs).numpy(),
                               screened.predict_logits(ids).numpy(), rtol=1e-4, atol=1e-5)
    assert not np.allclose(screened.predict_logits(ids).numpy(),
                           teacher.predict_logits(ids).numpy(), atol=1e-3)


def test_masks_are_drawn_again_from_the_same_seed_and_step():
    screening = FisherScreening(frozen_teacher(_model(), MAX_ITEM), 0.8, 0.63, 0.9)
    screening.start_cycle(seed=7, steps_per_epoch=4)
    screening.update([tf.random.stateless_normal(w.shape, [i, 0]) for i, w in
                      enumerate(screening.weights)], tf.constant(0, tf.int64))
    step0 = [m.numpy() for m in screening.masks(tf.constant(0, tf.int64))]
    again = [m.numpy() for m in screening.masks(tf.constant(0, tf.int64))]
    step1 = [m.numpy() for m in screening.masks(tf.constant(1, tf.int64))]
    for a, b in zip(step0, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(step0, step1, strict=True))


# === InfoNCE consistency ===


def _info_nce_by_hand(student, reference, temperature, top_k):
    z = student / np.linalg.norm(student, axis=1, keepdims=True)
    r = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    sim = z @ r.T
    losses = []
    for i in range(len(sim)):
        others = np.sort(np.delete(sim[i], i))[::-1][:top_k]
        logits = np.concatenate([[sim[i, i]], others]) / temperature
        losses.append(np.log(np.exp(logits).sum()) - logits[0])
    return np.array(losses)


@pytest.mark.parametrize("top_k", [1, 2, 128])
def test_info_nce_by_hand(top_k):
    rng = np.random.default_rng(0)
    student = rng.normal(size=(5, 7)).astype(np.float32)
    reference = (student + rng.normal(size=(5, 7))).astype(np.float32)
    expected = _info_nce_by_hand(student.astype(np.float64), reference.astype(np.float64),
                                 0.5, top_k)
    got = hard_negative_info_nce(tf.constant(student), tf.constant(reference), 0.5, top_k)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)


def test_a_single_row_has_no_negative_and_no_loss():
    one = tf.constant([[1.0, 2.0, 3.0]])
    assert hard_negative_info_nce(one, -one, 0.07, 128).numpy() == pytest.approx([0.0])


def test_consistency_term_over_the_current_rows_only():
    """The term's sum and count are those of the current rows, which are each other's only
    negatives; the reference gets no gradient."""
    rng = np.random.default_rng(1)
    student = tf.constant(rng.normal(size=(4, 6)).astype(np.float32))
    reference = tf.Variable(rng.normal(size=(4, 6)).astype(np.float32))
    is_exemplar = np.array([0, 1, 0, 0], np.float32)
    term = Consistency(lambda inputs: reference, weight=4.0, temperature=0.07, top_k=128)
    ids, targets = _batch(4)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(student)
        inputs = _inputs(None, ids, targets, is_exemplar=is_exemplar, logits=student)
        value = term.terms(inputs)["nce_loss"]
    keep = [0, 2, 3]
    expected = _info_nce_by_hand(student.numpy()[keep].astype(np.float64),
                                 reference.numpy()[keep].astype(np.float64), 0.07, 128)
    assert value.total.numpy() == pytest.approx(expected.sum(), rel=1e-4)
    assert value.count.numpy() == 3 and value.weight == 4.0
    assert tape.gradient(value.total, reference) is None
    assert tape.gradient(value.total, student) is not None


# === The method ===


@dataclasses.dataclass
class _Data:
    train: Examples
    max_item: int


def _context(config, model, teacher, cycle=2, kept=None):
    ids, targets = _batch(40, seed=cycle)
    previous = None if cycle == 1 else {"cycle": cycle - 1, "max_item": 20, "best_epoch": 1}
    return CycleContext(
        cycle=cycle, config=config, model=model, data=_Data(Examples(ids, targets), MAX_ITEM),
        previous=previous, teacher=teacher, state_path=None,
        kept=kept,
    )


def test_first_cycle_is_plain_then_cross_entropy_plus_consistency():
    config = make_config(method="sacaisr", batch_size=16)
    method, model = make_method(config), _model()
    teacher = frozen_teacher(model, 20)
    assert method.objective(_context(config, model, teacher, cycle=1)) is method.cross_entropy
    assert method.weight(_context(config, model, teacher, cycle=1)) == 0.0
    kept = KeptObjects()
    objective = method.objective(_context(config, model, teacher, kept=kept))
    assert [type(p) for p in objective.parts] == [CrossEntropy, Consistency]
    assert objective.term_names == ("ce_loss", "nce_loss")
    assert method.weight(_context(config, model, teacher)) == 4.0
    screening = objective.parts[1].reference.__self__
    assert int(screening.steps_per_epoch.numpy()) == 3  # 40 rows in batches of 16
    screening.step.assign(5)
    # The next cycle: the same object (no retrace), its Fisher and step count reset.
    assert method.objective(_context(config, model, teacher, cycle=3, kept=kept)) is objective
    assert int(screening.step.numpy()) == 0


def test_defaults_are_the_authors_diginetica_settings():
    config = make_config(method="sacaisr")
    assert (config.sacaisr_alpha, config.sacaisr_temperature, config.sacaisr_top_k,
            config.sacaisr_max_p, config.sacaisr_ema_beta, config.sacaisr_decay) == (
        4.0, 0.07, 128, 0.8, 0.63, 0.9)
    assert config.fingerprint() == make_config(method="sacaisr", sacaisr_alpha=4.0).fingerprint()
    assert config.fingerprint() != make_config(method="sacaisr", sacaisr_alpha=2.0).fingerprint()


@pytest.mark.parametrize(
    "flags, message",
    [
        ({"distribution_strategy": "mirrored"}, "--distribution_strategy=none"),
        ({"selection": "random"}, "keeps no exemplars"),
        ({"fix_lambda": True}, "keeps no exemplars"),
        ({"sacaisr_max_p": 1.0}, "--sacaisr_max_p must be in"),
        ({"sacaisr_temperature": 0.0}, "--sacaisr_temperature must be > 0"),
        ({"sacaisr_top_k": 0}, "--sacaisr_top_k must be >= 1"),
        ({"sacaisr_ema_beta": 1.5}, "--sacaisr_ema_beta must be in"),
        ({"sacaisr_alpha": -1.0}, "--sacaisr_alpha must be >= 0"),
        ({"lwf_temperature": 3.0}, "only applies to --method=lwf"),
        ({"model": "sknn"}, "is not trained"),
        ({"model": "gru4rec", "gru4rec_training": "session_parallel"}, "cross-entropy alone"),
    ],
)
def test_combinations_that_make_no_sense_are_refused(flags, message):
    with pytest.raises(ValueError, match=message):
        make_config(method="sacaisr", **flags)


def test_its_options_are_refused_with_other_methods():
    with pytest.raises(ValueError, match="only applies to --method=sacaisr"):
        make_config(method="lwf", sacaisr_top_k=64)
