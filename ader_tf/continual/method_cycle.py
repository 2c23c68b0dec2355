"""A method's part of each cycle, as the cycle loop plays it.

The loop owns what a method reads of a cycle (Avalanche's habit): the weight variable its
objective keeps, the objects it builds once (`KeptObjects`), the teacher refilled once per
cycle, the exemplars. `MethodCycle` hands them to the method as a `CycleContext` at three
points: before training (its weight and objective), after the exemplars are kept (its
end-of-cycle hook) and on resume (its saved state). A learner that does not train (the kNN
baselines) gives the method nothing to do at any of them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from ader_tf.continual.methods import CycleContext, KeptObjects, Method


class MethodCycle:
    """Puts a `Method` to work in the cycles of one run.

    Args:
        method: The run's method.
        config: The run's `Config`.
        learner: The run's learner (its current ``model``, its ``teacher``, ``set_objective``).
        exemplars: Returns the exemplars kept after the last finished cycle (None if none).
        state_path: ``state_path(cycle, name)``: where the method keeps a file of a cycle.
        strategy: The run's `tf.distribute.Strategy`, under whose scope the weight and the
            objective's variables are made.
    """

    def __init__(self, method: Method, config: Any, learner: Any, exemplars: Any,
                 state_path: Any, strategy: tf.distribute.Strategy) -> None:
        self.method = method
        self.config = config
        self.learner = learner
        self.exemplars = exemplars
        self.state_path = state_path
        self.strategy = strategy
        self.kept = KeptObjects()  # what the method builds once (see `CycleContext.keep`)
        self._weight: tf.Variable | None = None

    def context(self, cycle: int, data: Any, previous: dict | None, teacher: Any = None,
                origin: np.ndarray | None = None) -> CycleContext:
        """What the method sees of ``cycle`` (see `CycleContext`)."""
        return CycleContext(
            cycle=cycle, config=self.config, model=self.learner.model, data=data,
            previous=previous, exemplars=self.exemplars(), exemplar_origin=origin,
            teacher=teacher, weight=self._weight, state_path=self.state_path, kept=self.kept,
        )

    def set_objective(self, cycle: int, data: Any, previous: dict | None) -> float:
        """Gives the learner the method's objective for ``cycle``; returns the cycle's weight
        (logged as lambda; 0 for a learner that does not train).

        The teacher (the previous cycle's best model) is refilled here, once per cycle, for a
        method that uses one.
        """
        if not self.learner.trains:
            return 0.0
        teacher = None
        if self.method.uses_teacher and previous is not None:
            teacher = self.learner.teacher(previous)
        if self._weight is None:
            with self.strategy.scope():
                self._weight = tf.Variable(0.0, trainable=False, dtype=tf.float32)
        ctx = self.context(cycle, data, previous, teacher)
        weight = self.method.weight(ctx)
        self._weight.assign(weight)
        with self.strategy.scope():  # objectives may create variables
            self.learner.set_objective(self.method.objective(ctx))
        return weight

    def after_cycle(self, cycle: int, data: Any, previous: dict | None,
                    origin: np.ndarray | None = None) -> None:
        """Runs the method's end-of-cycle hook (e.g. EWC's Fisher information), after the
        exemplars of ``cycle`` are kept; ``origin`` maps them to the previous set's rows."""
        if self.learner.trains:
            self.method.after_cycle(self.context(cycle, data, previous, origin=origin))

    def restore(self, cycle: int) -> None:
        """Restores what the method saved after ``cycle`` (a resumed run's last one)."""
        if self.learner.trains:
            self.method.restore(self.context(cycle, None, previous=None))


__all__ = ["MethodCycle"]
