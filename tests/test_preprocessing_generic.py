"""Tests of generic click logs: readers, sessions from users, periods, bad input, items.csv,
stable ids under --append, and the sample click log end to end."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ader_tf.data.periods import list_period_files, read_period_clicks, read_period_sessions
from ader_tf.data.sample import SampleConfig, write_sample_click_log, write_sample_dataset
from preprocessing import (
    ClickLogOptions,
    PreprocessConfig,
    PreprocessingError,
    RawDataError,
    append_periods,
    preprocess,
    readers,
)
from preprocessing.clicklog import gap_sessions
from preprocessing.errors import SettingMismatchError

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DAY = 86_400
T0 = 1_704_067_200  # 2024-01-01T00:00:00Z
# (session, item, seconds after T0): ids are text, '007' and '7' differ, 'NA' is an id.
ROWS = [("s1", "007", 3600), ("s1", "7", 3660), ("s2", "NA", 7200), ("s1", "007", 3720),
        ("s2", "x,y", 7260.5)]


def _iso(seconds: float) -> str:
    return pd.Timestamp(T0 + seconds, unit="s", tz="UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _table(rows=ROWS, time_unit: str = "iso") -> pd.DataFrame:
    """A click log table with an extra column, times in `time_unit`."""
    convert = {"iso": _iso, "s": lambda t: T0 + t, "ms": lambda t: int(round((T0 + t) * 1000))}
    return pd.DataFrame({
        "extra": ["ignored"] * len(rows),
        "session_id": [r[0] for r in rows],
        "item_id": [r[1] for r in rows],
        "timestamp": [convert[time_unit](r[2]) for r in rows],
    })


def _write(table: pd.DataFrame, path) -> str:
    path = str(path)
    if path.endswith((".parquet", ".pq")):
        table.to_parquet(path, index=False)
    else:
        sep = "\t" if ".tsv" in path else ","
        table.to_csv(path, sep=sep, index=False, compression="infer")
    return path


def _read(path: str, **options) -> readers.Clicks:
    return readers.read_clicks(path, readers.GENERIC, options.pop("timezone", "UTC"),
                               ClickLogOptions(**options))


def _run(raw: str, out, log: list | None = None, **settings) -> dict:
    """`preprocess` of a click log with the given config fields and click log options."""
    option_names = {f for f in ClickLogOptions.__dataclass_fields__}
    options = {k: settings.pop(k) for k in list(settings) if k in option_names}
    config = PreprocessConfig(dataset_format="generic", click_log=ClickLogOptions(**options),
                              **settings)
    return preprocess(raw, str(out), config, log=None if log is None else log.append)


def _pairs(folder, name: str) -> list[tuple[int, int]]:
    sessions, items = read_period_clicks(os.path.join(str(folder), name))
    return list(zip(sessions.tolist(), items.tolist()))


def _items(folder) -> pd.DataFrame:
    return pd.read_csv(os.path.join(str(folder), "items.csv"), dtype={"raw_id": str},
                       keep_default_na=False)


def _state(folder) -> dict:
    with open(os.path.join(str(folder), "preprocessing.json")) as f:
        return json.load(f)


def _bytes(folder) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in Path(folder).iterdir()}


# === Readers ===


@pytest.mark.parametrize("name", ["log.csv", "log.tsv", "log.csv.gz", "log.tsv.gz",
                                  "log.parquet"])
def test_every_file_kind_reads_the_same_clicks(tmp_path, name):
    clicks = _read(_write(_table(), tmp_path / name))
    assert clicks.session.tolist() == [1, 1, 2, 1, 2]
    assert clicks.item.tolist() == [1, 2, 3, 1, 4]
    assert clicks.item_names.tolist() == ["007", "7", "NA", "x,y"]
    assert clicks.time.tolist() == [T0 + r[2] for r in ROWS]


def test_delimiter_flag_overrides_the_name(tmp_path):
    path = tmp_path / "log.txt"
    _table().to_csv(path, sep=";", index=False)
    with pytest.raises(PreprocessingError, match="pass --delimiter"):
        _read(str(path))
    assert _read(str(path), delimiter=";").item_names.tolist() == ["007", "7", "NA", "x,y"]


@pytest.mark.parametrize("unit", ["iso", "s", "ms"])
def test_time_units(tmp_path, unit):
    clicks = _read(_write(_table(time_unit=unit), tmp_path / "log.csv"), time_unit=unit)
    assert clicks.time == pytest.approx([T0 + r[2] for r in ROWS], abs=1e-6)


def test_iso_times_with_offsets_and_naive_times_in_a_zone(tmp_path):
    table = pd.DataFrame({"session_id": ["a", "a", "a"], "item_id": ["1", "2", "3"],
                          "timestamp": ["2024-01-01T02:00:00+02:00", "2024-01-01T00:00:01Z",
                                        "2024-01-01 00:00:02"]})
    clicks = _read(_write(table, tmp_path / "log.csv"))
    assert clicks.time.tolist() == [T0, T0 + 1, T0 + 2]  # mixed: naive ones read as UTC
    naive = _write(table.iloc[2:], tmp_path / "naive.csv")
    assert _read(naive, timezone="America/New_York").time.tolist() == [T0 + 2 + 5 * 3600]


def test_parquet_typed_columns(tmp_path):
    path = str(tmp_path / "log.parquet")
    stamps = pa.array([T0 * 10**6, (T0 + 60) * 10**6], pa.timestamp("us", tz="UTC"))
    pq.write_table(pa.table({"session_id": [5, 5], "item_id": [7, 8], "timestamp": stamps}),
                   path)
    clicks = _read(path)
    assert clicks.time.tolist() == [T0, T0 + 60]
    assert clicks.item_names.tolist() == ["7", "8"]
    epoch = str(tmp_path / "epoch.parquet")
    pq.write_table(pa.table({"session_id": ["a", "a"], "item_id": ["1", "2"],
                             "timestamp": [T0 * 1000, T0 * 1000 + 1500]}), epoch)
    assert _read(epoch, time_unit="ms").time.tolist() == [T0, T0 + 1.5]


def test_filter_column_keeps_matching_rows_and_counts_the_rest(tmp_path):
    table = _table().assign(event=["view", "cart", "view", "view", "transaction"])
    path = _write(table, tmp_path / "log.csv")
    clicks = _read(path, filter_column="event", filter_value="view")
    assert clicks.item_names.tolist() == ["007", "NA"]
    assert clicks.skipped_rows == 2
    lines = []
    stats = _run(path, tmp_path / "out", lines, filter_column="event", filter_value="view",
                 threshold_item=0)
    assert stats["raw"]["rows_not_matching_filter"] == 2
    assert "  skipped 2 rows whose event is not 'view'" in lines


def test_gap_sessions_by_hand():
    # user 0: 0, +10 min, +30 min exactly (same session), +31 min (new), then +5 min
    # user 1: clicks interleaved with user 0's, one long gap
    time = np.array([0, 300, 600, 2400, 4260, 4560, 9000], dtype=float)
    user = np.array([0, 1, 0, 0, 0, 0, 1])
    number = gap_sessions(user, time, 30 * 60)
    # user 0: 0, 600, 2400 (gap 1800, not more), 4260 (gap 1860: new), 4560
    assert number[[0, 2, 3]].tolist() == [number[0]] * 3
    assert number[4] == number[5] != number[0]
    assert number[1] != number[6]  # user 1: a gap of 8700 s
    assert len(set(number.tolist())) == 4


def test_user_column_makes_sessions_from_gaps(tmp_path):
    # RetailRocket's layout: timestamp (ms), visitorid, event, itemid, transactionid.
    ms = lambda minutes: (T0 + 60 * minutes) * 1000  # noqa: E731
    rows = [(ms(0), "u1", "view", "a", ""), (ms(5), "u2", "view", "b", ""),
            (ms(20), "u1", "view", "b", ""), (ms(50), "u1", "view", "c", ""),  # gap 30: same
            (ms(81), "u1", "view", "a", ""),  # gap 31: new session
            (ms(40), "u2", "addtocart", "b", ""), (ms(45), "u2", "view", "c", "")]  # gap 40
    table = pd.DataFrame(rows, columns=["timestamp", "visitorid", "event", "itemid",
                                        "transactionid"])
    path = _write(table, tmp_path / "events.csv")
    clicks = _read(path, session_column=None, user_column="visitorid", item_column="itemid",
                   time_unit="ms", filter_column="event", filter_value="view")
    # File order: u1@0 (s1), u2@5 (s2), u1@20 (s1), u1@50 (s1), u1@81 (s3), u2@45 (s4).
    assert clicks.session.tolist() == [1, 2, 1, 1, 3, 4]
    longer = _read(path, session_column=None, user_column="visitorid", item_column="itemid",
                   time_unit="ms", filter_column="event", filter_value="view",
                   session_gap_minutes=45)
    assert longer.session.tolist() == [1, 2, 1, 1, 1, 2]


def test_period_days_cuts_from_utc_midnight_with_closed_ends(tmp_path):
    rows = [("a", "1", 3 * 3600), ("a", "2", 3 * 3600 + 60),  # day 0: period 0
            ("b", "1", 2 * DAY), ("b", "2", 2 * DAY),  # exactly at the end of period 0
            ("c", "1", 2 * DAY + 1), ("c", "2", 2 * DAY + 2),  # period 1
            ("d", "1", 6 * DAY + 5), ("d", "2", 6 * DAY + 6)]  # period 3 (period 2 empty)
    path = _write(_table(rows), tmp_path / "log.csv")
    out = tmp_path / "out"
    _run(path, out, period_days=2, threshold_item=0)
    assert [os.path.basename(p) for p in list_period_files(str(out))] == [
        "period_0.txt", "period_1.txt", "period_2.txt"]
    assert _pairs(out, "period_0.txt") == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert _pairs(out, "period_1.txt") == [(3, 1), (3, 2)]
    saved = _state(out)
    assert saved["period_0_start"] == T0 and saved["period_seconds"] == 2 * DAY
    assert [p["end_utc"] for p in saved["periods"]] == [
        "2024-01-03T00:00:00+00:00", "2024-01-05T00:00:00+00:00", "2024-01-09T00:00:00+00:00"]
    assert saved["last_period_end"] == T0 + 8 * DAY


def test_thresholds_filter_as_for_the_competition_formats(tmp_path):
    rows = [("a", "1", 10), ("a", "2", 20), ("b", "1", 30), ("b", "2", 40), ("c", "3", 50),
            ("c", "1", 60), ("d", "9", 70)]  # d: one click; item 3: one click
    out = tmp_path / "out"
    lines = []
    stats = _run(_write(_table(rows), tmp_path / "log.csv"), out, lines, threshold_item=1)
    assert [s["removed"]["clicks"] for s in stats["filters"]] == [1, 1, 1]
    assert _pairs(out, "period_0.txt") == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert any(line.startswith("Removed items with <= 1 clicks: 1 clicks") for line in lines)


# === Bad input ===


def test_missing_column_lists_the_columns_found(tmp_path):
    path = _write(_table(), tmp_path / "log.csv")
    with pytest.raises(RawDataError) as raised:
        _read(path, item_column="itemid")
    assert str(raised.value) == (f"{path}:1: missing column(s) 'itemid'; columns found: "
                                 "'extra', 'session_id', 'item_id', 'timestamp'")
    parquet = _write(_table(), tmp_path / "log.parquet")
    with pytest.raises(RawDataError, match=r"log.parquet: missing column\(s\) 'visitorid'; "
                                           "columns found: 'extra', "):
        _read(parquet, session_column=None, user_column="visitorid")


@pytest.mark.parametrize("name", ["log.csv", "log.csv.gz"])
def test_bad_time_names_the_line_and_the_text(tmp_path, name):
    table = _table()
    table.loc[3, "timestamp"] = "yesterday"
    path = str(tmp_path / name)
    text = table.to_csv(index=False)
    text = text.replace("\n", "\n\n", 1)  # a blank line after the header moves row 3 to line 6
    with (gzip.open(path, "wt") if name.endswith(".gz") else open(path, "w")) as f:
        f.write(text)
    with pytest.raises(RawDataError) as raised:
        _read(path)
    assert str(raised.value) == (f"{path}:6: time is not an ISO 8601 time "
                                 "(--time_unit=iso): 'yesterday'")


def test_bad_epoch_time_and_empty_item(tmp_path):
    table = _table(time_unit="s").astype(str)
    table.loc[1, "timestamp"] = "12:00"
    path = _write(table, tmp_path / "log.csv")
    with pytest.raises(RawDataError, match=":3: time is not a number of epoch seconds: "
                                           "'12:00'"):
        _read(path, time_unit="s")
    table.loc[1, "timestamp"] = str(T0)
    table.loc[2, "item_id"] = ""
    with pytest.raises(RawDataError, match=r":4: empty item_id \(item id\): ''"):
        _read(_write(table, tmp_path / "log.csv"), time_unit="s")


def test_bad_time_in_parquet_names_the_row_group(tmp_path):
    table = _table()
    table.loc[3, "timestamp"] = "31/12/2023"
    path = str(tmp_path / "log.parquet")
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), path, row_group_size=2)
    with pytest.raises(RawDataError) as raised:
        _read(path)
    assert str(raised.value) == (f"{path}: row group 1, row 1: time is not an ISO 8601 time "
                                 "(--time_unit=iso): '31/12/2023'")


def test_a_row_with_too_many_fields(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("session_id,item_id,timestamp\na,1,2024-01-01\na,2,2024-01-01,x\n")
    with pytest.raises(RawDataError, match=":3: expected 3 fields as in the header, found 4: "
                                           "'a,2,2024-01-01,x'"):
        _read(str(path))


@pytest.mark.parametrize("text,message", [
    ("", ":1: empty file"),
    ("session_id,item_id,timestamp\n", ":2: no clicks after the header"),
])
def test_empty_log(tmp_path, text, message):
    path = tmp_path / "log.csv"
    path.write_text(text)
    with pytest.raises(RawDataError, match=message):
        _run(str(path), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_empty_after_the_filters(tmp_path):
    path = _write(_table().assign(event="cart"), tmp_path / "log.csv")
    with pytest.raises(RawDataError, match="log.csv: no row has event = 'view' .of 5 rows; "
                                           "values found include 'cart'."):
        _run(path, tmp_path / "out", filter_column="event", filter_value="view")
    with pytest.raises(PreprocessingError, match="log.csv: no click is left after filtering"):
        _run(_write(_table(), tmp_path / "log.csv"), tmp_path / "out", threshold_item=9)
    assert sorted(os.listdir(tmp_path)) == ["log.csv"]  # no output, no staging folder


def _cli(*args: str, cwd) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    return subprocess.run([sys.executable, "-m", "preprocessing", *args], cwd=str(cwd), env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_bad_time_exits_2_with_one_line_and_leaves_nothing(tmp_path):
    (tmp_path / "raw").mkdir()
    table = _table(time_unit="s").astype(str)
    table.loc[4, "timestamp"] = "soon"
    _write(table, tmp_path / "raw" / "clicks.csv")
    result = _cli("--dataset=clicks.csv", "--raw_dir=raw", "--output_dir=out/SHOP",
                  "--session_column=session_id", "--time_unit=s", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == ("error: raw/clicks.csv:6: time is not a number of epoch "
                             "seconds: 'soon'\n")
    assert sorted(os.listdir(tmp_path)) == ["raw"]


# === items.csv ===


def _check_items_map_back_to_raw(out, raw_pairs: set[tuple[str, str]], session_names):
    """Every written (session, item) line is a raw click, through items.csv."""
    items = _items(out)
    raw_of = dict(zip(items["item_id"], items["raw_id"]))
    first = dict(zip(items["item_id"], items["first_period"]))
    seen = set()
    for index, path in enumerate(list_period_files(str(out))):
        for session, item in _pairs(out, os.path.basename(path)):
            assert (session_names[session - 1], raw_of[item]) in raw_pairs
            if item not in seen:
                assert first[item] == index
                seen.add(item)
    assert seen == set(items["item_id"])
    assert items["item_id"].tolist() == list(range(1, len(items) + 1))


def test_items_csv_of_a_click_log(tmp_path):
    path = write_sample_click_log(str(tmp_path / "clicks.csv"))
    out = tmp_path / "out"
    _run(path, out, period_days=7)
    raw = pd.read_csv(path, dtype=str)
    names = pd.unique(raw["session_id"])
    _check_items_map_back_to_raw(out, set(zip(raw["session_id"], raw["item_id"])), names)


@pytest.mark.parametrize("fmt", ["yoochoose", "diginetica"])
def test_items_csv_of_the_competition_formats(tmp_path, fmt):
    from tests.test_preprocessing import diginetica_text, yoochoose_text

    if fmt == "yoochoose":
        raw = tmp_path / "yoochoose-clicks.dat"
        raw.write_text(yoochoose_text())
        table = pd.read_csv(raw, header=None, dtype=str, names=["s", "t", "i", "c"])
        config = PreprocessConfig(test_fraction="day")
    else:
        raw = tmp_path / "train-item-views.csv"
        raw.write_text(diginetica_text())
        table = pd.read_csv(raw, sep=";", dtype=str, keep_default_na=False)
        table = table[table["eventdate"] != ""].rename(columns={"sessionId": "s", "itemId": "i"})
        config = PreprocessConfig()
    out = tmp_path / "out"
    preprocess(str(raw), str(out), config, log=None)
    assert not (out / "preprocessing.json").exists()
    _check_items_map_back_to_raw(out, set(zip(table["s"], table["i"])), pd.unique(table["s"]))


# === --append ===


def _sample_run(tmp_path, first_periods: int = 6):
    """The sample's first periods preprocessed; returns (output folder, full log path)."""
    raw = tmp_path / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    first = write_sample_click_log(str(raw / "first.csv"), periods=range(first_periods))
    full = write_sample_click_log(str(raw / "full.csv"))
    out = tmp_path / "SHOP"
    _run(first, out, period_days=7)
    return out, full


