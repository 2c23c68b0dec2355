"""Learners, one file each, found by name in `LEARNERS`: how a family of backbones trains.

`learner_name(config)` says which one a run uses: the kNN learner for ``--model=sknn`` /
``vsknn``, the session-parallel one for GRU4Rec with ``--gru4rec_training=session_parallel``,
the neural one otherwise.

Importing this package imports no TensorFlow (`python main.py --help` reads `LEARNERS`): a
learner's file imports what needs it inside the functions that use it.
"""

from __future__ import annotations

from typing import Any

from ader_tf.continual.learners.base import Learner, RunContext, Training, TrainingDivergedError
from ader_tf.continual.learners.knn import KNN_MODELS, KNNLearner
from ader_tf.continual.learners.neural import NeuralLearner
from ader_tf.continual.learners.session_parallel import SessionParallelLearner

LEARNERS: dict[str, type[Learner]] = {
    cls.name: cls for cls in (NeuralLearner, SessionParallelLearner, KNNLearner)
}


def learner_name(config: Any) -> str:
    """The learner that trains ``config.model`` the way ``config`` asks."""
    if config.model in KNN_MODELS:
        return KNNLearner.name
    if config.model == "gru4rec" and config.gru4rec_training == "session_parallel":
        return SessionParallelLearner.name
    return NeuralLearner.name


def make_learner(run: RunContext) -> Learner:
    """The learner of ``run.config``."""
    return LEARNERS[learner_name(run.config)](run)


__all__ = ["KNN_MODELS", "LEARNERS", "Learner", "RunContext", "Training", "TrainingDivergedError",
           "learner_name", "make_learner"]
