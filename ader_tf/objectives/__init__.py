"""Training objectives: what a training step minimises, as per-term local sums and row counts.

The recommender's training step asks its objective for named terms (`Term`: a local sum, the
rows it averages over, a weight); it reduces the counts across replicas and divides in one
place. Objectives know nothing of cycles, files or methods; continual methods compose them.

Each name below is imported from its module when first asked for, so that importing this
package (as the methods' declarations do for `--help`) needs no TensorFlow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ader_tf.lazy import lazy_exports

if TYPE_CHECKING:
    from ader_tf.objectives.base import Objective, StepInputs, Term, combine
    from ader_tf.objectives.consistency import Consistency
    from ader_tf.objectives.cross_entropy import CrossEntropy, Replay
    from ader_tf.objectives.distillation import Distillation
    from ader_tf.objectives.gradient_projection import GradientProjection
    from ader_tf.objectives.logit_matching import LogitMatching
    from ader_tf.objectives.penalty import ImportancePenalty
    from ader_tf.objectives.screening import FisherScreening

#: The module of this package that defines each name.
_MODULES = {
    "Objective": "base", "StepInputs": "base", "Term": "base", "combine": "base",
    "Consistency": "consistency",
    "CrossEntropy": "cross_entropy", "Replay": "cross_entropy",
    "Distillation": "distillation",
    "GradientProjection": "gradient_projection",
    "LogitMatching": "logit_matching",
    "ImportancePenalty": "penalty",
    "FisherScreening": "screening",
}


__getattr__, __dir__ = lazy_exports(__name__, _MODULES, globals())

__all__ = [
    "Consistency",
    "CrossEntropy",
    "Distillation",
    "FisherScreening",
    "GradientProjection",
    "ImportancePenalty",
    "LogitMatching",
    "Objective",
    "Replay",
    "StepInputs",
    "Term",
    "combine",
]
