"""Session encoders (SASRec, GRU4Rec, STAMP/STMP), the recommender model with continual losses,
and the untrained session-kNN baselines."""

from ader_tf.models.encoder import SessionEncoder
from ader_tf.models.gru4rec import GRU4RecEncoder
from ader_tf.models.recommender import FusedAdam, SessionRecommender, make_optimizer
from ader_tf.models.sasrec import SASRecEncoder
from ader_tf.models.sknn import SessionKNN
from ader_tf.models.stamp import STAMPEncoder

__all__ = [
    "FusedAdam",
    "GRU4RecEncoder",
    "SASRecEncoder",
    "STAMPEncoder",
    "SessionEncoder",
    "SessionKNN",
    "SessionRecommender",
    "make_optimizer",
]