def test_append_keeps_ids_and_earlier_files(tmp_path):
    out, full = _sample_run(tmp_path)
    before = _bytes(out)
    items_before = _items(out)
    lines = []
    record = append_periods(full, str(out), log=lines.append)

    first_clicks = len(pd.read_csv(tmp_path / "raw" / "first.csv"))
    assert record["ignored_clicks"] == first_clicks
    assert (f"  ignored {first_clicks:,} clicks at or before the last period's end "
            "(2024-02-12T00:00:00+00:00)") in lines
    after = _bytes(out)
    for name in (f"period_{i}.txt" for i in range(6)):
        assert after[name] == before[name]
    assert [os.path.basename(p) for p in list_period_files(str(out))] == [
        f"period_{i}.txt" for i in range(10)]

    items = _items(out)
    assert items.iloc[: len(items_before)].equals(items_before)  # old ids kept
    new = items.iloc[len(items_before):]
    assert new["item_id"].tolist() == list(range(len(items_before) + 1, len(items) + 1))
    assert set(new["raw_id"]).isdisjoint(items_before["raw_id"])
    assert new["first_period"].min() >= 6
    raw = pd.read_csv(full, dtype=str)
    _check_items_map_back_to_raw(out, set(zip(raw["session_id"], raw["item_id"])),
                                 pd.unique(raw["session_id"]))
    # Old items come back in the new periods under their old ids.
    period_6 = {item for _, item in _pairs(out, "period_6.txt")}
    assert period_6 & set(items_before["item_id"])

    saved = _state(out)
    assert saved["last_period_end_utc"] == "2024-03-11T00:00:00+00:00"
    assert saved["last_session_id"] == 5000
    stats = json.loads(after["dataset.json"])
    assert [f["file"] for f in stats["files"]] == [f"period_{i}.txt" for i in range(10)]
    assert stats["appends"][0]["ignored_clicks"] == first_clicks


