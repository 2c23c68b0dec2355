"""Session encoders (SASRec) and the recommender model with continual losses."""

from ader_tf.models.recommender import FusedAdam, SessionRecommender, make_optimizer
from ader_tf.models.sasrec import SASRecEncoder

__all__ = ["FusedAdam", "SASRecEncoder", "SessionRecommender", "make_optimizer"]
