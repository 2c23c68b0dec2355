"""SI (`--method=si`): the path integral, Omega over cycles, the penalty, its files, a run."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

from ader_tf.continual.importance import ImportanceState
from ader_tf.continual.methods import CycleContext, make_method
from ader_tf.continual.methods.si import PathIntegral, path_integral_of
from ader_tf.continual.runner import ContinualRunner
from ader_tf.data.examples import Examples
from ader_tf.io_utils import DamagedFileError
from ader_tf.models.growth import grow_items
from ader_tf.models.recommender import make_optimizer
from ader_tf.objectives import CrossEntropy, ImportancePenalty
from ader_tf.plugins import make_config
from tests.helpers import left_padded, metrics_rows, randomize, tiny_config, tiny_sasrec_model

NUM_ITEMS, MAXLEN = 30, 6


def _model(eager: bool = True, seed: int = 1):
    """A tiny SASRec far from its initialisation, dropout off (SI trains without it)."""
    model = tiny_sasrec_model(NUM_ITEMS, maxlen=MAXLEN, num_blocks=1, seed=seed)
    randomize(model, seed=seed)
    model.compile(optimizer=make_optimizer(1e-2), run_eagerly=eager)
    model.build_all(MAXLEN)
    return model


def _batches(count: int, num_items: int = NUM_ITEMS, seed: int = 0) -> list[Examples]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        ids = left_padded(rng, list(rng.integers(1, MAXLEN + 1, 8)), MAXLEN, num_items)
        out.append(Examples(ids, rng.integers(1, num_items + 1, 8).astype(np.int32)))
    return out


def _context(config, model, cycle: int, tmp_path) -> CycleContext:
    previous = None if cycle == 1 else {"cycle": cycle - 1, "max_item": NUM_ITEMS,
                                        "best_epoch": 1}
    return CycleContext(cycle=cycle, config=config, model=model, data=None, previous=previous,
                        state_path=lambda c, name: str(tmp_path / f"{name}_{c}.npz"))


def _values(variables) -> list[np.ndarray]:
    return [np.array(tf.convert_to_tensor(v)) for v in variables]


def _ce_gradient(model, batch: Examples) -> list[np.ndarray]:
    """The gradient of the batch's mean cross-entropy alone, taken apart from the step."""
    with tf.GradientTape() as tape:
        logits = model(batch.inputs, training=True)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=batch.targets - 1, logits=logits))
    gradients = tape.gradient(loss, model.trainable_variables)
    return [np.zeros(v.shape, np.float32) if g is None else np.array(tf.convert_to_tensor(g))
            for g, v in zip(gradients, model.trainable_variables, strict=True)]


def _train(model, batches: list[Examples]) -> None:
    for batch in batches:
        model.train_on_batch(batch.inputs, batch.targets)


def _importance_by_hand(previous, integral, start, end, damping):
    return [np.maximum(p + w / ((e - s) ** 2 + damping), 0.0)
            for p, w, s, e in zip(previous, integral, start, end, strict=True)]


def _assert_all_close(actual, expected, rtol: float = 1e-5) -> None:
    """Per-element closeness, with an absolute slack relative to the largest value of all
    the tensors (some weights' values are rounding noise, ~1e-14)."""
    scale = max(float(np.abs(e).max()) for e in expected)
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_allclose(np.asarray(a), e, rtol=rtol, atol=rtol * scale)


# === The path integral ===