def test_append_only_the_new_clicks_equals_append_with_the_longer_log(tmp_path):
    out, full = _sample_run(tmp_path / "a")
    append_periods(full, str(out), log=None)
    rest = write_sample_click_log(str(tmp_path / "rest.csv"), periods=range(6, 10))
    out_rest, _ = _sample_run(tmp_path / "b")
    record = append_periods(rest, str(out_rest), log=None)
    assert record["ignored_clicks"] == 0
    a, b = _bytes(out), _bytes(out_rest)
    for name in a:
        if name not in ("dataset.json", "preprocessing.json"):
            assert a[name] == b[name], name


def test_append_in_steps_equals_append_at_once(tmp_path):
    out, full = _sample_run(tmp_path / "a", first_periods=4)
    append_periods(full, str(out), log=None)
    out_steps, _ = _sample_run(tmp_path / "b", first_periods=4)
    for upto in (7, 10):
        part = write_sample_click_log(str(tmp_path / f"upto{upto}.csv"), periods=range(upto))
        append_periods(part, str(out_steps), log=None)
    a, b = _bytes(out), _bytes(out_steps)
    assert sorted(a) == sorted(b)
    for name in a:
        if name not in ("dataset.json", "preprocessing.json"):
            assert a[name] == b[name], name


def test_append_filters_without_look_ahead(tmp_path):
    # threshold_item=2: an item needs 3 counted clicks.
    first = [("a", "x", 100), ("a", "y", 200), ("b", "x", 300), ("b", "y", 400),
             ("c", "x", 500), ("c", "y", 600), ("d", "rare", 700), ("d", "x", 800)]
    out = tmp_path / "out"
    _run(_write(_table(first), tmp_path / "first.csv"), out, period_days=1, threshold_item=2)
    assert set(_items(out)["raw_id"]) == {"x", "y"}  # 'rare': 1 click
    later = [("e", "new", DAY + 100), ("e", "x", DAY + 200), ("e", "y", DAY + 250),
             ("f", "new", DAY + 300), ("f", "rare", DAY + 400),  # 'rare': 1 + 1 clicks
             ("g", "new", 2 * DAY + 100), ("g", "rare", 2 * DAY + 200), ("g", "x", 2 * DAY + 300)]
    record = append_periods(_write(_table(later), tmp_path / "later.csv"), str(out), log=None)
    items = _items(out)
    raw_of = dict(zip(items["item_id"], items["raw_id"]))
    # Sessions a..d were 1..4. Day 1: 'new' has 2 clicks so far (3 by day 2, which a full run
    # would see) and 'rare' 1 + 1: both dropped, which leaves session f (6) with no click.
    assert [(s, raw_of[i]) for s, i in _pairs(out, "period_1.txt")] == [(5, "x"), (5, "y")]
    # Day 2: 'new' (3 clicks) and 'rare' (1 + 1 + 1) pass.
    assert [(s, raw_of[i]) for s, i in _pairs(out, "period_2.txt")] == [
        (7, "new"), (7, "rare"), (7, "x")]
    assert items.set_index("raw_id")["first_period"].to_dict() == {
        "x": 0, "y": 0, "new": 2, "rare": 2}
    assert items.set_index("raw_id")["item_id"].to_dict() == {"x": 1, "y": 2, "new": 3, "rare": 4}
    assert len(record["files"]) == 2
    counts = pd.read_csv(out / "item_counts.csv", dtype={"raw_id": str})
    assert counts.set_index("raw_id")["clicks"].to_dict() == {
        "x": 6, "y": 4, "rare": 3, "new": 3}


