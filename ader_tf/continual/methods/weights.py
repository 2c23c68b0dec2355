"""A scalar weight that changes between cycles without retracing the training step."""

from __future__ import annotations

import tensorflow as tf


class CycleWeight:
    """A float32 variable created on first use (under the caller's tf.distribute strategy).

    Objectives hold the variable, so the compiled step reads the new value after `set`.
    """

    def __init__(self) -> None:
        self._variable: tf.Variable | None = None

    def set(self, value: float) -> tf.Variable:
        """Assigns `value` and returns the variable."""
        if self._variable is None:
            self._variable = tf.Variable(0.0, trainable=False, dtype=tf.float32)
        self._variable.assign(float(value))
        return self._variable
