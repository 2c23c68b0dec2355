"""Appending later clicks of a click log as further period files, keeping every id.

`append_periods(raw_path, output_dir)` reads a click log (the whole, longer log or only the new
clicks) with the reader options stored in `output_dir/preprocessing.json`, ignores (and counts)
the clicks at or before the end of the last period written, and writes the rest as
`period_<K+1>.txt`, ... with the stored period length. Items keep the ids in items.csv; new
items get ids after the largest. Sessions are numbered after the last session id written.

How the filters differ from the paper's protocol. The paper (and a full run of this package)
filters the whole log at once: an item is dropped everywhere when the whole log holds at most
`threshold_item` of its clicks, a session when it has at most `threshold_sess` clicks over its
whole life, so the first periods are filtered with knowledge of clicks that came later. An
appended period is filtered only with what was known at its end: an item's count is its clicks
in all earlier periods (item_counts.csv, rare items included) plus its new clicks up to the
period's end, and a session's length counts its clicks up to the period's end. Nothing written
earlier changes: an item that reaches the threshold only now enters from this period on, and a
session whose first clicks fell in an earlier period (or before the last end) is judged on its
clicks since then. So the files differ from those of a full run over the longer log. (For a log
in time order whose sessions do not cross period ends, appending in several steps gives the same
files as appending at once.)
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

import numpy as np
import pandas as pd

from preprocessing import output, report, state
from preprocessing.clicklog import ClickLogOptions
from preprocessing.clicks import Clicks, first_appearance
from preprocessing.errors import PreprocessingError, SettingMismatchError
from preprocessing.filtering import SECONDS_PER, count, filter_clicks, known_item_clicks
from preprocessing.periods import grid_thresholds, output_order
from preprocessing.pipeline import (
    PeriodSplit,
    PreprocessConfig,
    period_window,
    raw_ids_of_new_items,
    write_period_files,
)
from preprocessing.readers import GENERIC, read_clicks
from preprocessing.report import Log
from preprocessing.timezones import same_timezone

_DAY = 86_400
# What `settings` may name: the fields of PreprocessConfig (but click_log) and ClickLogOptions.
SETTING_NAMES = (
    *(f.name for f in dataclasses.fields(PreprocessConfig) if f.name != "click_log"),
    *(f.name for f in dataclasses.fields(ClickLogOptions)),
)


@dataclasses.dataclass(frozen=True)
class _Known:
    """What the output folder already holds."""

    state: dict
    items: pd.DataFrame
    item_counts: pd.Series


def append_periods(
    raw_path: str,
    output_dir: str,
    log: Log | None = print,
    settings: Mapping[str, object] | None = None,
) -> dict:
    """Writes the clicks after the last period of `output_dir` as further period files.

    Earlier period files are never touched. items.csv, item_counts.csv, dataset.json and
    preprocessing.json are replaced (each by an atomic rename, the state last) only after the
    new period files are complete.

    Args:
        raw_path: The click log, in the layout the folder was made from.
        output_dir: A folder written by `preprocess` from a click log (or by this function).
        log: Receives the progress report line by line; None for silence.
        settings: Settings the caller expects the folder to have, by `SETTING_NAMES` (say,
            the settings of the command that wrote it); each must equal the stored one.
            The stored settings are used either way.

    Returns:
        What was done, also added to dataset.json under "appends": the clicks read and
        ignored, and per new period file the filter steps and counts.

    Raises:
        SettingMismatchError: A value in `settings` differs from the stored one (checked
            before the log is read).
        RawDataError: The log is missing, empty or malformed.
        PreprocessingError: The folder has no append state, no click is after the last
            period, or none is left after filtering.
        ValueError: `settings` names something that is not a setting.
    """
    log = log or (lambda line: None)
    known = _read_known(output_dir)
    check_settings(known.state, settings or {}, os.path.join(output_dir, state.STATE_FILE))
    saved = known.state
    options = ClickLogOptions(**saved["reader"]["click_log"])
    clicks = read_clicks(raw_path, GENERIC, saved["reader"]["timezone"], options)
    record = {"raw_file": os.path.abspath(raw_path), "raw": count(clicks.session, clicks.item)}
    report.log_raw(log, raw_path, {"dataset": "click log", "raw": record["raw"]})
    new, record["ignored_clicks"] = _after_last_end(clicks, saved, raw_path, log)

    prior = _prior_counts(known.item_counts, new.item_names)
    thresholds = grid_thresholds(saved["last_period_end"], new.time.max(),
                                 saved["period_seconds"])
    split, record["periods"] = _filter_periods(new, prior, thresholds, saved, raw_path, log)
    new_ids, new_raw = _item_ids(split, new.item_names, known.items)
    split = dataclasses.replace(split, new_item=new_ids[split.new_item - 1])
    split = dataclasses.replace(split, session=split.session + saved["last_session_id"])
    with output.staging(output_dir) as folder:
        files, first_period = write_period_files(split, folder, len(saved["periods"]),
                                                 saved["last_item_id"])
        report.log_files(log, files)
        record["files"] = files
        _write_items(folder, known.items, new_raw, first_period)
        counts = known_item_clicks(new.session, new.item, len(new.item_names) + 1)
        _write_counts(folder, known.item_counts, new.item_names, counts[1:])
        _write_stats(folder, output_dir, record)
        _write_state(folder, saved, split, files, thresholds, record["raw_file"],
                     int(new.session.max()))
        names = [f["file"] for f in files] + [state.ITEMS_FILE, state.ITEM_COUNTS_FILE,
                                              output.STATS_FILE, state.STATE_FILE]
        try:
            output.commit(folder, output_dir, names, replace_all=False)
        except OSError as error:
            raise PreprocessingError(f"{output_dir}: cannot write: {error}") from error
    log(f"Appended {len(files)} period files to {output_dir}")
    return record


def _read_known(output_dir: str) -> _Known:
    """The append state, items and item counts of the folder, checked against its files."""
    saved = state.read_state(output_dir)
    if saved.get("format") != GENERIC:
        raise PreprocessingError(f"{output_dir}: --append extends click logs only")
    for period in saved["periods"]:
        if not os.path.isfile(os.path.join(output_dir, period["file"])):
            raise PreprocessingError(
                f"{output_dir}: {period['file']} is listed in {state.STATE_FILE} but missing"
            )
    return _Known(saved, state.read_items(output_dir), state.read_item_counts(output_dir))


def check_settings(saved: dict, settings: Mapping[str, object], path: str) -> None:
    """Checks given settings against the append state `saved` read from `path`.

    Values are compared as they act: numbers by value, time zones by their zone data, and
    `test_fraction` by the period length it gives (it has no effect when `period_days` is given,
    as in `preprocess`). None for `period_days` or `dataset_format` means "derived", as in
    `PreprocessConfig`, and is not compared. A click log state keeps every click
    (`yoochoose_select` 1.0) in period files (`is_time_fraction` true).

    Raises:
        SettingMismatchError: The first setting, in `SETTING_NAMES` order, that differs.
        ValueError: `settings` names something that is not a setting.
    """
    unknown = sorted(set(settings) - set(SETTING_NAMES))
    if unknown:
        raise ValueError(f"settings must be among {SETTING_NAMES}, got {unknown}")
    days = saved["period_seconds"] / _DAY
    stored = {
        "threshold_item": saved["threshold_item"],
        "threshold_sess": saved["threshold_sess"],
        "yoochoose_select": 1.0,
        "is_time_fraction": True,
        "timezone": saved["reader"]["timezone"],
        "dataset_format": saved["format"],
        "period_days": days,
        **saved["reader"]["click_log"],
    }
    for name in SETTING_NAMES:
        given = settings.get(name)
        if name not in settings or (given is None and name in ("period_days", "dataset_format")):
            continue
        if name == "test_fraction":
            if settings.get("period_days") is not None:
                continue
            same = SECONDS_PER.get(given) == saved["period_seconds"]
            shown = f"period of {_shown(days)} days"
        elif name == "timezone":
            same = isinstance(given, str) and same_timezone(given, stored[name])
            shown = _shown(stored[name])
        else:
            same = _same_value(given, stored[name])
            shown = _shown(stored[name])
        if not same:
            raise SettingMismatchError(name, _shown(given), shown, path)


def _same_value(given: object, stored: object) -> bool:
    """Equal as settings: numbers by value (7 and 7.0), anything else by type and value."""
    if isinstance(given, bool) or isinstance(stored, bool):
        return isinstance(given, bool) and isinstance(stored, bool) and given == stored
    if isinstance(given, (int, float)) and isinstance(stored, (int, float)):
        return float(given) == float(stored)
    return type(given) is type(stored) and given == stored


def _shown(value: object) -> str:
    """A setting's value as a person types it: true, 14, 30.5, item_id, '\\t', (unset)."""
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str) and (not value.isprintable() or value.strip() != value
                                   or not value):
        return repr(value)
    return str(value)


