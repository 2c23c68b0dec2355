"""ader_tf: ADER continual learning for session-based recommendation (TF2 / Keras 3)."""

__version__ = "0.1.0"
