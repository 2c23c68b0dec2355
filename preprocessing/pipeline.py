"""Raw click log to period files, byte for byte as the original ADER preprocessing.

The library entry point is `preprocess(raw_path, output_dir, config)`; `python -m preprocessing`
is a thin command line around it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import numpy as np
import pandas as pd

from preprocessing import output
from preprocessing.errors import PreprocessingError
from preprocessing.filtering import SECONDS_PER, Filtered, count, filter_clicks, step_record
from preprocessing.periods import assign_periods, output_order, period_thresholds
from preprocessing.readers import DIGINETICA, FORMATS, YOOCHOOSE, detect_format, read_clicks
from preprocessing.timezones import check_timezone

DATASET_NAMES = {YOOCHOOSE: "YOOCHOOSE", DIGINETICA: "DIGINETICA"}

Log = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class PreprocessConfig:
    """Settings of a preprocessing run; the defaults are the original's.

    Attributes:
        test_fraction: Period length, 'day' or 'week' (the original: week for DIGINETICA, and
            `--test_fraction=day` for YOOCHOOSE).
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
        dataset_format: 'yoochoose' or 'diginetica'; None tells it from the file name.
    """

    test_fraction: str = "week"
    threshold_item: int = 4
    threshold_sess: int = 1
    yoochoose_select: float = 1.0
    is_time_fraction: bool = True
    timezone: str = "UTC"
    dataset_format: str | None = None

    def __post_init__(self) -> None:
        if self.test_fraction not in SECONDS_PER:
            raise ValueError(f"test_fraction must be 'day' or 'week', got {self.test_fraction!r}")
        if not 0.0 < self.yoochoose_select <= 1.0:
            raise ValueError(f"yoochoose_select must be in (0, 1], got {self.yoochoose_select!r}")
        if self.dataset_format is not None and self.dataset_format not in FORMATS:
            raise ValueError(
                f"dataset_format must be one of {FORMATS} or None, got {self.dataset_format!r}"
            )
        check_timezone(self.timezone)


def default_output_dir(raw_path: str, is_time_fraction: bool = True, root: str = "data") -> str:
    """`<root>/YOOCHOOSE` or `<root>/DIGINETICA` (with `_joint` for the joint split)."""
    name = DATASET_NAMES[detect_format(raw_path)]
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
        raw_path: The raw YOOCHOOSE or DIGINETICA file.
        output_dir: Where `period_<i>.txt` (or train.txt / test.txt) and dataset.json go.
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
    dataset_format = config.dataset_format or detect_format(raw_path)
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise PreprocessingError(f"output path {output_dir!r} exists and is not a folder")
    clicks = read_clicks(raw_path, dataset_format, config.timezone)
    stats = {
        "dataset": DATASET_NAMES[dataset_format],
        "raw_file": os.path.abspath(raw_path),
        "config": dataclasses.asdict(config),
        "raw": count(clicks.session, clicks.item),
    }
    if dataset_format == DIGINETICA:
        stats["raw"]["rows_without_eventdate"] = clicks.skipped_rows
    _log_raw(log, raw_path, stats)

    select = config.yoochoose_select if dataset_format == YOOCHOOSE else None
    filtered = filter_clicks(
        clicks, config.threshold_item, config.threshold_sess, select, config.test_fraction
    )
    stats["filters"] = list(filtered.steps)
    for record in stats["filters"]:
        _log_step(log, record)
    try:
        _write_outputs(filtered, dataset_format, config, output_dir, stats, log)
    except OSError as error:
        raise PreprocessingError(f"cannot write the output to {output_dir!r}: {error}") from error
    log(f"Wrote {len(stats['files'])} files and {output.STATS_FILE} to {output_dir}")
    return stats


def _write_outputs(
    filtered: Filtered,
    dataset_format: str,
    config: PreprocessConfig,
    output_dir: str,
    stats: dict,
    log: Log,
) -> None:
    """Writes the data files and dataset.json into a staging folder, then moves them in place."""
    with output.staging(output_dir) as folder:
        if config.is_time_fraction:
            stats["files"] = _write_periods(filtered, dataset_format, config, folder, stats, log)
        else:
            stats["files"] = _write_joint(filtered, config, folder)
        _log_files(log, stats["files"])
        output.write_json(os.path.join(folder, output.STATS_FILE), stats)
        names = [record["file"] for record in stats["files"]] + [output.STATS_FILE]
        output.commit(folder, output_dir, names)


def _write_periods(
    filtered: Filtered,
    dataset_format: str,
    config: PreprocessConfig,
    folder: str,
    stats: dict,
    log: Log,
) -> list[dict]:
    """Splits into periods, writes `period_<i>.txt` and returns one record per file."""
    end_times = filtered.session_end[filtered.survivors]
    thresholds = period_thresholds(end_times, dataset_format, config.test_fraction)
    stats["period_boundaries_utc"] = [_utc(t) for t in thresholds]
    session, item, time = filtered.session, filtered.item, filtered.time
    if dataset_format == YOOCHOOSE:  # the original drops YOOCHOOSE clicks after the last boundary
        keep = time <= thresholds[-1]
        before = count(session, item)
        session, item, time = session[keep], item[keep], time[keep]
        after = count(session, item)
        record = step_record("clicks after the last period boundary", before, after)
        stats["filters"].append(record)
        _log_step(log, record)
    period, _ = assign_periods(time, thresholds)
    order, new_item = output_order(period, filtered.session_end[session], time, item)
    bounds = np.searchsorted(period[order], np.arange(int(period.max()) + 2))
    files, known_items = [], 0
    for index in range(len(bounds) - 1):
        rows = order[bounds[index] : bounds[index + 1]]
        record = _file_record(f"period_{index}.txt", session[rows], new_item[rows], time[rows])
        record["new_items"] = max(0, int(new_item[rows].max()) - known_items)
        known_items = max(known_items, int(new_item[rows].max()))
        output.write_pairs(os.path.join(folder, record["file"]), session[rows], new_item[rows])
        files.append(record)
    return files


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
        files.append(_file_record(name, session[rows], new_item[rows], time[rows]))
    return files


def _file_record(name: str, session: np.ndarray, item: np.ndarray, time: np.ndarray) -> dict:
    """Counts and time span of the clicks written to one file."""
    record = {"file": name, **count(session, item)}
    if len(time):
        record["first_click_utc"] = _utc(time.min())
        record["last_click_utc"] = _utc(time.max())
    return record


def _utc(seconds: float) -> str:
    """ISO 8601 UTC time of POSIX seconds."""
    return pd.Timestamp(float(seconds), unit="s", tz="UTC").isoformat()


# === Report ===


def _log_raw(log: Log, raw_path: str, stats: dict) -> None:
    """Reports what was read."""
    raw = stats["raw"]
    log(
        f"Read {raw_path} ({stats['dataset']}): {raw['clicks']:,} clicks, "
        f"{raw['sessions']:,} sessions, {raw['items']:,} items"
    )
    if raw.get("rows_without_eventdate"):
        log(f"  skipped {raw['rows_without_eventdate']:,} rows with an empty eventdate")


def _log_step(log: Log, record: dict) -> None:
    """Reports what one filtering step removed and what is left."""
    removed, left = record["removed"], record["left"]
    log(
        f"Removed {record['step']}: {removed['clicks']:,} clicks, {removed['sessions']:,} "
        f"sessions, {removed['items']:,} items (left: {left['clicks']:,} clicks, "
        f"{left['sessions']:,} sessions, {left['items']:,} items)"
    )


def _log_files(log: Log, files: list[dict]) -> None:
    """Reports the per-file counts as a table."""
    columns = ("clicks", "sessions", "items", "new_items")
    log(f"{'file':<16}" + "".join(f"{name:>12}" for name in columns))
    for record in files:
        cells = "".join(f"{record[name]:>12,}" if name in record else " " * 12 for name in columns)
        log(f"{record['file']:<16}{cells}")