def _after_last_end(
    clicks: Clicks, saved: dict, raw_path: str, log: Log
) -> tuple[Clicks, int]:
    """The clicks after the last period's end, sessions renumbered 1.. among them.

    Returns:
        (clicks, ignored): the later clicks (item ids and names as read), and how many
        clicks were at or before the end.
    """
    later = clicks.time > saved["last_period_end"]
    ignored = int(len(later) - later.sum())
    log(f"  ignored {ignored:,} clicks at or before the last period's end "
        f"({saved['last_period_end_utc']})")
    if not later.any():
        raise PreprocessingError(
            f"{raw_path}: no click after the last period's end {saved['last_period_end_utc']}"
        )
    session = first_appearance(clicks.session[later])[0]
    new = Clicks(session, clicks.item[later], clicks.time[later], item_names=clicks.item_names)
    return new, ignored


def _prior_counts(item_counts: pd.Series, item_names: np.ndarray) -> np.ndarray:
    """Per item id of the log (0 unused), its counted clicks in the periods written before."""
    prior = pd.Series(item_names).map(item_counts).fillna(0).to_numpy(dtype=np.int64)
    return np.concatenate([[0], prior])


def _filter_periods(
    new: Clicks,
    prior: np.ndarray,
    thresholds: np.ndarray,
    saved: dict,
    raw_path: str,
    log: Log,
) -> tuple[PeriodSplit, list[dict]]:
    """Filters each new period with what is known at its end; returns the clicks kept.

    Period k keeps its clicks that survive `filter_clicks` run on every new click up to the
    period's end, with the earlier periods' item counts added (no look-ahead).
    """
    window = np.searchsorted(thresholds, new.time, side="left")
    parts, records = [], []
    for k in np.unique(window).tolist():
        known = new.time <= thresholds[k]
        clicks = Clicks(new.session[known], new.item[known], new.time[known])
        log(f"Period ending {report.utc(thresholds[k])}:")
        try:
            filtered = filter_clicks(clicks, saved["threshold_item"], saved["threshold_sess"],
                                     prior_item_clicks=prior, counted=window[known] == k)
        except PreprocessingError:
            log("  no click is left after filtering")
            continue
        for step in filtered.steps:
            report.log_step(log, step)
        records.append({"end_utc": report.utc(thresholds[k]), "filters": filtered.steps})
        rows = np.searchsorted(thresholds, filtered.time, side="left") == k
        session = filtered.session[rows]
        parts.append((session, filtered.item[rows], filtered.time[rows],
                      filtered.session_end[session], np.full(int(rows.sum()), k)))
    parts = [part for part in parts if len(part[0])]
    if not parts:
        raise PreprocessingError(f"{raw_path}: no click after the last period's end is left "
                                 "after filtering short sessions and rare items")
    session, item, time, end, window = (np.concatenate(column) for column in zip(*parts))
    present, period = np.unique(window, return_inverse=True)
    order, code = output_order(period, end, time, item)
    return PeriodSplit(session, item, time, period, order, code, present + 1, thresholds), records