def test_failed_append_changes_nothing(tmp_path):
    out, _ = _sample_run(tmp_path, first_periods=3)
    before = _bytes(out)
    table = pd.read_csv(write_sample_click_log(str(tmp_path / "bad.csv")), dtype=str)
    table.loc[len(table) - 1, "timestamp"] = "later"
    bad = _write(table, tmp_path / "bad.csv")
    with pytest.raises(RawDataError, match=f":{len(table) + 1}: time is not"):
        append_periods(bad, str(out), log=None)
    early = write_sample_click_log(str(tmp_path / "early.csv"), periods=range(2))
    with pytest.raises(PreprocessingError, match="no click after the last period's end"):
        append_periods(early, str(out), log=None)
    assert _bytes(out) == before
    assert sorted(os.listdir(tmp_path)) == ["SHOP", "bad.csv", "early.csv", "raw"]


def test_append_accepts_settings_equal_to_the_stored_ones(tmp_path):
    out, full = _sample_run(tmp_path / "a")
    append_periods(full, str(out), log=None)
    out_checked, _ = _sample_run(tmp_path / "b")
    # Equal as they act: another name of UTC, 7 as 7.0, the default columns spelled out, and
    # test_fraction, which period_days overrides.
    append_periods(full, str(out_checked), log=None, settings={
        "period_days": 7.0, "test_fraction": "day", "timezone": "GMT", "threshold_item": 4,
        "threshold_sess": 1, "dataset_format": "generic", "is_time_fraction": True,
        "yoochoose_select": 1.0, "session_column": "session_id", "item_column": "item_id",
        "time_column": "timestamp", "time_unit": "iso", "session_gap_minutes": 30,
        "user_column": None, "delimiter": None})
    a, b = _bytes(out), _bytes(out_checked)
    assert sorted(a) == sorted(b)
    for name in a:
        if name not in ("dataset.json", "preprocessing.json"):
            assert a[name] == b[name], name


