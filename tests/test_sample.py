"""The built-in sample dataset: format, determinism and the drift it promises."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from ader_tf.data.cycles import ContinualData
from ader_tf.data.sample import (
    SampleConfig,
    ensure_sample_dataset,
    write_sample_click_log,
    write_sample_dataset,
)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def test_sample_is_valid_deterministic_and_drifting(tmp_path):
    a = write_sample_dataset(str(tmp_path / "a"))
    b = write_sample_dataset(str(tmp_path / "b"))
    for i in range(10):
        name = f"period_{i}.txt"
        assert _read(os.path.join(a, name)) == _read(os.path.join(b, name))
    meta = json.loads(_read(os.path.join(a, "dataset.json")))
    assert 300 <= meta["items"] <= 2000

    data = ContinualData(a)
    assert 8 <= data.num_cycles + 1 <= 10
    universes = [data.cycle(t).max_item for t in range(1, data.num_cycles + 1)]
    assert all(later > earlier for earlier, later in zip(universes, universes[1:]))  # new items

    # Topics fade and return: items of period 0 missing from period 1 come back in period 2.
    p0, p1, p2 = (set(data.sessions(p).items.tolist()) for p in range(3))
    returning = (p0 - p1) & p2
    assert len(returning) > 0.2 * len(p0)


def test_sequential_patterns_beat_popularity(tmp_path):
    """A first-order transition count predicts far better than the most popular items."""
    data = ContinualData(write_sample_dataset(str(tmp_path / "s")))
    c = data.cycle(3)
    train = c.train
    last = train.inputs[:, -1]
    counts = np.zeros((c.max_item + 1, c.max_item + 1))
    np.add.at(counts, (last, train.targets), 1)
    popular = np.argsort(-np.bincount(train.targets, minlength=c.max_item + 1))[:20]
    test_last = c.valid.inputs[:, -1]
    top20 = np.argsort(-counts[test_last], axis=1)[:, :20]
    markov = np.mean([t in row for t, row in zip(c.valid.targets, top20)])
    pop = np.mean(np.isin(c.valid.targets, popular))
    assert markov > pop + 0.3


def test_ensure_does_not_rewrite(tmp_path):
    path = str(tmp_path / "s")
    ensure_sample_dataset(path, SampleConfig(num_periods=3, sessions_per_period=20))
    stamp = os.path.getmtime(os.path.join(path, "period_0.txt"))
    ensure_sample_dataset(path)
    assert os.path.getmtime(os.path.join(path, "period_0.txt")) == stamp


def test_sample_click_log_has_one_period_a_week_and_writes_chosen_periods(tmp_path):
    cfg = SampleConfig(num_periods=4, sessions_per_period=30)
    full = pd.read_csv(write_sample_click_log(str(tmp_path / "all.csv"), cfg), dtype=str)
    assert list(full.columns) == ["session_id", "item_id", "timestamp"]
    stamps = pd.to_datetime(full["timestamp"], format="%Y-%m-%dT%H:%M:%SZ", utc=True)
    assert stamps.is_monotonic_increasing
    week = (stamps - pd.Timestamp("2024-01-01", tz="UTC")) // pd.Timedelta(days=7)
    assert sorted(week.unique()) == [0, 1, 2, 3]
    assert full["session_id"].astype(int).max() == 4 * 30

    # Chosen periods are the same rows as in the full log; epoch seconds are the same times.
    late = pd.read_csv(write_sample_click_log(str(tmp_path / "late.csv"), cfg, periods=[2, 3],
                                              time_format="s"), dtype=str)
    chosen = full[week.isin([2, 3]).to_numpy()].reset_index(drop=True)
    assert late[["session_id", "item_id"]].equals(chosen[["session_id", "item_id"]])
    epoch = pd.Timestamp("1970-01-01", tz="UTC")
    seconds = (stamps[week.isin([2, 3]).to_numpy()] - epoch) // pd.Timedelta(seconds=1)
    assert late["timestamp"].astype(int).tolist() == seconds.tolist()
    with pytest.raises(ValueError, match="periods must be in 0..3"):
        write_sample_click_log(str(tmp_path / "x.csv"), cfg, periods=[4])
