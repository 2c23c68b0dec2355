"""Raw click log to period files, byte for byte as the original ADER preprocessing.

The library entry point is `preprocess(raw_path, output_dir, config)`; `python -m preprocessing`
is a thin command line around it. The competition formats (YOOCHOOSE, DIGINETICA) get the
original's period boundaries; a generic click log gets periods of a fixed length from the UTC
midnight before its first click, so that `preprocessing.append` can add later periods.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pandas as pd

from preprocessing import output, report, state
from preprocessing.clicklog import ClickLogOptions
from preprocessing.clicks import Clicks
from preprocessing.errors import PreprocessingError
from preprocessing.filtering import (
    SECONDS_PER,
    Filtered,
    count,
    filter_clicks,
    known_item_clicks,
    step_record,
)
from preprocessing.periods import (
    assign_periods,
    grid_start,
    grid_thresholds,
    output_order,
    period_thresholds,
)
from preprocessing.readers import (
    COMPETITION_FORMATS,
    DIGINETICA,
    FORMATS,
    GENERIC,
    YOOCHOOSE,
    detect_format,
    read_clicks,
)
from preprocessing.report import Log
from preprocessing.timezones import check_timezone

DATASET_NAMES = {YOOCHOOSE: "YOOCHOOSE", DIGINETICA: "DIGINETICA"}


@dataclasses.dataclass(frozen=True)
class PreprocessConfig:
    """Settings of a preprocessing run; the defaults are the original's.

    Attributes:
        test_fraction: Period length, 'day' or 'week' (the original: week for DIGINETICA, and
            `--test_fraction=day` for YOOCHOOSE); for a click log unless `period_days` is set.
        threshold_item: Items with at most this many clicks are dropped.
        threshold_sess: Sessions with at most this many clicks (after dropping items) are
            dropped.
        yoochoose_select: Below 1, keep only about this most recent fraction of YOOCHOOSE
            (the original applies it only to a file named exactly yoochoose-clicks.dat; here
            to any YOOCHOOSE-format file).
        is_time_fraction: True: period files. False: the original's joint split into
            train.txt and test.txt (the last `test_fraction` of sessions is the test set).
        timezone: IANA zone in which the raw wall-clock times are read. The original used the
            machine's local zone; UTC is what the published fixtures were made with.
        dataset_format: 'yoochoose', 'diginetica' or 'generic'; None tells it from
            `click_log` (set: generic) or else from the file name.
        period_days: Period length in days of a click log (default: `test_fraction`).
        click_log: How to read a generic click log; None means the defaults.
    """

    test_fraction: str = "week"
    threshold_item: int = 4
    threshold_sess: int = 1
    yoochoose_select: float = 1.0
    is_time_fraction: bool = True
    timezone: str = "UTC"
    dataset_format: str | None = None
    period_days: int | None = None
    click_log: ClickLogOptions | None = None

    def __post_init__(self) -> None:
        if self.test_fraction not in SECONDS_PER:
            raise ValueError(f"test_fraction must be 'day' or 'week', got {self.test_fraction!r}")
        if not 0.0 < self.yoochoose_select <= 1.0:
            raise ValueError(f"yoochoose_select must be in (0, 1], got {self.yoochoose_select!r}")
        if self.dataset_format is not None and self.dataset_format not in FORMATS:
            raise ValueError(
                f"dataset_format must be one of {FORMATS} or None, got {self.dataset_format!r}"
            )
        if self.period_days is not None and self.period_days <= 0:
            raise ValueError(f"period_days must be positive, got {self.period_days!r}")
        if self.dataset_format in COMPETITION_FORMATS and (
            self.click_log is not None or self.period_days is not None
        ):
            raise ValueError(
                f"click log options and period_days do not apply to {self.dataset_format} "
                "(its period length is test_fraction)"
            )
        check_timezone(self.timezone)

    @property
    def period_seconds(self) -> float:
        """Period length of a click log, in seconds."""
        if self.period_days is not None:
            return float(self.period_days * 86_400)
        return float(SECONDS_PER[self.test_fraction])


def resolve_format(raw_path: str, config: PreprocessConfig) -> str:
    """The format: the config's, generic when click log options are given, else the name's.

    Raises:
        PreprocessingError: The name says no format, or `period_days` is set for a
            competition format.
    """
    if config.dataset_format is not None:
        return config.dataset_format
    dataset_format = GENERIC if config.click_log is not None else detect_format(raw_path)
    if dataset_format != GENERIC and config.period_days is not None:
        raise PreprocessingError(
            f"{raw_path} is read as {DATASET_NAMES[dataset_format]}, whose period length is "
            "test_fraction; period_days is for click logs (give the column options or "
            "dataset_format='generic')"
        )
    return dataset_format


def log_name(raw_path: str) -> str:
    """A click log's name without folder and extensions: 'data/raw/events.csv.gz' -> 'events'."""
    name = os.path.basename(raw_path)
    name = name[:-3] if name.lower().endswith(".gz") else name
    return os.path.splitext(name)[0] or name


