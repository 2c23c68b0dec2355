"""Readers of the raw YOOCHOOSE and DIGINETICA click logs, and the choice of a reader.

Both return the clicks in file order with session and item ids 1, 2, ... given by first
appearance of the raw names, compared as strings as the original does ('01' and '1' are two
different sessions), and click times computed exactly as the original computes them. Generic
click logs (a shop's own CSV, TSV or Parquet export) are read by `preprocessing.clicklog`.
"""

from __future__ import annotations

import csv
import os

import numpy as np
import pandas as pd

from preprocessing import clicklog, scan
from preprocessing.clicks import Clicks, check_readable, first_appearance
from preprocessing.errors import PreprocessingError, RawDataError
from preprocessing.timezones import wall_to_epoch

YOOCHOOSE = "yoochoose"
DIGINETICA = "diginetica"
GENERIC = "generic"
FORMATS = (YOOCHOOSE, DIGINETICA, GENERIC)
COMPETITION_FORMATS = (YOOCHOOSE, DIGINETICA)

# YOOCHOOSE ids longer than this are rejected, so that (width, value) packs into one int64 key.
_MAX_ID_DIGITS = 17
_BLOCK_BYTES = 1 << 27  # YOOCHOOSE is read in blocks of whole lines of about this size
_DIGINETICA_COLUMNS = ("sessionId", "itemId", "timeframe", "eventdate")
# Offsets of digits and separators in YYYY-MM-DDTHH:MM:SS.ffffffZ.
_TIME_DIGITS = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
_TIME_SEPARATORS = [4, 7, 13, 16, 19]
_TIME_SEPARATOR_BYTES = np.frombuffer(b"--::.", dtype=np.uint8)
_MICROSECOND_WEIGHTS = 10 ** np.arange(5, -1, -1)


def detect_format(path: str) -> str:
    """Tells the format from the file name: the competition names as the original does.

    A name only a generic click log can have (.tsv, .gz, .parquet) is a generic log; a generic
    `.csv` log is chosen with the column flags or `dataset_format`, as `.csv` means DIGINETICA.

    Raises:
        PreprocessingError: The name matches no format.
    """
    name = os.path.basename(path)
    if name.startswith("yoochoose-clicks") or name.endswith(".dat"):
        return YOOCHOOSE
    if name.startswith("train-item-views") or name.endswith(".csv"):
        return DIGINETICA
    if name.endswith(clicklog.GENERIC_ONLY_SUFFIXES):
        return GENERIC
    raise PreprocessingError(
        f"cannot tell the format of {path!r}: expected a YOOCHOOSE file (yoochoose-clicks*, "
        "*.dat), a DIGINETICA file (train-item-views*, *.csv) or a click log "
        f"({', '.join(f'*{s}' for s in clicklog.GENERIC_ONLY_SUFFIXES)}, or any CSV with "
        "the column flags)"
    )


def read_clicks(
    path: str,
    dataset_format: str,
    timezone: str = "UTC",
    options: clicklog.ClickLogOptions | None = None,
) -> Clicks:
    """Reads a raw click log.

    Args:
        path: The raw file.
        dataset_format: YOOCHOOSE, DIGINETICA or GENERIC.
        timezone: IANA zone in which the file's wall-clock times are read.
        options: Columns and parsing of a generic log; None means the defaults.

    Raises:
        RawDataError: The file is missing, empty or malformed.
    """
    check_readable(path)
    if dataset_format == YOOCHOOSE:
        return read_yoochoose(path, timezone)
    if dataset_format == DIGINETICA:
        return read_diginetica(path, timezone)
    if dataset_format == GENERIC:
        return clicklog.read_click_log(path, options or clicklog.ClickLogOptions(), timezone)
    raise ValueError(f"unknown dataset format {dataset_format!r}; expected one of {FORMATS}")


# === YOOCHOOSE ===


def read_yoochoose(path: str, timezone: str) -> Clicks:
    """Reads `session_id,timestamp,item_id,category` lines (no header).

    What is validated, per line: exactly 4 comma-separated fields; session and item ids made of
    1 to 17 ASCII digits (leading zeros allowed: as in the original, '01' and '1' are different
    names); the timestamp of the form `YYYY-MM-DDTHH:MM:SS.fZ` with 1 to 6 fraction digits (T and
    Z in either case, as strptime ignores case) naming a real date and time. The category is not
    used and not checked. Time = int(POSIX timestamp) as the original's
    `int(datetime.strptime(...).timestamp())`, the wall clock read in `timezone`.
    """
    sessions, items, times = [], [], []
    first_number = 1
    with open(path, "rb") as f:
        carry = b""
        while True:
            chunk = f.read(_BLOCK_BYTES)
            data = carry + chunk
            cut = len(data) if not chunk else data.rfind(b"\n") + 1
            if cut > 0:
                buf = np.frombuffer(data, dtype=np.uint8, count=cut)
                lines, error = scan.split_lines(buf, first_number, ",", 4, path)
                session, item, time = _parse_yoochoose_lines(lines, path, timezone)
                if error is not None:
                    raise error
                sessions.append(session)
                items.append(item)
                times.append(time)
                first_number += len(lines)
            carry = data[cut:]
            if not chunk:
                break
    item, item_keys = first_appearance(np.concatenate(items))
    return Clicks(
        session=first_appearance(np.concatenate(sessions))[0],
        item=item,
        time=np.concatenate(times),
        item_names=_id_texts(item_keys),
    )


