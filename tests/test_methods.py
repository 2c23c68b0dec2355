"""The method registry, the flags that select methods, and each method's defining behaviour."""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from ader_tf.continual.importance import ImportanceState
from ader_tf.continual.methods import (
    METHODS,
    CycleContext,
    KeptObjects,
    adaptive_lambda,
    make_method,
)
from ader_tf.continual.teacher import frozen_teacher
from ader_tf.data.examples import Examples
from ader_tf.models.gru4rec import GRU4RecEncoder
from ader_tf.models.recommender import SessionRecommender, make_optimizer
from ader_tf.models.sasrec import SASRecEncoder
from ader_tf.models.stamp import STAMPEncoder
from ader_tf.objectives import (
    Consistency,
    CrossEntropy,
    Distillation,
    GradientProjection,
    ImportancePenalty,
    LogitMatching,
    Objective,
    Replay,
)
from ader_tf.plugins import make_config
from tests.helpers import left_padded, randomize
from tests.helpers import tiny_sasrec_model as tiny_model

NUM_ITEMS, MAXLEN = 30, 6


def test_lambda_by_hand():
    # DIGINETICA-like numbers: 18,569 items before, 23,000 now, 27,750 exemplars, 30,000 rows.
    expected = 0.8 * math.sqrt((18569 / 23000) * (27750 / 30000))
    assert adaptive_lambda(0.8, 18569, 23000, 27750, 30000) == pytest.approx(expected)


def test_registry_names_every_method_file():
    """Every Method subclass in a file of the methods package is registered under its name."""
    import importlib
    import pkgutil

    from ader_tf.continual import methods
    from ader_tf.continual.methods.base import Method

    defined = set()
    for module_info in pkgutil.iter_modules(methods.__path__):
        module = importlib.import_module(f"{methods.__name__}.{module_info.name}")
        defined |= {cls for cls in vars(module).values() if isinstance(cls, type)
                    and issubclass(cls, Method) and cls is not Method
                    and cls.__module__ == module.__name__}
    assert defined == set(METHODS.values())
    assert {"ader", "er", "finetune", "dropout", "ewc", "joint"} <= set(METHODS)  # the paper's
    assert all(cls.name == name for name, cls in METHODS.items())


@pytest.mark.parametrize(
    "flags, name, dropout, keeps, replays, scratch",
    [
        ({}, "ader", 0.3, True, True, False),
        ({"disable_distillation": True}, "er", 0.3, True, True, False),
        ({"fix_lambda": True}, "ader", 0.3, True, True, False),
        ({"finetune": True}, "finetune", 0.0, False, False, False),
        ({"dropout": True}, "dropout", 0.3, False, False, False),
        ({"ewc": True}, "ewc", 0.0, True, False, False),
        ({"joint": True}, "joint", 0.3, False, False, True),
        ({"method": "lwf"}, "lwf", 0.3, False, False, False),
        ({"method": "agem"}, "agem", 0.3, True, True, False),
        ({"method": "mas"}, "mas", 0.0, False, False, False),
        ({"method": "derpp"}, "derpp", 0.3, True, True, False),
        ({"method": "sacaisr"}, "sacaisr", 0.3, False, False, False),
    ],
)
def test_what_each_method_keeps(flags, name, dropout, keeps, replays, scratch):
    method = make_method(make_config(**flags))
    assert (method.name, method.dropout_rate, method.keeps_exemplars, method.replays_exemplars,
            method.retrains_from_scratch) == (name, dropout, keeps, replays, scratch)


@pytest.mark.parametrize("name", ["finetune", "dropout", "ewc", "joint"])
def test_original_flags_are_aliases_of_method(name):
    by_flag, by_name = make_config(**{name: True}), make_config(method=name)
    assert by_flag.method == by_name.method == name
    assert getattr(by_name, name) is True
    assert by_flag.fingerprint() == by_name.fingerprint()  # runs resume under either spelling


def test_er_is_ader_without_distillation():
    assert make_config(disable_distillation=True).method == "er"
    assert make_config(method="er").disable_distillation is True
    assert make_config(method="er").fingerprint() == make_config(
        disable_distillation=True).fingerprint()
    assert make_config().fingerprint() == make_config(method="ader").fingerprint()
    assert make_config(method="lwf").fingerprint() != make_config().fingerprint()


