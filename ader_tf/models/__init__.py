"""Session encoders (SASRec, GRU4Rec, STAMP/STMP), the recommender model with continual losses,
and the untrained session-kNN baselines.

Each name below is imported from its module when first asked for, so that importing a module
of this package that needs no TensorFlow (the backbones' options in `factory`, for `--help`)
does not import it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ader_tf.lazy import lazy_exports

if TYPE_CHECKING:
    from ader_tf.models.encoder import SessionEncoder
    from ader_tf.models.gru4rec import GRU4RecEncoder
    from ader_tf.models.recommender import FusedAdam, SessionRecommender, make_optimizer
    from ader_tf.models.sasrec import SASRecEncoder
    from ader_tf.models.sknn import SessionKNN
    from ader_tf.models.stamp import STAMPEncoder

#: The module of this package that defines each name.
_MODULES = {
    "SessionEncoder": "encoder",
    "GRU4RecEncoder": "gru4rec",
    "FusedAdam": "recommender", "SessionRecommender": "recommender",
    "make_optimizer": "recommender",
    "SASRecEncoder": "sasrec",
    "SessionKNN": "sknn",
    "STAMPEncoder": "stamp",
}


__getattr__, __dir__ = lazy_exports(__name__, _MODULES, globals())

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
