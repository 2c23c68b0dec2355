"""The progress report and the per-file records of a preprocessing run."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from preprocessing.filtering import count

Log = Callable[[str], None]


def utc(seconds: float) -> str:
    """ISO 8601 UTC time of POSIX seconds."""
    return pd.Timestamp(float(seconds), unit="s", tz="UTC").isoformat()


def file_record(name: str, session: np.ndarray, item: np.ndarray, time: np.ndarray) -> dict:
    """Counts and time span of the clicks written to one file."""
    record = {"file": name, **count(session, item)}
    if len(time):
        record["first_click_utc"] = utc(time.min())
        record["last_click_utc"] = utc(time.max())
    return record


def log_raw(log: Log, raw_path: str, stats: dict, skipped_note: str | None = None) -> None:
    """Reports what was read, and the rows skipped while reading."""
    raw = stats["raw"]
    log(
        f"Read {raw_path} ({stats['dataset']}): {raw['clicks']:,} clicks, "
        f"{raw['sessions']:,} sessions, {raw['items']:,} items"
    )
    if raw.get("rows_without_eventdate"):
        log(f"  skipped {raw['rows_without_eventdate']:,} rows with an empty eventdate")
    if raw.get("rows_not_matching_filter"):
        log(f"  skipped {raw['rows_not_matching_filter']:,} rows {skipped_note}")


def log_step(log: Log, record: dict) -> None:
    """Reports what one filtering step removed and what is left."""
    removed, left = record["removed"], record["left"]
    log(
        f"Removed {record['step']}: {removed['clicks']:,} clicks, {removed['sessions']:,} "
        f"sessions, {removed['items']:,} items (left: {left['clicks']:,} clicks, "
        f"{left['sessions']:,} sessions, {left['items']:,} items)"
    )


def log_files(log: Log, files: list[dict]) -> None:
    """Reports the per-file counts as a table."""
    columns = ("clicks", "sessions", "items", "new_items")
    log(f"{'file':<16}" + "".join(f"{name:>12}" for name in columns))
    for record in files:
        cells = "".join(f"{record[name]:>12,}" if name in record else " " * 12 for name in columns)
        log(f"{record['file']:<16}{cells}")