@pytest.mark.parametrize("cycle", [1, 2], ids=["first_cycle", "with_penalty"])
def test_path_integral_is_minus_gradient_times_step_summed(cycle, tmp_path):
    """In the compiled step: w = sum_t -g_t * (theta_{t+1} - theta_t), with g_t the
    cross-entropy's gradient alone even where the loss holds SI's penalty (a strong one
    here, so that the whole loss's gradient would give another integral)."""
    config = make_config(method="si", lambda_=200.0)
    method, model = make_method(config), _model(eager=False)
    if cycle == 2:
        rng = np.random.default_rng(3)
        weights = _values(model.trainable_variables)
        method.state = ImportanceState(
            importance=tuple(tf.constant(rng.uniform(0, 1, w.shape).astype(np.float32))
                             for w in weights),
            anchor=tuple(tf.constant(w + rng.normal(0, 0.1, w.shape).astype(np.float32))
                         for w in weights),
            num_examples=0,
        )
    objective = method.objective(_context(config, model, cycle, tmp_path))
    model.set_objective(objective)
    path = path_integral_of(objective)
    assert isinstance(path, PathIntegral) and (path.penalty is None) == (cycle == 1)

    batches = _batches(5)
    initial = _values(model.trainable_variables)
    expected = [np.zeros(v.shape, np.float32) for v in model.trainable_variables]
    last_weights, last_gradient = None, None
    for batch in batches:
        weights = _values(model.trainable_variables)
        if last_gradient is not None:
            for total, g, now, before in zip(expected, last_gradient, weights, last_weights,
                                             strict=True):
                total -= g * (now - before)
        last_weights, last_gradient = weights, _ce_gradient(model, batch)
        model.train_on_batch(batch.inputs, batch.targets)
    # The last step's move is not in the integral yet (it is added at the next step).
    assert int(path.steps.numpy()) == len(batches)
    assert sum(np.abs(e).sum() for e in expected) > 0
    _assert_all_close(path.integral, expected, rtol=1e-4)
    _assert_all_close(path.start, initial)


# === Omega over cycles ===


def test_omega_sums_over_cycles_and_grown_rows_start_at_zero(tmp_path):
    config = make_config(method="si", si_damping=0.01)
    method, model = make_method(config), _model()
    start = _values(model.trainable_variables)
    ctx = _context(config, model, 1, tmp_path)
    model.set_objective(method.objective(ctx))
    _train(model, _batches(4))
    path = path_integral_of(model.objective)
    first_integral, end = _values(path.integral), _values(model.trainable_variables)
    method.after_cycle(ctx)
    zeros = [np.zeros_like(w) for w in start]
    omega = _importance_by_hand(zeros, first_integral, start, end, 0.01)
    _assert_all_close(method.state.importance, omega)
    _assert_all_close(method.state.anchor, end)
    assert method.state.num_examples == 3  # steps in the integral (all but the last)
    assert any((o > 0).any() for o in omega)

    # The tables grow by 10 items; cycle 2 trains on the new items too.
    grown = grow_items(model, NUM_ITEMS + 10)
    grown.set_max_item(NUM_ITEMS + 10)
    table = next(i for i, v in enumerate(grown.trainable_variables)
                 if v.shape[0] == NUM_ITEMS + 11)
    ctx = _context(config, grown, 2, tmp_path)
    objective = method.objective(ctx)
    penalty = next(p for p in objective.parts if isinstance(p, ImportancePenalty))
    old_rows = np.asarray(penalty.importance[table])[: NUM_ITEMS + 1]
    np.testing.assert_array_equal(old_rows, omega[table])
    assert not np.asarray(penalty.importance[table])[NUM_ITEMS + 1:].any()
    start = _values(grown.trainable_variables)
    grown.set_objective(objective)
    _train(grown, _batches(3, NUM_ITEMS + 10, seed=1))
    path = path_integral_of(grown.objective)
    second_integral, end = _values(path.integral), _values(grown.trainable_variables)
    assert np.abs(second_integral[table][NUM_ITEMS + 1:]).sum() > 0  # new rows moved
    method.after_cycle(ctx)
    padded = [np.asarray(p) for p in penalty.importance]
    _assert_all_close(method.state.importance,
                      _importance_by_hand(padded, second_integral, start, end, 0.01))
    _assert_all_close(method.state.anchor, end)
    assert method.state.num_examples == 3 + 2


# === The penalty of later cycles ===


