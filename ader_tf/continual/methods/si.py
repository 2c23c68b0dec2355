"""SI (Zenke, Poole and Ganguli, "Continual Learning Through Synaptic Intelligence", ICML 2017):
an importance penalty whose importance is measured along the training path itself."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ader_tf.continual.methods.base import CycleContext, Method, refuse_distribution
from ader_tf.objectives import Objective
from ader_tf.options import positive
from ader_tf.search_space import FloatRange

# TensorFlow (and what needs it) is imported inside the functions that use it, so that --help
# needs none; `Objective`, the interface `PathIntegral` implements, needs none.
if TYPE_CHECKING:
    import tensorflow as tf

    from ader_tf.continual.importance import ImportanceState
    from ader_tf.objectives import ImportancePenalty, StepInputs, Term

log = logging.getLogger(__name__)


class PathIntegral(Objective):
    """Accumulates SI's path integral w = sum_t -g_t * (theta_{t+1} - theta_t) per weight.

    Adds no loss term: it only reads each step's gradient in `adjust_gradients` (inside the
    compiled training step) and keeps the weights it saw, so that the next step can multiply
    this step's gradient by the move that followed it. The integral therefore lags one step:
    after n steps it holds the first n - 1 of them.

    g_t is the gradient of the *task* loss, without SI's own penalty, as the authors' code
    takes it (ganguli-lab/pathint, its ``unreg_grads``): the importance is then what a weight
    did for this cycle's loss, not its resistance to the old importance's pull (which would
    count old cycles again). The step hands over the gradient of the whole loss, so the
    penalty's own gradient is subtracted (a few element-wise ops, where a second backward
    pass would nearly double the step's cost). Measuring the move (rather than
    learning rate x g, as Mammoth's SI does for SGD) keeps the integral exact under Adam.

    Args:
        variables: The model's trainable variables, in order (the integral's shapes).
        penalty: SI's penalty in this cycle's loss, whose gradient is taken out of g_t;
            None in the first cycle.
    """

    def __init__(self, variables: Sequence[Any], penalty: ImportancePenalty | None = None) -> None:
        import tensorflow as tf

        self.variables = list(variables)
        self.penalty = penalty
        values = [np.array(tf.convert_to_tensor(v)) for v in self.variables]
        #: The weights the cycle started from.
        self.start = tuple(tf.constant(v) for v in values)
        # Created under the caller's strategy scope (the loop's), read and written by the step.
        self.integral = [tf.Variable(np.zeros_like(v), trainable=False) for v in values]
        self._last_weights = [tf.Variable(v, trainable=False) for v in values]
        # Zero before the first step, so that the first step adds nothing.
        self._last_gradient = [tf.Variable(np.zeros_like(v), trainable=False) for v in values]
        #: Training steps seen (the integral covers all but the last).
        self.steps = tf.Variable(0, dtype=tf.int64, trainable=False)

    def terms(self, inputs: StepInputs) -> dict[str, Term]:
        return {}

    def task_gradients(self, gradients: Sequence[tf.Tensor | None]) -> list[tf.Tensor]:
        """The step's gradients without the penalty's (zeros where a variable has none)."""
        import tensorflow as tf

        dense = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
                 for g, v in zip(gradients, self.start, strict=True)]
        if self.penalty is None:
            return dense
        with tf.GradientTape() as tape:
            value = self.penalty.penalty(self.variables)
        own = tape.gradient(value, self.variables)
        return [g if p is None else g - tf.convert_to_tensor(p)
                for g, p in zip(dense, own, strict=True)]

    def adjust_gradients(
        self, gradients: list[tf.Tensor], reference: list[tf.Tensor] | None
    ) -> list[tf.Tensor]:
        """Adds the last step's -g * move to the integral; the gradients pass unchanged."""
        import tensorflow as tf

        task = self.task_gradients(gradients)
        for variable, g, total, last, last_g in zip(
            self.variables, task, self.integral, self._last_weights, self._last_gradient,
            strict=True,
        ):
            now = tf.convert_to_tensor(variable)  # read before the optimizer moves it
            total.assign_add(-last_g * (now - last))
            last.assign(now)
            last_g.assign(g)
        self.steps.assign_add(1)
        return gradients


def path_integral_of(objective: Objective) -> PathIntegral | None:
    """The `PathIntegral` in ``objective`` (itself or one of its combined parts), or None."""
    if isinstance(objective, PathIntegral):
        return objective
    for part in getattr(objective, "parts", ()):
        found = path_integral_of(part)
        if found is not None:
            return found
    return None


def accumulated_importance(
    previous: Sequence[tf.Tensor], integral: Sequence[Any], start: Sequence[Any],
    end: Sequence[Any], damping: float,
) -> tuple[tf.Tensor, ...]:
    """Omega = max(0, Omega_prev + w / ((end - start)^2 + xi)), per weight.

    The clip at 0 is the authors' (their code applies a ReLU to the summed Omega): a noisy
    negative w would otherwise make the penalty push a weight away from its anchor.
    """
    import tensorflow as tf

    return tuple(
        tf.nn.relu(p + tf.convert_to_tensor(w) / (tf.square(
            tf.convert_to_tensor(e) - tf.convert_to_tensor(s)) + damping))
        for p, w, s, e in zip(previous, integral, start, end, strict=True)
    )