def default_output_dir(
    raw_path: str,
    is_time_fraction: bool = True,
    root: str = "data",
    dataset_format: str | None = None,
) -> str:
    """`<root>/YOOCHOOSE`, `<root>/DIGINETICA` or `<root>/<log name>` (`_joint`: joint split)."""
    dataset_format = dataset_format or detect_format(raw_path)
    name = DATASET_NAMES.get(dataset_format) or log_name(raw_path)
    return os.path.join(root, name if is_time_fraction else f"{name}_joint")


def preprocess(
    raw_path: str,
    output_dir: str,
    config: PreprocessConfig | None = None,
    log: Log | None = print,
) -> dict:
    """Turns a raw click log into period files (or train/test files) in `output_dir`.

    Everything is written into a staging folder beside `output_dir` and moved into place only
    when the whole run has succeeded, so a failed run leaves earlier outputs untouched.

    Args:
        raw_path: The raw YOOCHOOSE, DIGINETICA or generic click log.
        output_dir: Where `period_<i>.txt` (or train.txt / test.txt), dataset.json and, beside
            period files, items.csv go (for a click log also item_counts.csv and
            preprocessing.json, which `append_periods` reads).
        config: Settings; None means the original's defaults.
        log: Receives the progress report line by line; None for silence.

    Returns:
        The statistics also written to dataset.json: raw counts, what each filtering step
        removed, and per-file counts.

    Raises:
        RawDataError: The raw file is missing, empty or malformed.
        PreprocessingError: Nothing is left to write, the data cannot be split, or the output
            folder cannot be written.
    """
    config = config or PreprocessConfig()
    log = log or (lambda line: None)
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise PreprocessingError(f"{output_dir}: exists and is not a folder (the output path)")
    dataset_format = resolve_format(raw_path, config)
    clicks = read_clicks(raw_path, dataset_format, config.timezone, config.click_log)
    stats = {
        "dataset": DATASET_NAMES.get(dataset_format, f"click log {log_name(raw_path)}"),
        "raw_file": os.path.abspath(raw_path),
        "config": dataclasses.asdict(config),
        "raw": count(clicks.session, clicks.item),
    }
    if dataset_format == DIGINETICA:
        stats["raw"]["rows_without_eventdate"] = clicks.skipped_rows
    if dataset_format == GENERIC:
        stats["raw"]["rows_not_matching_filter"] = clicks.skipped_rows
    report.log_raw(log, raw_path, stats, _filter_note(config.click_log))

    select = config.yoochoose_select if dataset_format == YOOCHOOSE else None
    try:
        filtered = filter_clicks(
            clicks, config.threshold_item, config.threshold_sess, select, config.test_fraction
        )
    except PreprocessingError as error:
        raise PreprocessingError(f"{raw_path}: {error}") from error
    stats["filters"] = list(filtered.steps)
    for record in stats["filters"]:
        report.log_step(log, record)
    try:
        _write_outputs(filtered, clicks, dataset_format, config, output_dir, stats, log)
    except OSError as error:
        raise PreprocessingError(f"{output_dir}: cannot write the output: {error}") from error
    log(f"Wrote {len(stats['files'])} files and {output.STATS_FILE} to {output_dir}")
    return stats


def _filter_note(options: ClickLogOptions | None) -> str | None:
    """How the report names rows the reader's row filter skipped."""
    if options is None or options.filter_column is None:
        return None
    return f"whose {options.filter_column} is not {options.filter_value!r}"


