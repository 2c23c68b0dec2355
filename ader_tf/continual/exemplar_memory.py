"""The exemplars a run keeps between cycles: chosen after each cycle, saved, reloaded on resume."""

from __future__ import annotations

from typing import Any

import numpy as np

from ader_tf.continual import exemplar_selection, exemplar_store
from ader_tf.data.cycles import CycleData
from ader_tf.data.examples import Examples
from ader_tf.evaluation import apply_in_order, require_finite
from ader_tf.random_streams import RandomStreams


class ExemplarMemory:
    """The kept exemplars and what the next selection depends on.

    Args:
        config: The run's Config (``--selection``, ``--exemplar_size``, ``--equal_exemplar``).
        paths: The run's `RunPaths` (where each cycle's exemplars are written).
        bar_label: ``bar_label(desc)``: a progress bar's label, or None for no bar.
    """

    def __init__(self, config: Any, paths: Any, bar_label: Any) -> None:
        self.config = config
        self.paths = paths
        self.bar_label = bar_label
        #: The exemplars kept after the last finished cycle (None before any).
        self.exemplars: Examples | None = None
        self.stream_seen = 0  # examples the reservoir has seen (--selection=reservoir)

    def _metadata(self, cycle: int, max_item: int) -> dict[str, Any]:
        return {
            "cycle": cycle,
            "max_item": max_item,
            "method": self.config.selection,
            "config_fingerprint": self.config.fingerprint(),
        }

    def load(self, cycle: int, max_item: int) -> None:
        """Reloads the exemplars kept after ``cycle`` (checked against this run's config)."""
        inputs, targets, metadata = exemplar_store.load_exemplars(
            self.paths.exemplars(cycle), expected=self._metadata(cycle, max_item)
        )
        self.stream_seen = int(metadata.get("stream_seen", 0))
        self.exemplars = Examples(inputs, targets)

    def select(self, cycle: int, data: CycleData, model: Any) -> np.ndarray:
        """Picks and saves the exemplars kept after ``cycle``; they replace the kept ones.

        Args:
            cycle: The finished cycle.
            data: Its data (the candidates are its training and validation examples).
            model: The trained model (herding reads its session vectors, loss selection its
                losses); None for selections that need none.

        Returns:
            For each new exemplar, its row in the previous exemplar set (-1: a new row).
        """
        new = Examples.concatenate([data.train, data.valid])
        rng = RandomStreams(self.config.random_seed).generator("exemplar_selection", cycle)
        metadata = self._metadata(cycle, data.max_item)
        if self.config.selection == "reservoir":
            old = self.exemplars if self.exemplars is not None else new.subset(np.arange(0))
            index = exemplar_selection.reservoir_select(
                len(old), self.stream_seen, len(new), self.config.exemplar_size, rng
            )
            chosen = Examples.concatenate([old, new]).subset(index)
            origin = np.where(index < len(old), index, -1)
            self.stream_seen += len(new)
            metadata["stream_seen"] = self.stream_seen  # what the next cycle's draws depend on
        else:
            chosen, origin = self._select_by_item_quota(data, new, model, rng)
        exemplar_store.save_exemplars(
            self.paths.exemplars(cycle), chosen.inputs, chosen.targets, metadata
        )
        self.exemplars = chosen
        return origin

    def _select_by_item_quota(
        self, data: CycleData, new: Examples, model: Any, rng: np.random.Generator
    ) -> tuple[Examples, np.ndarray]:
        """ADER's selection: a quota per item, filled by herding, loss or at random from this
        cycle's examples and the previous exemplars (one forward pass, then per item)."""
        candidates = Examples.concatenate([new] + ([self.exemplars] if self.exemplars else []))
        quotas = exemplar_selection.exemplar_quotas(
            candidates.targets, self.config.exemplar_size, data.max_item,
            self.config.equal_exemplar, rng,
        )
        reps = losses = None
        batch = max(self.config.test_batch, 512)
        if self.config.selection == "herding":
            reps = require_finite(apply_in_order(
                lambda f, t: model.represent(f["item_ids"]), candidates, batch,
                self.bar_label("Representing candidates"),
            ), "session vectors")
        elif self.config.selection == "loss":
            losses = require_finite(apply_in_order(
                model.per_example_loss, candidates, batch, self.bar_label("Scoring candidates")
            ), "losses")
        index = exemplar_selection.select_exemplars(
            candidates.targets, quotas, self.config.selection, reps=reps, losses=losses, rng=rng
        )
        return candidates.subset(index), np.where(index >= len(new), index - len(new), -1)
