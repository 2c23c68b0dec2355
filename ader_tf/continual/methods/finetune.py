"""Fine-tuning: each cycle continues from the last on the new period alone, without dropout."""

from __future__ import annotations

from ader_tf.continual.methods.base import Method


class Finetune(Method):
    """The lower bound of the paper's Table 2: cross-entropy only, dropout 0 (as the original)."""

    name = "finetune"
    trains_with_dropout = False
    plain_loss = True
    search_space = ()  # no weight of its own: nothing to tune
