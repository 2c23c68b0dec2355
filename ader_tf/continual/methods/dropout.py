"""Fine-tuning with dropout, the paper's regularisation baseline."""

from __future__ import annotations

from ader_tf.continual.methods.base import Method


class Dropout(Method):
    """Cross-entropy on the new period only, with `--dropout_rate`."""

    name = "dropout"
    plain_loss = True
    search_space = ()  # no weight of its own: nothing to tune