def _item_ids(
    split: PeriodSplit, item_names: np.ndarray, items: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """Final item ids of the split's item codes: the stored id, or a new one after the largest.

    Returns:
        (ids, new_raw): the id of each code (code c at index c - 1), and the raw ids of the
        new items in id order.
    """
    raw = raw_ids_of_new_items(split, item_names)
    stored = pd.Series(raw).map(items.set_index("raw_id")["item_id"])
    is_new = stored.isna().to_numpy()
    last = int(items["item_id"].max()) if len(items) else 0
    ids = stored.fillna(0).to_numpy(dtype=np.int64)
    ids[is_new] = last + np.arange(1, int(is_new.sum()) + 1)
    return ids, raw[is_new]


def _write_items(
    folder: str, items: pd.DataFrame, new_raw: np.ndarray, first_period: np.ndarray
) -> None:
    """items.csv: the stored rows as they were, then the new items."""
    last = int(items["item_id"].max()) if len(items) else 0
    ids = np.arange(last + 1, last + 1 + len(new_raw), dtype=np.int64)
    state.write_items(
        os.path.join(folder, state.ITEMS_FILE),
        np.concatenate([items["item_id"].to_numpy(), ids]),
        np.concatenate([items["raw_id"].to_numpy(dtype=object), new_raw]),
        np.concatenate([items["first_period"].to_numpy(), first_period]),
    )


def _write_counts(
    folder: str, item_counts: pd.Series, item_names: np.ndarray, counts: np.ndarray
) -> None:
    """item_counts.csv: the stored counts plus the counted clicks of the new periods."""
    new = pd.Series(counts, index=pd.Index(item_names, dtype=object))
    total = item_counts.add(new, fill_value=0).astype(np.int64)
    state.write_item_counts(os.path.join(folder, state.ITEM_COUNTS_FILE),
                            total.index.to_numpy(dtype=object), total.to_numpy())


def _write_stats(folder: str, output_dir: str, record: dict) -> None:
    """dataset.json with the new files listed and this append recorded."""
    path = os.path.join(output_dir, output.STATS_FILE)
    try:
        stats = output.read_json(path)
    except (OSError, ValueError):
        stats = {}
    stats.setdefault("files", []).extend(record["files"])
    stats.setdefault("appends", []).append(record)
    output.write_json(os.path.join(folder, output.STATS_FILE), stats)


def _write_state(
    folder: str,
    saved: dict,
    split: PeriodSplit,
    files: list[dict],
    thresholds: np.ndarray,
    raw_file: str,
    sessions_read: int,
) -> None:
    """preprocessing.json moved on past the new periods."""
    length = saved["period_seconds"]
    periods = [period_window(record["file"], float(thresholds[number - 1] - length), length)
               for record, number in zip(files, split.present.tolist())]
    last_end = float(thresholds[-1])
    saved = {key: value for key, value in saved.items() if key != "version"}
    saved.update({
        "last_period_end": last_end,
        "last_period_end_utc": report.utc(last_end),
        "periods": saved["periods"] + periods,
        "last_session_id": saved["last_session_id"] + sessions_read,
        "last_item_id": max(saved["last_item_id"], int(split.new_item.max())),
        "runs": saved["runs"] + [{"raw_file": raw_file, "append": True,
                                  "files": [periods[0]["file"], periods[-1]["file"]]}],
    })
    state.write_state(os.path.join(folder, state.STATE_FILE), saved)