class SI(Method):
    """Cross-entropy plus (lambda_ / 2) * sum Omega * (theta - theta*)^2, without dropout.

    Every cycle, the first included, trains with a `PathIntegral` that sums each weight's
    contribution -g * dtheta to the decrease of the cycle's loss. After the cycle,
    Omega += w / (dtheta^2 + xi), with dtheta the weight's move over the cycle and xi
    `--si_damping`, and the anchor theta* becomes the cycle's weights. Omega sums over the
    cycles (as MAS's does here); rows an item table gains later start at importance 0.

    Choices:
    - The penalty keeps EWC's and MAS's halved form, so `--lambda_` is twice the paper's c
      and means the same for the three penalty methods; like them, SI trains without dropout.
    - The anchor is the best epoch's weights (restored by early stopping), and dtheta is
      best minus start. w sums the whole path run, the epochs after the best one included:
      the weights the path reached are gone once the best epoch is restored, and the path's
      later steps still show which weights the cycle's loss depends on. The path's last
      step is left out (the step whose endpoint the restore replaces; one of thousands).
    - xi defaults to 1e-3, the authors' value for their split MNIST and split CIFAR
      benchmarks (ganguli-lab/pathint; permuted MNIST used 0.1).

    The path integral needs the whole step's gradient; under tf.distribute a replica holds
    only its share, so SI runs on one device. While a cycle trains it holds four copies of
    the weights (start, last weights, last gradient, w) besides Omega and the anchor.
    """

    name = "si"
    trains_with_dropout = False
    options = (positive("si_damping", 1e-3, "SI: damping xi of the importance "
                        "w / (dtheta^2 + xi) (the authors' 1e-3)."),)
    search_space = (FloatRange("lambda_", 1e-3, 1e3, log=True),)
    # Its importance is measured along cycle 1's training path, which no checkpoint holds: a
    # run of SI trains its first cycle itself.
    shares_first_cycle = False

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.state: ImportanceState | None = None

    @classmethod
    def check_config(cls, config: Any) -> None:
        super().check_config(config)
        refuse_distribution(config, "integrates each weight's gradient along the training path")

    def weight(self, ctx: CycleContext) -> float:
        return 0.0 if ctx.previous is None else self.config.lambda_

    def objective(self, ctx: CycleContext) -> Objective:
        """Cross-entropy and the path integral; from the second cycle on, the penalty too."""
        from ader_tf.objectives import combine

        if ctx.previous is None:
            return combine(self.cross_entropy, PathIntegral(ctx.model.trainable_variables))
        return self.continual_objective(ctx)

    def continual_objective(self, ctx: CycleContext) -> Objective:
        if self.state is None:
            raise ValueError(f"cycle {ctx.cycle}: no SI importance from the previous cycle")
        from ader_tf.objectives import ImportancePenalty, combine

        variables = ctx.model.trainable_variables
        state = self.state.fit_to(variables)
        penalty = ImportancePenalty(state.importance, state.anchor, self.weight(ctx), "si_loss")
        return combine(self.cross_entropy, penalty, PathIntegral(variables, penalty))

    def after_cycle(self, ctx: CycleContext) -> None:
        """Adds this cycle's importance to Omega and anchors at the (best) weights."""
        import tensorflow as tf

        from ader_tf.continual.importance import ImportanceState

        variables = ctx.model.trainable_variables
        end = tuple(tf.identity(tf.convert_to_tensor(v)) for v in variables)
        previous = (tuple(tf.zeros_like(e) for e in end) if self.state is None
                    else self.state.fit_to(variables).importance)
        # The path integral is found in the objective the model trained with: the loop holds
        # it for the cycle, and the method keeps nothing of it across cycles.
        path = path_integral_of(ctx.model.objective)
        importance, steps = previous, 0
        if path is None:
            log.warning("cycle %d: the model did not train with SI's path integral; its "
                        "importance adds nothing this cycle", ctx.cycle)
        else:
            if len(path.variables) != len(variables) or any(
                    a is not b for a, b in zip(path.variables, variables, strict=True)):
                raise ValueError(f"cycle {ctx.cycle}: SI's path integral was measured on "
                                 "another model's variables")
            importance = accumulated_importance(previous, path.integral, path.start, end,
                                                self.config.si_damping)
            steps = max(int(path.steps.numpy()) - 1, 0)
        done = 0 if self.state is None else self.state.num_examples
        # `num_examples` holds the training steps the path integrals are over.
        self.state = ImportanceState(importance, end, done + steps)
        self.state.save(ctx.state_path(ctx.cycle, "si"))

    def restore(self, ctx: CycleContext) -> None:
        from ader_tf.continual.importance import ImportanceState

        self.state = ImportanceState.load(ctx.state_path(ctx.cycle, "si"), ctx.model)