@pytest.mark.parametrize("settings, message", [
    ({"period_days": 14}, "period_days=14 differs from the stored 7 in "),
    ({"test_fraction": "day"}, "test_fraction=day differs from the stored period of 7 days in "),
    ({"timezone": "Europe/Berlin"}, "timezone=Europe/Berlin differs from the stored UTC in "),
    ({"threshold_item": 3}, "threshold_item=3 differs from the stored 4 in "),
    ({"is_time_fraction": False}, "is_time_fraction=false differs from the stored true in "),
    ({"user_column": "visitor"}, "user_column=visitor differs from the stored (unset) in "),
    ({"delimiter": "\t"}, "delimiter='\\t' differs from the stored (unset) in "),
    ({"session_gap_minutes": 30.5}, "session_gap_minutes=30.5 differs from the stored 30 in "),
    ({"yoochoose_select": 0.5}, "yoochoose_select=0.5 differs from the stored 1 in "),
])
def test_append_refuses_a_setting_that_differs_and_writes_nothing(tmp_path, settings, message):
    out, full = _sample_run(tmp_path, first_periods=3)
    before = _bytes(out)
    path = os.path.join(str(out), "preprocessing.json")
    with pytest.raises(SettingMismatchError) as caught:
        append_periods(full, str(out), log=None, settings=settings)
    assert str(caught.value) == message + path
    assert _bytes(out) == before
    assert sorted(os.listdir(tmp_path)) == ["SHOP", "raw"]