def _parse_yoochoose_lines(
    lines: scan.Lines, path: str, timezone: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Session keys, item keys and int64 times of well-formed lines; raises on a bad value."""
    session, session_ok = _id_keys(lines, 0)
    wall, microsecond, time_ok = parse_iso_times(lines.buf, *lines.field(1))
    item, item_ok = _id_keys(lines, 2)
    bad = ~(session_ok & time_ok & item_ok)
    if bad.any():
        row = int(np.argmax(bad))
        if not session_ok[row]:
            reason = f"session id is not an integer of 1 to {_MAX_ID_DIGITS} digits"
        elif not time_ok[row]:
            reason = "timestamp is not a valid YYYY-MM-DDTHH:MM:SS.fffZ time"
        else:
            reason = f"item id is not an integer of 1 to {_MAX_ID_DIGITS} digits"
        raise lines.error(path, row, reason)
    # Python: int(int_seconds + microsecond / 1e6), truncating toward zero; same float64 steps.
    stamp = wall_to_epoch(wall, timezone).astype(np.float64) + microsecond / 1e6
    return session, item, np.trunc(stamp).astype(np.int64)


def _id_keys(lines: scan.Lines, index: int) -> tuple[np.ndarray, np.ndarray]:
    """One int64 key per id field, equal exactly when the id texts are equal."""
    value, width, ok = scan.parse_digits(lines.buf, *lines.field(index), _MAX_ID_DIGITS)
    # A digit string is fixed by its value and its width (the rest is leading zeros).
    return width * 10**_MAX_ID_DIGITS + value, ok


def _id_texts(keys: np.ndarray) -> np.ndarray:
    """The id texts of `_id_keys` keys (the digits, leading zeros included)."""
    width, value = np.divmod(keys, 10**_MAX_ID_DIGITS)
    return np.array([str(v).zfill(w) for w, v in zip(width.tolist(), value.tolist())], dtype=object)


def _days_from_civil(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of proleptic Gregorian dates (H. Hinnant's algorithm)."""
    year = year - (month <= 2)
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * np.where(month > 2, month - 3, month + 9) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def _days_in_month(year: np.ndarray, month: np.ndarray) -> np.ndarray:
    """Number of days of each month."""
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    days = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])[np.clip(month, 1, 12) - 1]
    return days + (leap & (month == 2))


