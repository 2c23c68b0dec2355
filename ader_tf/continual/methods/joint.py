"""Joint training: every cycle retrains a new model on all periods so far (the upper bound)."""

from __future__ import annotations

from ader_tf.continual.methods.base import Method


class Joint(Method):
    """Cross-entropy on the union of all training periods up to the cycle, from scratch."""

    name = "joint"
    retrains_from_scratch = True
    plain_loss = True
    search_space = ()  # no weight of its own: nothing to tune
