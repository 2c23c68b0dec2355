"""A small built-in dataset in the period-file format, so that ``python main.py`` runs anywhere.

Sessions are walks through "topics": each topic is a set of items with a fixed transition
structure (from each item, two preferred next items), so a sequence model can learn far more
than item popularity. The data drifts the way real shops do:

* new items arrive every period (each active topic swaps a few items for new ones);
* topics fade and return: most topics are active only every other period, so a model trained
  on the last period alone forgets topics that come back in the next one;
* a few popular topics are always on.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile

import numpy as np

from ader_tf.io_utils import write_json_atomic

MARKER = "dataset.json"


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
