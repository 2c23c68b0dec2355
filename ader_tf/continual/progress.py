"""The progress bar of a training epoch, as a Keras callback.

Kept apart from the neural learner so that reading the learner's declaration (its name and
options, as `--help` does) needs no Keras: the learner imports this module when it trains.
"""

from __future__ import annotations

import keras
from tqdm.auto import tqdm


class ProgressBar(keras.callbacks.Callback):
    """A tqdm bar over the batches of one epoch; remembers the first step's loss."""

    def __init__(self, total: int, desc: str, enabled: bool) -> None:
        super().__init__()
        self.bar = tqdm(total=total, desc=desc, leave=False, unit="b", disable=not enabled)
        self.first_loss: float | None = None

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.bar.update(1)
        if batch == 0 and logs and "loss" in logs:
            self.first_loss = float(logs["loss"])  # compares distributed runs with one device
        if logs and "loss" in logs:
            self.bar.set_postfix(loss=f"{float(logs['loss']):.4f}")

    def on_train_end(self, logs: dict | None = None) -> None:
        self.bar.close()