@pytest.mark.parametrize(
    "flags, message",
    [
        ({"method": "lwf", "finetune": True}, "name different methods"),
        ({"finetune": True, "joint": True}, "at most one baseline"),
        ({"method": "nope"}, "--method must be one of"),
        ({"method": "lwf", "selection": "random"}, "keeps no exemplars"),
        ({"method": "mas", "equal_exemplar": True}, "keeps no exemplars"),
        ({"finetune": True, "fix_lambda": True}, "keeps no exemplars"),
        ({"method": "agem", "fix_lambda": True}, "no weight"),
        ({"method": "derpp", "disable_distillation": True}, "derpp_alpha"),
        ({"method": "ewc", "disable_distillation": True}, "replays no exemplars"),
        ({"derpp_top_k": 5}, "only applies to --method=derpp"),
        ({"method": "derpp", "lwf_temperature": 3.0}, "only applies to --method=lwf"),
        ({"sacaisr_max_p": 0.5}, "only applies to --method=sacaisr"),
        ({"method": "sacaisr", "distribution_strategy": "mirrored"}, "distribution_strategy"),
        ({"method": "lwf", "lwf_temperature": 0.0}, "--lwf_temperature must be positive"),
        ({"method": "lwf", "model": "gru4rec", "gru4rec_training": "session_parallel"},
         "cross-entropy alone"),
        ({"method": "agem", "model": "sknn"}, "is not trained"),
    ],
)
def test_combinations_that_make_no_sense_are_refused(flags, message):
    with pytest.raises(ValueError, match=message):
        make_config(**flags)


# === Objectives each method trains with ===


@dataclasses.dataclass
class _Data:
    train: Examples
    max_item: int


def _examples(n: int, seed: int) -> Examples:
    rng = np.random.default_rng(seed)
    ids = left_padded(rng, list(rng.integers(1, MAXLEN + 1, n)), MAXLEN, NUM_ITEMS)
    return Examples(ids, rng.integers(1, NUM_ITEMS + 1, n).astype(np.int32))


def _context(config, model, cycle=2, exemplars=None, origin=None, tmp_path=None, teacher=None,
             kept=None):
    """What the loop gives a method in ``cycle``; ``kept``: the loop's KeptObjects, if any."""
    previous = None if cycle == 1 else {"cycle": cycle - 1, "max_item": 20, "best_epoch": 1}
    return CycleContext(
        cycle=cycle, config=config, model=model, data=_Data(_examples(40, cycle), NUM_ITEMS),
        previous=previous, exemplars=exemplars, exemplar_origin=origin, teacher=teacher,
        weight=tf.Variable(0.5), state_path=lambda c, name: str(tmp_path / f"{name}_{c}.npz"),
        kept=kept,
    )


def _model(seed: int = 1):
    model = tiny_model(NUM_ITEMS, maxlen=MAXLEN, seed=seed, dropout_rate=0.0)
    randomize(model, seed=seed)
    model.compile(optimizer=make_optimizer(), run_eagerly=True)
    model.build_all(MAXLEN)
    return model


def _parts(objective):
    return [type(p) for p in getattr(objective, "parts", (objective,))]


@pytest.mark.parametrize(
    "name, parts",
    [
        ("ader", [CrossEntropy, Distillation]),
        ("er", [CrossEntropy, Replay]),
        ("lwf", [CrossEntropy, Distillation]),
        ("agem", [CrossEntropy, GradientProjection]),
        ("sacaisr", [CrossEntropy, Consistency]),
        ("finetune", [CrossEntropy]),
        ("joint", [CrossEntropy]),
    ],
)
def test_first_cycle_is_plain_then_the_methods_objective(name, parts, tmp_path):
    config, model = make_config(method=name), _model()
    method = make_method(config)
    teacher = _model(seed=2)
    assert _parts(method.objective(_context(config, model, 1, tmp_path=tmp_path))) == [
        CrossEntropy]
    exemplars = _examples(10, 5)
    kept = KeptObjects()
    ctx = _context(config, model, 2, exemplars, tmp_path=tmp_path, teacher=teacher, kept=kept)
    objective = method.objective(ctx)
    assert _parts(objective) == parts
    # The same object in the next cycle: the training step is not retraced.
    assert method.objective(_context(config, model, 3, exemplars, tmp_path=tmp_path,
                                     teacher=teacher, kept=kept)) is objective
    if name == "lwf":
        assert objective.parts[1].rows == "current" and objective.parts[1].temperature == 2.0


