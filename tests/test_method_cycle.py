"""`MethodCycle`: what a method is given at each point of a cycle, and when it is asked."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ader_tf.continual.method_cycle import MethodCycle
from ader_tf.continual.methods import CycleContext


class RecordingMethod:
    """A method that records each context it is given; its weight is 0.1 x the cycle."""

    def __init__(self, uses_teacher: bool) -> None:
        self.uses_teacher = uses_teacher
        self.calls: list[tuple[str, CycleContext]] = []

    def weight(self, ctx: CycleContext) -> float:
        self.calls.append(("weight", ctx))
        return 0.1 * ctx.cycle

    def objective(self, ctx: CycleContext) -> tuple[str, int]:
        self.calls.append(("objective", ctx))
        # What a kept objective sees: the one weight variable, read when it runs.
        return ("objective", ctx.cycle)

    def after_cycle(self, ctx: CycleContext) -> None:
        self.calls.append(("after_cycle", ctx))

    def restore(self, ctx: CycleContext) -> None:
        self.calls.append(("restore", ctx))


class FakeLearner:
    def __init__(self, trains: bool = True) -> None:
        self.trains = trains
        self.model = object()
        self.objectives: list = []
        self.teachers_for: list = []

    def teacher(self, previous: dict) -> str:
        self.teachers_for.append(previous["cycle"])
        return f"teacher after cycle {previous['cycle']}"

    def set_objective(self, objective) -> None:
        self.objectives.append(objective)


def make(method: RecordingMethod, learner: FakeLearner, exemplars=None) -> MethodCycle:
    return MethodCycle(method, config="the config", learner=learner,
                       exemplars=lambda: exemplars, state_path=lambda c, n: f"{c}/{n}",
                       strategy=tf.distribute.get_strategy())


def test_each_cycle_sets_the_weight_in_one_variable_and_gives_the_objective():
    method, learner = RecordingMethod(uses_teacher=False), FakeLearner()
    cycles = make(method, learner)
    assert cycles.set_objective(1, "data 1", None) == 0.1
    weight = method.calls[-1][1].weight
    assert float(weight.numpy()) == np.float32(0.1)
    assert cycles.set_objective(2, "data 2", {"cycle": 1}) == 0.2
    # The same variable, now holding cycle 2's weight: objectives built once see it change.
    assert method.calls[-1][1].weight is weight
    assert float(weight.numpy()) == np.float32(0.2)
    assert learner.objectives == [("objective", 1), ("objective", 2)]
    ctx = method.calls[-1][1]
    assert (ctx.cycle, ctx.data, ctx.previous, ctx.config) == (2, "data 2", {"cycle": 1},
                                                                "the config")
    assert ctx.model is learner.model and ctx.kept is cycles.kept
    assert ctx.state_path(2, "fisher") == "2/fisher"


def test_the_teacher_is_refilled_once_a_cycle_only_for_a_method_that_uses_one():
    learner = FakeLearner()
    cycles = make(RecordingMethod(uses_teacher=True), learner)
    cycles.set_objective(1, "data 1", None)  # no previous model: no teacher
    cycles.set_objective(2, "data 2", {"cycle": 1})
    assert learner.teachers_for == [1]
    assert cycles.method.calls[-1][1].teacher == "teacher after cycle 1"
    assert cycles.method.calls[0][1].teacher is None

    plain = FakeLearner()
    make(RecordingMethod(uses_teacher=False), plain).set_objective(2, "data 2", {"cycle": 1})
    assert plain.teachers_for == []


def test_after_cycle_sees_the_exemplars_just_kept_and_their_origin():
    kept = ["exemplar a", "exemplar b"]
    method = RecordingMethod(uses_teacher=False)
    origin = np.array([-1, 0])
    make(method, FakeLearner(), exemplars=kept).after_cycle(3, "data 3", {"cycle": 2},
                                                            origin=origin)
    (hook, ctx), = method.calls
    assert hook == "after_cycle" and ctx.cycle == 3 and ctx.exemplars is kept
    np.testing.assert_array_equal(ctx.exemplar_origin, origin)


def test_restore_asks_the_method_for_the_last_finished_cycle():
    method = RecordingMethod(uses_teacher=False)
    make(method, FakeLearner()).restore(4)
    (hook, ctx), = method.calls
    assert (hook, ctx.cycle, ctx.data, ctx.previous) == ("restore", 4, None, None)


def test_a_learner_that_does_not_train_gives_the_method_nothing_to_do():
    method, learner = RecordingMethod(uses_teacher=True), FakeLearner(trains=False)
    cycles = make(method, learner)
    assert cycles.set_objective(2, "data 2", {"cycle": 1}) == 0.0
    cycles.after_cycle(2, "data 2", {"cycle": 1})
    cycles.restore(2)
    assert method.calls == [] and learner.objectives == [] and learner.teachers_for == []