def test_append_settings_must_be_settings(tmp_path):
    out, full = _sample_run(tmp_path, first_periods=3)
    with pytest.raises(ValueError, match="settings must be among .*, got \\['raw_dir'\\]"):
        append_periods(full, str(out), log=None, settings={"raw_dir": "x"})


def test_append_needs_a_click_log_folder(tmp_path):
    with pytest.raises(PreprocessingError, match="preprocessing.json: not found"):
        append_periods(str(tmp_path / "x.csv"), str(tmp_path), log=None)


# === The sample click log, end to end ===


def test_sample_click_log_gives_the_sample_period_files(tmp_path):
    """With no item filter, the sample log preprocesses to the sample period files exactly."""
    cfg = SampleConfig(num_periods=4, sessions_per_period=60)
    path = write_sample_click_log(str(tmp_path / "clicks.csv.gz"), cfg, time_format="s")
    out = tmp_path / "out"
    _run(path, out, period_days=7, time_unit="s", threshold_item=0)
    sample = write_sample_dataset(str(tmp_path / "sample"), cfg)
    for i in range(4):
        name = f"period_{i}.txt"
        assert (out / name).read_bytes() == (Path(sample) / name).read_bytes()
        assert len(read_period_sessions(str(out / name))) == 60


def test_cli_walk_through(tmp_path):
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    write_sample_click_log(str(raw / "sample_clicks.csv"), periods=range(6))
    write_sample_click_log(str(raw / "sample_clicks_all.csv"))
    common = ["--raw_dir=data/raw", "--output_dir=data/SHOP"]
    result = _cli("--dataset=sample_clicks.csv", *common, "--session_column=session_id",
                  "--item_column=item_id", "--time_column=timestamp", "--period_days=7",
                  cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "period_5.txt" in result.stdout
    result = _cli("--dataset=sample_clicks_all.csv", *common, "--append", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ignored 14,887 clicks" in result.stdout
    files = list_period_files(str(tmp_path / "data" / "SHOP"))
    assert len(files) == 10
    for path in files:
        assert len(read_period_sessions(path)) > 400


def test_cli_append_with_the_first_commands_flags(tmp_path):
    """A fixed command with --append added appends as --append alone; a changed value is
    refused with one line and exit status 2, and nothing is written."""
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    write_sample_click_log(str(raw / "first.csv"), periods=range(6))
    write_sample_click_log(str(raw / "all.csv"))
    settings = ["--raw_dir=data/raw", "--session_column=session_id", "--item_column=item_id",
                "--time_column=timestamp", "--period_days=7", "--delimiter=,",
                "--timezone=UTC", "--session_gap_minutes=30"]
    result = _cli("--dataset=first.csv", "--output_dir=data/FLAGS", *settings, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    shutil.copytree(tmp_path / "data" / "FLAGS", tmp_path / "data" / "ALONE")
    # Equal values spelled otherwise are equal too (the last two flags respelled).
    result = _cli("--dataset=all.csv", "--output_dir=data/FLAGS", *settings[:-2],
                  "--timezone=Etc/UTC", "--session_gap_minutes=30.0", "--append", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    result = _cli("--dataset=all.csv", "--raw_dir=data/raw", "--output_dir=data/ALONE",
                  "--append", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    flagged, alone = _bytes(tmp_path / "data" / "FLAGS"), _bytes(tmp_path / "data" / "ALONE")
    assert sorted(flagged) == sorted(alone)
    assert len(list_period_files(str(tmp_path / "data" / "FLAGS"))) == 10
    for name in flagged:
        assert flagged[name] == alone[name], name

    listing = sorted(os.listdir(tmp_path / "data"))
    result = _cli("--dataset=all.csv", "--output_dir=data/ALONE",
                  *[s.replace("=7", "=14") for s in settings], "--append", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "error: --period_days=14 differs from the stored 7 in data/ALONE/preprocessing.json; "
        "leave it out (--append uses the stored settings) or preprocess into a new "
        "--output_dir\n")
    assert _bytes(tmp_path / "data" / "ALONE") == alone
    assert sorted(os.listdir(tmp_path / "data")) == listing