@dataclasses.dataclass(frozen=True)
class PeriodSplit:
    """Filtered clicks cut into periods, in the original's output order and item numbering.

    Attributes:
        session, item, time: The clicks written (item: the reader's item ids).
        period: Period file index of each click.
        order: Click indices in output order (grouped by period, ascending).
        new_item: Item id written for each click (indexed like the clicks).
        present: Per period file, its period number among `thresholds` (1-based).
        thresholds: The period ends.
    """

    session: np.ndarray
    item: np.ndarray
    time: np.ndarray
    period: np.ndarray
    order: np.ndarray
    new_item: np.ndarray
    present: np.ndarray
    thresholds: np.ndarray


def _write_outputs(
    filtered: Filtered,
    clicks: Clicks,
    dataset_format: str,
    config: PreprocessConfig,
    output_dir: str,
    stats: dict,
    log: Log,
) -> None:
    """Writes the data files, items.csv and dataset.json into a staging folder, then moves them."""
    with output.staging(output_dir) as folder:
        names = []
        if config.is_time_fraction:
            split = _split_periods(filtered, clicks, dataset_format, config, stats, log)
            stats["files"], first_period = write_period_files(split, folder)
            write_items_file(folder, split, clicks.item_names, first_period)
            names.append(state.ITEMS_FILE)
            if dataset_format == GENERIC:
                names += _write_append_state(folder, clicks, split, config, stats)
        else:
            stats["files"] = _write_joint(filtered, config, folder)
        report.log_files(log, stats["files"])
        output.write_json(os.path.join(folder, output.STATS_FILE), stats)
        names = [record["file"] for record in stats["files"]] + names + [output.STATS_FILE]
        output.commit(folder, output_dir, names)


def _split_periods(
    filtered: Filtered,
    clicks: Clicks,
    dataset_format: str,
    config: PreprocessConfig,
    stats: dict,
    log: Log,
) -> PeriodSplit:
    """Cuts the filtered clicks into periods and puts them in the original's output order."""
    if dataset_format == GENERIC:
        start = grid_start(clicks.time.min())
        thresholds = grid_thresholds(start, clicks.time.max(), config.period_seconds)
    else:
        end_times = filtered.session_end[filtered.survivors]
        thresholds = period_thresholds(end_times, dataset_format, config.test_fraction)
    stats["period_boundaries_utc"] = [report.utc(t) for t in thresholds]
    session, item, time = filtered.session, filtered.item, filtered.time
    if dataset_format == YOOCHOOSE:  # the original drops YOOCHOOSE clicks after the last boundary
        keep = time <= thresholds[-1]
        before = count(session, item)
        session, item, time = session[keep], item[keep], time[keep]
        after = count(session, item)
        record = step_record("clicks after the last period boundary", before, after)
        stats["filters"].append(record)
        report.log_step(log, record)
    period, present = assign_periods(time, thresholds)
    order, new_item = output_order(period, filtered.session_end[session], time, item)
    return PeriodSplit(session, item, time, period, order, new_item, present, thresholds)


def write_period_files(
    split: PeriodSplit, folder: str, first_index: int = 0, known_items: int = 0
) -> tuple[list[dict], np.ndarray]:
    """Writes `period_<first_index + i>.txt` and returns one record per file.

    Args:
        split: The clicks in periods.
        folder: Where the files go.
        first_index: Number of the first file written.
        known_items: Item ids up to this are not new (appending: the items written before).

    Returns:
        (records, first_period): one record per file, and per new item id (known_items + 1,
        ...) the number of the first file holding it.
    """
    bounds = np.searchsorted(split.period[split.order], np.arange(int(split.period.max()) + 2))
    files, first_period = [], np.zeros(0, dtype=np.int64)
    for index in range(len(bounds) - 1):
        rows = split.order[bounds[index] : bounds[index + 1]]
        session, new_item = split.session[rows], split.new_item[rows]
        record = report.file_record(f"period_{first_index + index}.txt", session, new_item,
                                    split.time[rows])
        # Items are numbered by first appearance walking the periods in order, so the items
        # first seen in this period are the ids just above those seen before.
        top = max(known_items, int(new_item.max()))
        record["new_items"] = top - known_items
        first_period = np.append(first_period, np.full(top - known_items, first_index + index))
        known_items = top
        output.write_pairs(os.path.join(folder, record["file"]), session, new_item)
        files.append(record)
    return files, first_period


