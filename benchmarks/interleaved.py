"""Pure parts of benchmarks/original_step.py: the order of its interleaved rounds and the
summary of their rates. No flags are defined here, so tests import it beside other benchmarks
(each of which defines its own absl flags)."""

from __future__ import annotations

from typing import Any

import numpy as np

IMPLEMENTATIONS = ("original", "ours")
TARGET = {"cycle1": 6.0}  # ours/original at least at cycle-1 shapes (the target); cycle 2 has none


def round_schedule(rounds: int) -> list[tuple[str, str]]:
    """The order of each round's two runs: original first in even rounds, ours in odd ones."""
    return [IMPLEMENTATIONS if r % 2 == 0 else IMPLEMENTATIONS[::-1] for r in range(rounds)]


def spread(values: list[float]) -> dict[str, Any]:
    """Median, min, max (rounded to 0.1 ... 3 significant places) and the values themselves."""
    def rounded(x: float) -> float:
        return round(float(x), 3 if abs(x) < 100 else 1)

    return {"median": rounded(np.median(values)), "min": rounded(min(values)),
            "max": rounded(max(values)), "rounds": [rounded(v) for v in values]}


def summarize(original: list[float], ours: list[float]) -> dict[str, dict[str, Any]]:
    """Rows/s of each implementation over the rounds, and the per-round ratio ours/original.

    Raises:
        ValueError: If the two lists are empty or of different lengths (rounds pair them).
    """
    if not original or len(original) != len(ours):
        raise ValueError(f"need one rate per round from each: {len(original)} vs {len(ours)}")
    ratios = [b / a for a, b in zip(original, ours)]
    return {"original": spread(original), "ours": spread(ours), "ratio": spread(ratios)}


def format_table(cycle: str, rows_per_step: int, summary: dict[str, dict[str, Any]]) -> str:
    """The readable table of one cycle's summary."""
    lines = [f"{cycle}: {rows_per_step} rows/step, {len(summary['ours']['rounds'])} rounds",
             f"  {'':<22}{'median':>9}{'min':>9}{'max':>9}   per round"]
    for name in IMPLEMENTATIONS:
        s = summary[name]
        lines.append(f"  {name + ' rows/s':<22}{s['median']:>9.1f}{s['min']:>9.1f}"
                     f"{s['max']:>9.1f}   " + " ".join(f"{v:.1f}" for v in s["rounds"]))
    r = summary["ratio"]
    target = TARGET.get(cycle)
    verdict = f"   (target {target:g}x: {'met' if r['median'] >= target else 'NOT met'})" \
        if target else ""
    lines.append(f"  {'ratio ours/original':<22}{r['median']:>9.2f}{r['min']:>9.2f}"
                 f"{r['max']:>9.2f}   " + " ".join(f"{v:.2f}" for v in r["rounds"]) + verdict)
    return "\n".join(lines)