def parse_iso_times(
    buf: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parses `YYYY-MM-DDTHH:MM:SS.fZ` fields (1 to 6 fraction digits).

    Returns:
        (wall, microsecond, ok): int64 wall-clock seconds since 1970-01-01 (the naive time read
        as if UTC), int64 microseconds (the fraction right-padded to 6 digits, as strptime's %f),
        and a mask of the well-formed fields.
    """
    width = ends - starts
    windows = scan.field_windows(buf, starts, 27)
    digits = windows - np.uint8(48)  # wraps around below '0', so a digit is exactly <= 9
    ok = (width >= 22) & (width <= 27)
    ok &= (digits[:, _TIME_DIGITS] <= 9).all(axis=1)
    ok &= (windows[:, _TIME_SEPARATORS] == _TIME_SEPARATOR_BYTES).all(axis=1)
    ok &= (windows[:, 10] | 0x20) == ord("t")  # strptime ignores case
    ok &= (windows[np.arange(len(starts)), np.clip(width - 1, 0, 26)] | 0x20) == ord("z")

    def number(first: int, count: int) -> np.ndarray:
        weights = 10 ** np.arange(count - 1, -1, -1)
        return digits[:, first : first + count].astype(np.int64) @ weights

    year, month, day = number(0, 4), number(5, 2), number(8, 2)
    hour, minute, second = number(11, 2), number(14, 2), number(17, 2)
    # %f: 1 to 6 digits, right-padded with zeros to microseconds.
    fraction = np.arange(6) < (width - 21)[:, None]
    ok &= ((digits[:, 20:26] <= 9) | ~fraction).all(axis=1)
    microsecond = np.where(fraction, digits[:, 20:26], 0).astype(np.int64) @ _MICROSECOND_WEIGHTS

    ok &= (year >= 1) & (month >= 1) & (month <= 12) & (day >= 1)
    ok &= day <= _days_in_month(year, month)
    ok &= (hour <= 23) & (minute <= 59) & (second <= 59)
    wall = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    return wall, microsecond, ok


# === DIGINETICA ===


def read_diginetica(path: str, timezone: str) -> Clicks:
    """Reads a `;`-separated file with a header naming sessionId, itemId, timeframe, eventdate.

    What is validated: the header holds those four column names; every other non-blank line has
    as many fields as the header and no double quote (quoting is not interpreted); timeframe is
    an optionally signed decimal integer of at most 18 digits on every row (the original parses
    it on every row, also those it then skips); eventdate is empty (the row is skipped, as in
    the original) or a `%Y-%m-%d` date. Session and item names are free text. Time =
    int(local midnight of eventdate) + timeframe * (86400.0 / max timeframe over all rows),
    a float64 computed with the original's operations in the original's order.
    """
    with open(path, "rb") as f:
        buf = np.frombuffer(f.read(), dtype=np.uint8)
    header_end = int(np.argmax(buf == scan.NEWLINE)) if scan.NEWLINE in buf else len(buf)
    header_text = scan.line_text(buf, 0, header_end).rstrip("\r")
    header = header_text.split(";")
    missing = [name for name in _DIGINETICA_COLUMNS if name not in header]
    if missing:
        reason = f"header lacks column(s) {', '.join(missing)}"
        raise RawDataError(path, 1, header_text, reason)

    body = buf[header_end + 1 :]
    lines, error = scan.split_lines(
        body, 2, ";", len(header), path, skip_blank=True, forbid_quotes=True
    )
    if error is None and len(lines) == 0:
        raise RawDataError(path, 2, "", "no clicks after the header")
    table = _diginetica_table(path, len(lines), len(header))
    timeframe = _diginetica_timeframes(table["timeframe"], lines, path)
    if error is not None:
        raise error

    date = table["eventdate"].to_numpy()
    has_date = date != ""
    epoch = _diginetica_midnights(date[has_date], lines, np.flatnonzero(has_date), path, timezone)
    max_timeframe = int(timeframe.max())
    if max_timeframe == 0:
        raise PreprocessingError(f"{path}: every timeframe is 0, so times cannot be scaled")
    converter = 86400.00 / max_timeframe
    time = epoch.astype(np.float64) + timeframe[has_date].astype(np.float64) * converter
    item, item_names = first_appearance(table["itemId"].to_numpy()[has_date])
    return Clicks(
        session=first_appearance(table["sessionId"].to_numpy()[has_date])[0],
        item=item,
        time=time,
        skipped_rows=int((~has_date).sum()),
        item_names=item_names.astype(object),
    )


def _diginetica_table(path: str, rows: int, fields: int) -> pd.DataFrame:
    """The first `rows` data rows as strings (the lines `split_lines` found well formed)."""
    table = pd.read_csv(
        path,
        sep=";",
        header=0,
        nrows=rows,
        usecols=list(_DIGINETICA_COLUMNS),
        dtype=str,
        na_filter=False,
        quoting=csv.QUOTE_NONE,
        encoding="utf-8",
        encoding_errors="surrogateescape",  # undecodable names stay distinct, never crash
        skip_blank_lines=True,
        engine="c",
    )
    if len(table) != rows:  # split_lines and the C parser must agree on what a line is
        raise PreprocessingError(f"{path}: read {len(table)} rows, expected {rows}")
    return table


def _diginetica_timeframes(column: pd.Series, lines: scan.Lines, path: str) -> np.ndarray:
    """Validates and converts the timeframe column to int64."""
    ok = column.str.fullmatch(r"[+-]?[0-9]{1,18}").to_numpy(dtype=bool)
    if not ok.all():
        raise lines.error(path, int(np.argmin(ok)), "timeframe is not an integer")
    return column.to_numpy().astype(np.int64)


def _diginetica_midnights(
    dates: np.ndarray, lines: scan.Lines, rows: np.ndarray, path: str, timezone: str
) -> np.ndarray:
    """POSIX seconds of the local midnight of each date, parsing each distinct date once."""
    codes, uniques = pd.factorize(dates, sort=False)
    parsed = pd.to_datetime(pd.Index(uniques), format="%Y-%m-%d", errors="coerce")
    invalid = np.asarray(parsed.isna())
    if invalid.any():
        first_bad = int(np.argmax(invalid[codes]))
        raise lines.error(path, int(rows[first_bad]), "eventdate is not a YYYY-MM-DD date")
    wall = parsed.to_numpy().astype("datetime64[s]").astype(np.int64)
    return wall_to_epoch(wall, timezone)[codes]