def test_second_cycle_adds_a_penalty_zero_at_the_anchor(tmp_path):
    config = make_config(method="si", lambda_=0.8)
    method, model = make_method(config), _model()
    first = method.objective(_context(config, model, 1, tmp_path))
    assert first.term_names == ("ce_loss",)
    assert method.weight(_context(config, model, 1, tmp_path)) == 0.0
    model.set_objective(first)
    _train(model, _batches(4))
    method.after_cycle(_context(config, model, 1, tmp_path))

    ctx = _context(config, model, 2, tmp_path)
    objective = method.objective(ctx)
    assert objective.term_names == ("ce_loss", "si_loss")
    assert [type(p) for p in objective.parts] == [CrossEntropy, ImportancePenalty, PathIntegral]
    model.set_objective(objective)
    batch = _batches(1, seed=5)[0]
    at_anchor = model.train_on_batch(batch.inputs, batch.targets, return_dict=True)
    assert at_anchor["si_loss"] == 0.0 and at_anchor["ce_loss"] > 0

    penalty = objective.parts[1]
    anchor = [np.asarray(a) for a in method.state.anchor]
    omega = [np.asarray(o) for o in method.state.importance]
    direction = [np.random.default_rng(i).normal(size=a.shape).astype(np.float32)
                 for i, a in enumerate(anchor)]
    values = []
    for step in (0.0, 0.05, 0.1):
        for v, a, d in zip(model.trainable_variables, anchor, direction, strict=True):
            v.assign(a + step * d)
        values.append(float(penalty.penalty(model.trainable_variables)))
        by_hand = 0.8 / 2 * sum(float((o * (step * d) ** 2).sum())
                                for o, d in zip(omega, direction, strict=True))
        assert values[-1] == pytest.approx(by_hand, rel=1e-4, abs=1e-12)
    assert values[0] == 0.0 < values[1] < values[2]


# === Files ===


def test_state_round_trips_and_damage_is_refused(tmp_path):
    config = make_config(method="si")
    method, model = make_method(config), _model()
    ctx = _context(config, model, 1, tmp_path)
    model.set_objective(method.objective(ctx))
    _train(model, _batches(3))
    method.after_cycle(ctx)
    path = tmp_path / "si_1.npz"
    assert path.exists()

    resumed = make_method(config)
    resumed.restore(ctx)
    for kept, loaded in ((method.state.importance, resumed.state.importance),
                         (method.state.anchor, resumed.state.anchor)):
        for a, b in zip(kept, loaded, strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert resumed.state.num_examples == method.state.num_examples == 2

    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DamagedFileError):
        make_method(config).restore(ctx)


def test_si_refuses_flags_it_cannot_honour():
    with pytest.raises(ValueError, match="distribution_strategy=none"):
        make_config(method="si", distribution_strategy="mirrored")
    with pytest.raises(ValueError, match="--si_damping must be positive"):
        make_config(method="si", si_damping=0.0)
    with pytest.raises(ValueError, match="only applies to --method=si"):
        make_config(method="mas", si_damping=0.1)
    assert make_method(make_config(method="si")).dropout_rate == 0.0


# === A whole run ===


def test_a_tiny_run_finishes_and_resumes(tiny_data_dir, tmp_path):
    config = tiny_config(tiny_data_dir, tmp_path, method="si")
    runner = ContinualRunner(config)
    runner.run()
    root = runner.paths.root
    rows = metrics_rows(os.path.join(root, "metrics.csv"))
    assert [r["cycle"] for r in rows] == ["1", "2"]
    for row in rows:
        for key in ("mrr20", "recall20", "mrr10", "recall10"):
            assert np.isfinite(float(row[key])), key
    assert [float(r["lambda"]) for r in rows] == [0.0, config.lambda_]
    saved = ImportanceState.load(os.path.join(root, "si", "cycle_2.npz"), runner.model)
    assert os.path.isfile(os.path.join(root, "si", "cycle_1.npz"))
    assert saved.num_examples > 0 and any(np.asarray(o).any() for o in saved.importance)

    phases = []
    again = ContinualRunner(config, on_phase=lambda cycle, phase: phases.append(phase))
    again.run()
    assert phases == []  # nothing trained, tested or written again
    assert metrics_rows(os.path.join(root, "metrics.csv")) == rows
    for a, b in zip(again.method.state.importance, saved.importance, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