def raw_ids_of_new_items(split: PeriodSplit, item_names: np.ndarray) -> np.ndarray:
    """The raw id of each new item id (1..): index i holds the raw id of new item i + 1."""
    new_of_old = np.zeros(len(item_names) + 1, dtype=np.int64)
    new_of_old[split.item] = split.new_item  # one new id per reader id
    present = np.flatnonzero(new_of_old)
    raw = np.empty(int(split.new_item.max(initial=0)), dtype=object)
    raw[new_of_old[present] - 1] = item_names[present - 1]
    return raw


def write_items_file(
    folder: str, split: PeriodSplit, item_names: np.ndarray, first_period: np.ndarray
) -> None:
    """Writes items.csv: the id in the period files, the raw id and the first period file."""
    raw = raw_ids_of_new_items(split, item_names)
    ids = np.arange(1, len(raw) + 1, dtype=np.int64)
    state.write_items(os.path.join(folder, state.ITEMS_FILE), ids, raw, first_period)


def _write_append_state(
    folder: str, clicks: Clicks, split: PeriodSplit, config: PreprocessConfig, stats: dict
) -> list[str]:
    """Writes item_counts.csv and preprocessing.json of a click log; returns their names."""
    counts = known_item_clicks(clicks.session, clicks.item, len(clicks.item_names) + 1)
    state.write_item_counts(os.path.join(folder, state.ITEM_COUNTS_FILE), clicks.item_names,
                            counts[1:])
    length = config.period_seconds
    start = float(split.thresholds[0] - length)
    periods = [period_window(record["file"], start + (number - 1) * length, length)
               for record, number in zip(stats["files"], split.present.tolist())]
    last_end = float(split.thresholds[-1])
    state.write_state(os.path.join(folder, state.STATE_FILE), {
        "format": GENERIC,
        "reader": {"click_log": dataclasses.asdict(config.click_log or ClickLogOptions()),
                   "timezone": config.timezone},
        "threshold_item": config.threshold_item,
        "threshold_sess": config.threshold_sess,
        "period_seconds": length,
        "period_0_start": start,
        "period_0_start_utc": report.utc(start),
        "last_period_end": last_end,
        "last_period_end_utc": report.utc(last_end),
        "periods": periods,
        "last_session_id": int(clicks.session.max()),
        "last_item_id": int(split.new_item.max()),
        "session_ids": state.SESSION_ID_RULE,
        "runs": [{"raw_file": os.path.abspath(stats["raw_file"]), "append": False,
                  "files": [periods[0]["file"], periods[-1]["file"]]}],
    })
    return [state.ITEM_COUNTS_FILE, state.STATE_FILE]


def period_window(name: str, start: float, length: float) -> dict:
    """The time window (start, end] of one period file, for preprocessing.json."""
    return {"file": name, "start_utc": report.utc(start), "end_utc": report.utc(start + length),
            "end": start + length}


def _write_joint(filtered: Filtered, config: PreprocessConfig, folder: str) -> list[dict]:
    """The original's `--is_time_fraction=false`: train.txt and test.txt in click-time order.

    Items are renumbered by first appearance in click-time order; a click goes to test.txt when
    its session ends within the last `test_fraction` before the latest click.
    """
    session, time = filtered.session, filtered.time
    order = np.argsort(time, kind="stable")
    codes, _ = pd.factorize(filtered.item[order], sort=False)
    new_item = np.empty(len(order), dtype=np.int64)
    new_item[order] = codes + 1
    cutoff = time.max() - SECONDS_PER[config.test_fraction]
    in_train = filtered.session_end[session[order]] < cutoff
    files = []
    for name, rows in (("train.txt", order[in_train]), ("test.txt", order[~in_train])):
        output.write_pairs(os.path.join(folder, name), session[rows], new_item[rows])
        files.append(report.file_record(name, session[rows], new_item[rows], time[rows]))
    return files
