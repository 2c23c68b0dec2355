"""Experience replay: ADER's exemplars replayed on their own targets, no distillation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ader_tf.continual.methods.ader import ADER
from ader_tf.continual.methods.base import CycleContext
from ader_tf.search_space import FloatRange

# The objectives are imported where they are built, so that --help needs no TensorFlow.
if TYPE_CHECKING:
    from ader_tf.objectives import Objective


class ER(ADER):
    """Cross-entropy on the new period plus lambda_t times cross-entropy on the exemplars.

    The paper's ablation (`--disable_distillation`): same exemplars and adaptive weight.
    """

    name = "er"
    uses_teacher = False
    # The base of the adaptive weight of the replay term, as ADER's.
    search_space = (FloatRange("lambda_", 0.05, 5.0, log=True),)

    def exemplar_term(self, ctx: CycleContext) -> Objective:
        from ader_tf.objectives import Replay

        return Replay(ctx.weight)
