"""What a study tried: every trial as a CSV row, the objective against each tuned value as a
plot, and the values whose best lies at an end of its range.

``python -m ader_tf.tune`` writes ``<study>-trials.csv`` and ``<study>-trials.png`` beside the
tuned file when a study is done: the tuned file keeps the best trial only, and a reader of a
comparison needs to see how the objective moved over the range (flat, a clear peak, or best
at an end, where the range may be too narrow).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from ader_tf.io_utils import atomic_path
from ader_tf.search_space import FloatRange, Param
from ader_tf.tuning import RUNS_OF

# Share of a range (in log space for a log range) that counts as its end.
END_SHARE = 0.05


def trials_frame(study: Any) -> pd.DataFrame:
    """One row per trial: number, state, objective, each tuned value, the running mean the
    pruner saw after each tuning cycle (``step_<k>``), minutes and whose run folders it used."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {
            "number": trial.number,
            "state": trial.state.name.lower(),
            "objective": trial.value,
            **{f"--{name}": value for name, value in sorted(trial.params.items())},
            **{f"step_{step}": value
               for step, value in sorted(trial.intermediate_values.items())},
            "minutes": (round((trial.datetime_complete - trial.datetime_start)
                              .total_seconds() / 60, 1)
                        if trial.datetime_complete and trial.datetime_start else None),
            # A retried trial runs (and continues) the run folders of the trial it retries.
            RUNS_OF: trial.user_attrs.get(RUNS_OF, trial.number),
        }
        rows.append(row)
    return pd.DataFrame(rows)


def write_trials_csv(study: Any, path: str) -> None:
    """`trials_frame` as CSV at ``path``, atomically."""
    with atomic_path(path) as tmp:
        trials_frame(study).to_csv(tmp, index=False)


def at_range_end(space: Iterable[Param], values: dict[str, Any]) -> list[str]:
    """The float values of ``values`` that lie within `END_SHARE` of an end of their range
    (log space for log ranges), as ``--name=value (low end of low..high)``."""
    found = []
    for param in space:
        if not isinstance(param, FloatRange) or param.name not in values:
            continue
        scale = math.log if param.log else float
        low, high, value = scale(param.low), scale(param.high), scale(values[param.name])
        share = (value - low) / (high - low)
        for end, near in (("low", share <= END_SHARE), ("high", share >= 1 - END_SHARE)):
            if near:
                found.append(f"--{param.name}={values[param.name]:.4g} ({end} end of "
                             f"{param.low:g}..{param.high:g})")
    return found


def write_trials_plot(study: Any, space: Sequence[Param], path: str, title: str) -> None:
    """The objective against each float value of ``space``, one panel each: completed
    trials filled, pruned ones hollow at the last running mean the pruner saw."""
    floats = [p for p in space if isinstance(p, FloatRange)]
    frame = trials_frame(study)
    if not floats or frame.empty:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [c for c in frame.columns if c.startswith("step_")]
    last_step = frame[steps].ffill(axis=1).iloc[:, -1] if steps else frame["objective"]
    fig, axes = plt.subplots(1, len(floats), figsize=(4.5 * len(floats), 3.6), squeeze=False)
    for ax, param in zip(axes[0], floats, strict=True):
        column = f"--{param.name}"
        for state, y, style in (("complete", frame["objective"], {"color": "C0"}),
                                ("pruned", last_step, {"facecolors": "none",
                                                       "edgecolors": "C1"})):
            rows = frame["state"] == state
            if rows.any() and column in frame:
                ax.scatter(frame.loc[rows, column], 100 * y[rows], label=state, **style)
        ax.set_xlim(param.low, param.high)
        if param.log:
            ax.set_xscale("log")
        ax.set_xlabel(column)
        ax.set_ylabel("validation Recall@20 (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


__all__ = ["at_range_end", "trials_frame", "write_trials_csv", "write_trials_plot"]