def _held_teacher(objective):
    """The model an objective's second term learns from (a teacher, or a screened one)."""
    term = objective.parts[1]
    held = getattr(term, "teacher", None) or getattr(term, "reference", None)
    return getattr(getattr(held, "__self__", None), "teacher", held)  # a bound method's owner


@pytest.mark.parametrize("name", [n for n, cls in METHODS.items() if cls.uses_teacher])
def test_a_teacher_method_learns_from_the_teacher_the_loop_gives(name, tmp_path):
    """The loop refills one teacher object every cycle and makes a new one when the tables
    grow; every method that uses a teacher must then hold the one it is given."""
    config, model = make_config(method=name), _model()
    method = make_method(config)
    kept, teacher = KeptObjects(), _model(seed=2)

    def objective(cycle, teacher):
        return method.objective(_context(config, model, cycle, _examples(10, 5),
                                         tmp_path=tmp_path, teacher=teacher, kept=kept))

    first = objective(2, teacher)
    assert _held_teacher(first) is teacher
    assert objective(3, teacher) is first  # the same teacher object: no retrace
    bigger = _model(seed=3)
    assert _held_teacher(objective(4, bigger)) is bigger


@pytest.mark.parametrize("name", sorted(METHODS))
def test_methods_keep_no_model_objective_or_variable_between_cycles(name, tmp_path):
    """What lives across cycles is the loop's (the teacher, the objectives it keeps); a
    method's own attributes hold only what it saves and restores (EWC's importance, DER++'s
    stored scores)."""
    options = {"derpp_top_k": 3} if name == "derpp" else {}
    config, model = make_config(method=name, ewc_sample_num=6, **options), _model()
    method = make_method(config)
    exemplars = _examples(10, 5) if method.keeps_exemplars else None
    kept = KeptObjects()
    method.after_cycle(_context(config, model, 1, exemplars, np.full(10, -1), tmp_path, kept=kept))
    method.objective(_context(config, model, 2, exemplars, tmp_path=tmp_path,
                              teacher=_model(seed=2), kept=kept))
    # Its cycle-free cross-entropy (made once with the method) is the one objective it keeps.
    kept_by_method = {k: v for k, v in vars(method).items() if k != "cross_entropy"}
    for attribute, value in kept_by_method.items():
        assert not isinstance(value, Objective | keras.Model | tf.Variable), attribute


def test_ewc_replaces_its_fisher_and_mas_accumulates(tmp_path):
    model = _model()
    exemplars = _examples(12, 3)
    ewc = make_method(make_config(method="ewc", ewc_sample_num=8))
    mas = make_method(make_config(method="mas", ewc_sample_num=8))
    firsts = []
    for cycle in (1, 2):
        for method in (ewc, mas):
            method.after_cycle(_context(method.config, model, cycle, exemplars,
                                        tmp_path=tmp_path))
        if cycle == 1:
            firsts = [ewc.state, mas.state]
            for v in model.trainable_variables:  # the model moves between the cycles
                v.assign_add(0.05 * tf.ones_like(v))
    first_ewc, first_mas = firsts
    assert ewc.state.num_examples == 8 and mas.state.num_examples == 16
    newest = ImportanceState.load(str(tmp_path / "ewc_2.npz"), model)
    for e, n in zip(ewc.state.importance, newest.importance, strict=True):
        np.testing.assert_array_equal(np.asarray(e), np.asarray(n))
    assert not np.array_equal(np.asarray(ewc.state.importance[1]),
                              np.asarray(first_ewc.importance[1]))
    # MAS: the sum of both cycles' importance, anchored at the newest weights.
    fresh = make_method(make_config(method="mas", ewc_sample_num=8))
    fresh.after_cycle(_context(fresh.config, model, 2, exemplars, tmp_path=tmp_path / ".."))
    for total, first, second in zip(mas.state.importance, first_mas.importance,
                                    fresh.state.importance, strict=True):
        np.testing.assert_allclose(np.asarray(total), np.asarray(first) + np.asarray(second),
                                   rtol=1e-6)
    for anchor, v in zip(mas.state.anchor, model.trainable_variables, strict=True):
        np.testing.assert_array_equal(np.asarray(anchor), np.asarray(v))
    objective = mas.objective(_context(mas.config, model, 3, tmp_path=tmp_path))
    assert isinstance(objective.parts[1], ImportancePenalty)
    assert objective.term_names == ("ce_loss", "mas_loss")


