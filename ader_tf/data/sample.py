"""A small built-in dataset in the period-file format, so that ``python main.py`` runs anywhere.

Sessions are walks through "topics": each topic is a set of items with a fixed transition
structure (from each item, two preferred next items), so a sequence model can learn far more
than item popularity. The data drifts the way real shops do:

* new items arrive every period (each active topic swaps a few items for new ones);
* topics fade and return: most topics are active only every other period, so a model trained
  on the last period alone forgets topics that come back in the next one;
* a few popular topics are always on.

The same sessions can also be written as a raw click log (``write_sample_click_log``), one
period every ``SAMPLE_PERIOD_DAYS`` days, to walk through ``python -m preprocessing`` on a
shop-like log, including ``--append`` with the later periods.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Iterable

import numpy as np
import pandas as pd

from ader_tf.io_utils import atomic_path, write_json_atomic

MARKER = "dataset.json"
SAMPLE_START = "2024-01-01T00:00:00Z"  # a Monday: period p is the p-th week of 2024
SAMPLE_PERIOD_DAYS = 7
# Sessions start an hour into their period and end an hour before its end at the latest, so
# no click falls on a period boundary; clicks of a session are a minute apart.
_MARGIN_SECONDS = 3600
_CLICK_SECONDS = 60


@dataclasses.dataclass(frozen=True)
class SampleConfig:
    """Knobs of the generator (defaults give ~1,000 items over 10 periods)."""

    seed: int = 0
    num_periods: int = 10
    num_topics: int = 24
    always_on_topics: int = 4
    items_per_topic: int = 24
    new_items_per_period: int = 2
    sessions_per_period: int = 500
    mean_extra_length: float = 3.0
    max_length: int = 15
    follow_probability: float = 0.85


@dataclasses.dataclass
class _Topic:
    items: list[int]
    successors: dict[int, tuple[int, int]]
    weight: float


def _make_successors(items: list[int], rng: np.random.Generator) -> dict[int, tuple[int, int]]:
    return {i: tuple(int(x) for x in rng.choice(items, size=2, replace=False)) for i in items}


def _is_active(topic: int, period: int, cfg: SampleConfig) -> bool:
    """Always-on topics are active in every period; the others every other period."""
    if topic < cfg.always_on_topics:
        return True
    return (topic + period) % 2 == 0


def _walk(topic: _Topic, length: int, cfg: SampleConfig, rng: np.random.Generator) -> list[int]:
    session = [int(rng.choice(topic.items))]
    while len(session) < length:
        first, second = topic.successors[session[-1]]
        u = rng.random()
        if u < cfg.follow_probability * 0.75:
            session.append(first)
        elif u < cfg.follow_probability:
            session.append(second)
        else:
            session.append(int(rng.choice(topic.items)))
    return session


def _drift(topic: _Topic, next_id: int, cfg: SampleConfig, rng: np.random.Generator) -> int:
    """Replaces a few items of ``topic`` by new ones; returns the next free item id.

    A new item takes over the retired item's place in the transition structure (its
    successors and the links to it), so the topic's patterns stay learnable across periods.
    """
    for _ in range(cfg.new_items_per_period):
        old = int(rng.choice(topic.items))
        topic.items[topic.items.index(old)] = next_id
        topic.successors[next_id] = topic.successors.pop(old)
        for item, (first, second) in topic.successors.items():
            topic.successors[item] = (next_id if first == old else first,
                                      next_id if second == old else second)
        next_id += 1
    return next_id


def generate_periods(cfg: SampleConfig) -> list[list[list[int]]]:
    """Generates ``cfg.num_periods`` periods of sessions (raw item ids, not yet renumbered)."""
    rng = np.random.default_rng(cfg.seed)
    next_id = 1
    topics = []
    for k in range(cfg.num_topics):
        items = list(range(next_id, next_id + cfg.items_per_topic))
        next_id += cfg.items_per_topic
        topics.append(_Topic(items, _make_successors(items, rng), weight=1.0 / (1 + k) ** 0.5))
    periods = []
    for p in range(cfg.num_periods):
        active = [k for k in range(cfg.num_topics) if _is_active(k, p, cfg)]
        if p > 0:
            for k in active:
                next_id = _drift(topics[k], next_id, cfg, rng)
        weights = np.array([topics[k].weight for k in active])
        chosen = rng.choice(active, size=cfg.sessions_per_period, p=weights / weights.sum())
        lengths = 2 + np.minimum(rng.poisson(cfg.mean_extra_length, size=len(chosen)),
                                 cfg.max_length - 2)
        periods.append([_walk(topics[k], int(n), cfg, rng) for k, n in zip(chosen, lengths)])
    return periods


def _renumber(periods: list[list[list[int]]]) -> list[list[list[int]]]:
    """Item ids 1, 2, ... in order of first appearance, as the preprocessing numbers them."""
    mapping: dict[int, int] = {}
    out = []
    for sessions in periods:
        out.append([[mapping.setdefault(i, len(mapping) + 1) for i in s] for s in sessions])
    return out


def write_sample_dataset(out_dir: str, cfg: SampleConfig | None = None) -> str:
    """Writes ``period_<i>.txt`` files and ``dataset.json`` into ``out_dir`` atomically.

    The files are first written into a temporary folder beside ``out_dir`` which is then
    renamed, so an interrupted run never leaves a half-written dataset.
    """
    cfg = cfg or SampleConfig()
    periods = _renumber(generate_periods(cfg))
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-sample-", dir=parent)
    try:
        session_id = 1
        counts = []
        for p, sessions in enumerate(periods):
            lines = []
            for s in sessions:
                lines.extend(f"{session_id} {i}\n" for i in s)
                session_id += 1
            with open(os.path.join(tmp, f"period_{p}.txt"), "w", encoding="ascii") as f:
                f.writelines(lines)
            counts.append({"period": p, "sessions": len(sessions), "clicks": len(lines)})
        num_items = max(max(s) for sessions in periods for s in sessions)
        write_json_atomic(
            os.path.join(tmp, MARKER),
            {"name": "sample", "generator": dataclasses.asdict(cfg), "items": num_items,
             "periods": counts},
        )
        if os.path.isdir(out_dir):
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def ensure_sample_dataset(out_dir: str, cfg: SampleConfig | None = None) -> str:
    """Generates the sample into ``out_dir`` unless a complete one is already there."""
    if not os.path.isfile(os.path.join(out_dir, MARKER)):
        write_sample_dataset(out_dir, cfg)
    return out_dir


def sample_click_log(cfg: SampleConfig | None = None) -> pd.DataFrame:
    """The sample's sessions as clicks: session_id, item_id (the generator's raw ids), time.

    Session ids count 1, 2, ... over all periods; period p's sessions start evenly spread over
    the ``SAMPLE_PERIOD_DAYS`` days from ``SAMPLE_START`` + p periods. Rows are in time order
    (a session's clicks in click order).

    Returns:
        Columns session_id, item_id (int64), period (int64) and timestamp (int64 epoch seconds).
    """
    cfg = cfg or SampleConfig()
    start = int(pd.Timestamp(SAMPLE_START).timestamp())
    length = SAMPLE_PERIOD_DAYS * 86_400
    columns: dict[str, list[int]] = {"session_id": [], "item_id": [], "period": [],
                                     "timestamp": []}
    session_id = 0
    for p, sessions in enumerate(generate_periods(cfg)):
        spacing = (length - 2 * _MARGIN_SECONDS - cfg.max_length * _CLICK_SECONDS) // max(
            1, len(sessions))
        for j, session in enumerate(sessions):
            session_id += 1
            first = start + p * length + _MARGIN_SECONDS + j * spacing
            columns["session_id"] += [session_id] * len(session)
            columns["item_id"] += session
            columns["period"] += [p] * len(session)
            columns["timestamp"] += [first + c * _CLICK_SECONDS for c in range(len(session))]
    table = pd.DataFrame(columns, dtype=np.int64)
    return table.sort_values("timestamp", kind="stable", ignore_index=True)


def write_sample_click_log(
    path: str,
    cfg: SampleConfig | None = None,
    periods: Iterable[int] | None = None,
    time_format: str = "iso",
) -> str:
    """Writes the sample's clicks as a raw click log CSV, atomically.

    Columns session_id,item_id,timestamp, one row per click in time order; read it with
    ``python -m preprocessing --dataset=<file> --session_column=session_id --item_column=item_id
    --time_column=timestamp --period_days=7`` (with ``--time_unit=s`` for epoch seconds).

    Args:
        path: The CSV file to write (a ``.gz`` name writes it gzipped).
        cfg: The generator's knobs (the sample period files use the defaults).
        periods: Which periods to write (e.g. ``range(6)``, and later ``range(6, 10)`` to
            demonstrate ``--append``); None writes all. Ids and times do not depend on it.
        time_format: ``"iso"`` (``2024-01-01T01:00:00Z``) or ``"s"`` (epoch seconds).

    Returns:
        ``path``.
    """
    if time_format not in ("iso", "s"):
        raise ValueError(f"time_format must be 'iso' or 's', got {time_format!r}")
    cfg = cfg or SampleConfig()
    table = sample_click_log(cfg)
    if periods is not None:
        wanted = sorted(set(periods))
        if any(not 0 <= p < cfg.num_periods for p in wanted):
            raise ValueError(f"periods must be in 0..{cfg.num_periods - 1}, got {wanted}")
        table = table[table["period"].isin(wanted)]
    table = table.drop(columns="period")
    if time_format == "iso":
        stamps = pd.to_datetime(table["timestamp"], unit="s", utc=True)
        table = table.assign(timestamp=stamps.dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, lineterminator="\n",
                     compression="gzip" if path.endswith(".gz") else None)
    return path
