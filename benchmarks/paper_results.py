"""The paper's published numbers, read from ``paper_results.json`` (its provenance is in the file).

Kept as data rather than code so that a corrected or added value is an edit of one file, with its
source beside it, and the tables that print the paper's numbers never hold a copy of their own.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os

PAPER_RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "paper_results.json")

# (Recall@20, MRR@20) per cycle, in percent, the first value being cycle 1's.
PerCycle = tuple[list[float], list[float]]


@dataclasses.dataclass(frozen=True)
class PaperResults:
    """The paper's numbers in percent, by dataset and then by our method names.

    Attributes:
        provenance: Where each part of the data comes from, as the file states it.
        table2: Mean (Recall@20, MRR@20) over the 16 cycles (the paper's Table 2).
        ablation_recall20: Mean Recall@20 of the ablations (the paper gives no MRR@20).
        per_cycle: Each cycle's (Recall@20, MRR@20) lists, cycle 1 first.
    """

    provenance: dict[str, str]
    table2: dict[str, dict[str, tuple[float, float]]]
    ablation_recall20: dict[str, dict[str, float]]
    per_cycle: dict[str, dict[str, PerCycle]]

    def means(self, dataset: str, method: str) -> tuple[float | None, float | None]:
        """The paper's 16-cycle (Recall@20, MRR@20) of a method; None where it gives none."""
        if method in self.table2.get(dataset, {}):
            return self.table2[dataset][method]
        return self.ablation_recall20.get(dataset, {}).get(method), None


@functools.cache
def load_paper_results(path: str = PAPER_RESULTS) -> PaperResults:
    """Reads the paper's numbers from ``path`` (cached: the file does not change in a run).

    Raises:
        ValueError: when a per-cycle list does not have one value per cycle of each metric.
    """
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    per_cycle: dict[str, dict[str, PerCycle]] = {}
    for dataset, methods in data["per_cycle"].items():
        per_cycle[dataset] = {}
        for method, values in methods.items():
            recall, mrr = values["recall20"], values["mrr20"]
            if len(recall) != len(mrr):
                raise ValueError(f"{path}: per_cycle {dataset} {method} must give Recall@20 and "
                                 f"MRR@20 for the same cycles, got {len(recall)} and {len(mrr)}")
            per_cycle[dataset][method] = (recall, mrr)
    return PaperResults(
        provenance=data["provenance"],
        table2={d: {m: (v["recall20"], v["mrr20"]) for m, v in methods.items()}
                for d, methods in data["table2"].items()},
        ablation_recall20=data["ablation_recall20"],
        per_cycle=per_cycle,
    )