def test_derpp_keeps_the_scores_of_carried_over_exemplars(tmp_path):
    config = make_config(method="derpp", derpp_top_k=4)
    method, model = make_method(config), _model()
    first = _examples(6, 1)
    method.after_cycle(_context(config, model, 1, first, np.full(6, -1), tmp_path))
    logits = model.predict_logits(first.inputs).numpy()
    np.testing.assert_array_equal(method.stored["top_items"],
                                  np.argsort(-logits, axis=1, kind="stable")[:, :4])
    np.testing.assert_allclose(method.stored["top_scores"], -np.sort(-logits, axis=1)[:, :4])
    assert (method.stored["num_scored"] == NUM_ITEMS).all()
    old = {k: v.copy() for k, v in method.stored.items()}

    for v in model.trainable_variables:  # the model moves on; old rows keep their old scores
        v.assign_add(0.1 * tf.ones_like(v))
    second = Examples.concatenate([first.subset(np.array([4, 1])), _examples(3, 2)])
    origin = np.array([4, 1, -1, -1, -1])
    method.after_cycle(_context(config, model, 2, second, origin, tmp_path))
    for key in old:
        np.testing.assert_array_equal(method.stored[key][:2], old[key][[4, 1]])
    new_logits = model.predict_logits(second.inputs[2:]).numpy()
    np.testing.assert_allclose(method.stored["top_scores"][2:],
                               -np.sort(-new_logits, axis=1)[:, :4], rtol=1e-6)

    resumed = make_method(config)
    resumed.restore(_context(config, model, 2, second, tmp_path=tmp_path))
    for key in old:
        np.testing.assert_array_equal(resumed.stored[key], method.stored[key])
    objective = method.objective(_context(config, model, 3, second, tmp_path=tmp_path))
    assert _parts(objective) == [CrossEntropy, LogitMatching, Replay]


# === Every method on every neural backbone ===


def _encoder(name: str, seed: int):
    if name == "gru4rec":
        return GRU4RecEncoder(NUM_ITEMS, hidden_units=8, maxlen=MAXLEN, seed=seed)
    if name in ("stamp", "stmp"):
        return STAMPEncoder(NUM_ITEMS, hidden_units=8, maxlen=MAXLEN, attention=name == "stamp",
                            seed=seed)
    return SASRecEncoder(NUM_ITEMS, hidden_units=8, maxlen=MAXLEN, num_blocks=1, seed=seed)


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec", "stamp", "stmp"])
@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_trains_every_backbone(name, backbone, tmp_path):
    """Cycle 1's hook, then one step of cycle 2's objective, on each encoder."""
    options = {"derpp_top_k": 3} if name == "derpp" else {}
    config = make_config(method=name, ewc_sample_num=6, **options)
    method = make_method(config)
    model = SessionRecommender(_encoder(backbone, 1))
    model.compile(optimizer=make_optimizer(1e-2), run_eagerly=True)
    model.build_all(MAXLEN)
    exemplars = _examples(6, 1) if method.keeps_exemplars else None
    origin = np.full(6, -1) if exemplars is not None else None
    method.after_cycle(_context(config, model, 1, exemplars, origin, tmp_path))
    teacher = frozen_teacher(model, 20)
    objective = method.objective(_context(config, model, 2, exemplars, tmp_path=tmp_path,
                                          teacher=teacher))
    model.set_objective(objective)
    rows = _examples(8, 2)
    features = {"item_ids": rows.inputs, "is_exemplar": np.array([0] * 5 + [1] * 3, np.float32),
                "exemplar_index": np.array([-1] * 5 + [0, 4, 2], np.int32)}
    before = [np.asarray(v).copy() for v in model.trainable_variables]
    values = model.train_on_batch(features, rows.targets, return_dict=True)
    assert set(values) == {"loss", "examples", *objective.term_names,
                           *objective.reference_names}
    assert values["examples"] == len(rows.targets)  # current and exemplar rows, once each
    assert all(np.isfinite(v) for v in values.values())
    assert any(not np.array_equal(b, np.asarray(v))
               for b, v in zip(before, model.trainable_variables, strict=True))
