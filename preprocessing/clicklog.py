"""Generic click logs: a shop's own CSV, TSV (plain or gzip) or Parquet export.

A generic log has a header row naming its columns; the columns used are named by
`ClickLogOptions` and every other column is ignored. Ids are read as text, whatever they look
like. A log without session ids names a user (visitor) column instead, and sessions are cut at
inactivity gaps.

pandas and pyarrow do the reading and the time parsing. Written by hand: where a bad row is in
a text file (pandas does not report source line numbers of rows) and the gap-based sessions.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import re
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from preprocessing.clicks import Clicks, first_appearance
from preprocessing.errors import PreprocessingError, RawDataError
from preprocessing.timezones import wall_to_epoch

TIME_UNITS = ("iso", "s", "ms")
PARQUET_SUFFIXES = (".parquet", ".pq")
# Names only a generic log can have (a generic `.csv` is told apart by the column flags).
GENERIC_ONLY_SUFFIXES = (".tsv", ".gz", *PARQUET_SUFFIXES)
_DELIMITERS = {".csv": ",", ".tsv": "\t"}
_CHUNK_ROWS = 1 << 20
_FOUND_VALUES_SHOWN = 10

# Reports a bad row: (row index within the part, reason, offending text) -> the error.
Fail = Callable[[int, str, str | None], RawDataError]


@dataclasses.dataclass(frozen=True)
class ClickLogOptions:
    """How to read a generic click log.

    Attributes:
        session_column: Column of session ids; None when sessions come from `user_column`.
        item_column: Column of item ids.
        time_column: Column of click times.
        time_unit: 'iso' (ISO 8601 text; naive times are read in the run's time zone, times
            with a UTC offset as they say), 's' or 'ms' (POSIX epoch seconds or milliseconds).
        user_column: Column of user (visitor) ids, for logs without session ids: a user's
            clicks are cut into sessions at inactivity gaps.
        session_gap_minutes: With `user_column`: a new session starts when the gap to the
            user's previous click exceeds this.
        delimiter: Field separator of a text log; None takes it from the name (.csv, .tsv).
        filter_column: Keep only rows whose value in this column is `filter_value` (as text).
        filter_value: See `filter_column`.
    """

    session_column: str | None = "session_id"
    item_column: str = "item_id"
    time_column: str = "timestamp"
    time_unit: str = "iso"
    user_column: str | None = None
    session_gap_minutes: float = 30.0
    delimiter: str | None = None
    filter_column: str | None = None
    filter_value: str | None = None

    def __post_init__(self) -> None:
        if (self.session_column is None) == (self.user_column is None):
            raise ValueError(
                "exactly one of session_column and user_column must be set, got "
                f"session_column={self.session_column!r}, user_column={self.user_column!r}"
            )
        if self.time_unit not in TIME_UNITS:
            raise ValueError(f"time_unit must be one of {TIME_UNITS}, got {self.time_unit!r}")
        if not self.session_gap_minutes > 0:
            raise ValueError(
                f"session_gap_minutes must be positive, got {self.session_gap_minutes!r}"
            )
        if (self.filter_column is None) != (self.filter_value is None):
            raise ValueError(
                "filter_column and filter_value must be set together, got "
                f"filter_column={self.filter_column!r}, filter_value={self.filter_value!r}"
            )
        if self.delimiter is not None and len(self.delimiter) != 1:
            raise ValueError(f"delimiter must be one character, got {self.delimiter!r}")

    @property
    def key_column(self) -> str:
        """The column sessions come from: the session column, else the user column."""
        return self.session_column or self.user_column  # type: ignore[return-value]

    @property
    def columns(self) -> list[str]:
        """The columns read, each once."""
        names = [self.key_column, self.item_column, self.time_column, self.filter_column]
        return list(dict.fromkeys(name for name in names if name is not None))


@dataclasses.dataclass(frozen=True)
class _Part:
    """The kept rows of one chunk (text) or row group (Parquet)."""

    key: pd.Series
    item: pd.Series
    time: np.ndarray
    skipped: int
    filter_values: frozenset[str]


def is_parquet(path: str) -> bool:
    """Whether the file name says Parquet."""
    return path.lower().endswith(PARQUET_SUFFIXES)


def read_click_log(path: str, options: ClickLogOptions, timezone: str = "UTC") -> Clicks:
    """Reads a generic click log.

    Args:
        path: A CSV or TSV file (plain or .gz) with a header row, or a Parquet file.
        options: Columns, time unit, delimiter, row filter, sessions from users.
        timezone: IANA zone in which naive times are read.

    Returns:
        The clicks in file order (rows not matching the filter left out and counted), float64
        POSIX seconds, session and item ids by first appearance, the raw item ids as text.

    Raises:
        RawDataError: A missing column, a bad row (file, line or row group, and text), an
            empty log or no row matching the filter.
        PreprocessingError: The delimiter cannot be told from the name.
    """
    parquet = is_parquet(path)
    parts = list(_parquet_parts(path, options, timezone) if parquet else
                 _text_parts(path, options, timezone))
    skipped = sum(part.skipped for part in parts)
    kept = [part for part in parts if len(part.time)]
    if not kept:
        raise _empty_log_error(path, options, parquet, skipped, parts)
    time = np.concatenate([part.time for part in kept])
    keys = pd.concat([part.key for part in kept], ignore_index=True)
    if options.user_column is not None:
        user = pd.factorize(keys, sort=False)[0]
        session = first_appearance(gap_sessions(user, time, 60.0 * options.session_gap_minutes))[0]
    else:
        session = first_appearance(keys)[0]
    item, names = first_appearance(pd.concat([part.item for part in kept], ignore_index=True))
    return Clicks(session, item, time, skipped_rows=skipped, item_names=names.astype(object))


def gap_sessions(user: np.ndarray, time: np.ndarray, gap_seconds: float) -> np.ndarray:
    """Cuts each user's clicks into sessions at inactivity gaps longer than `gap_seconds`.

    Args:
        user: Integer user code of each click.
        time: Time of each click (seconds).
        gap_seconds: A click more than this after the user's previous click starts a session.

    Returns:
        int64 session number of each click (distinct per user and session; callers renumber).
    """
    order = np.argsort(time, kind="stable")  # ties keep file order
    order = order[np.argsort(user[order], kind="stable")]
    sorted_user, sorted_time = user[order], time[order]
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = (sorted_user[1:] != sorted_user[:-1]) | (np.diff(sorted_time) > gap_seconds)
    number = np.empty(len(order), dtype=np.int64)
    number[order] = np.cumsum(starts) - 1
    return number


def parse_times(text: pd.Series, unit: str, timezone: str) -> tuple[np.ndarray, np.ndarray]:
    """Times as text to float64 POSIX seconds.

    Args:
        text: The time texts.
        unit: 'iso' (ISO 8601), 's' or 'ms' (epoch seconds or milliseconds, any decimal).
        timezone: IANA zone in which naive ISO times are read.

    Returns:
        (seconds, ok): the times, and a mask of the texts that parsed (other times are 0).
    """
    if unit == "iso":
        return _parse_iso(text, timezone)
    number = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    ok = np.isfinite(number)
    number = np.where(ok, number, 0.0)
    return (number / 1000.0 if unit == "ms" else number), ok


def _parse_iso(text: pd.Series, timezone: str) -> tuple[np.ndarray, np.ndarray]:
    """ISO 8601 texts to POSIX seconds; naive ones read in `timezone`."""
    try:
        parsed = pd.to_datetime(text, format="ISO8601", errors="coerce")
    except ValueError:  # different UTC offsets, or some times with one and some without
        parsed = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
    ok = parsed.notna().to_numpy()
    naive = parsed.dt.tz is None
    if not naive:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    micros = parsed.astype("datetime64[us]").to_numpy().astype(np.int64)
    micros = np.where(ok, micros, 0)
    if not naive:
        return micros / 1e6, ok
    seconds, fraction = np.divmod(micros, 1_000_000)
    return wall_to_epoch(seconds, timezone) + fraction / 1e6, ok


def _arrow_times(
    column: pa.ChunkedArray, unit: str, timezone: str
) -> tuple[np.ndarray, np.ndarray, bool]:
    """A Parquet time column to POSIX seconds, by its type.

    Returns:
        (seconds, ok, parsed): the times, the mask of valid ones, and whether the column was
        typed (timestamp, date or number); False means it holds text for `parse_times`.
    """
    kind = column.type
    if pa.types.is_date(kind):
        column, kind = pc.cast(column, pa.timestamp("s")), pa.timestamp("s")
    if pa.types.is_timestamp(kind):
        ok = column.is_valid().to_numpy(zero_copy_only=False)
        micros = pc.cast(column, pa.timestamp("us", tz=kind.tz)).cast(pa.int64())
        micros = micros.fill_null(0).to_numpy()
        if kind.tz is not None:  # stored in UTC
            return micros / 1e6, ok, True
        seconds, fraction = np.divmod(micros, 1_000_000)
        return wall_to_epoch(seconds, timezone) + fraction / 1e6, ok, True
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        if unit == "iso":
            return np.zeros(len(column)), np.zeros(len(column), dtype=bool), True
        number = pc.cast(column, pa.float64()).fill_null(np.nan).to_numpy()
        ok = np.isfinite(number)
        number = np.where(ok, number, 0.0)
        return (number / 1000.0 if unit == "ms" else number), ok, True
    return np.zeros(0), np.zeros(0, dtype=bool), False


# === Checking one part ===


def _time_reason(unit: str) -> str:
    """What a bad time is, for the message."""
    if unit == "iso":
        return "time is not an ISO 8601 time (--time_unit=iso)"
    return f"time is not a number of epoch {'seconds' if unit == 's' else 'milliseconds'}"


def _check_part(
    columns: dict[str, pd.Series],
    time: np.ndarray,
    time_ok: np.ndarray,
    options: ClickLogOptions,
    fail: Fail,
) -> _Part:
    """Checks the kept rows of one part (no empty id, a valid time) and keeps them.

    `columns` holds the id and filter columns as text ('' for missing values); `time` and
    `time_ok` are over the same rows. The first bad row is reported.
    """
    rows = len(time)
    keep = np.ones(rows, dtype=bool)
    found: frozenset[str] = frozenset()
    if options.filter_column is not None:
        values = columns[options.filter_column]
        keep = (values == options.filter_value).to_numpy(dtype=bool)
        found = frozenset(values.unique()[:_FOUND_VALUES_SHOWN].tolist())
    checks = [
        (f"empty {options.key_column} ({'user' if options.user_column else 'session'} id)",
         (columns[options.key_column] == "").to_numpy(dtype=bool), options.key_column),
        (f"empty {options.item_column} (item id)",
         (columns[options.item_column] == "").to_numpy(dtype=bool), options.item_column),
        (_time_reason(options.time_unit), ~time_ok, options.time_column),
    ]
    bad = np.zeros(rows, dtype=bool)
    for _, mask, _ in checks:
        bad |= mask
    bad &= keep
    if bad.any():
        row = int(np.argmax(bad))
        reason, column = next((r, c) for r, mask, c in checks if mask[row])
        raise fail(row, reason, str(columns[column].iloc[row]))
    return _Part(
        key=columns[options.key_column][keep],
        item=columns[options.item_column][keep],
        time=time[keep],
        skipped=int(rows - keep.sum()),
        filter_values=found,
    )


def _empty_log_error(
    path: str, options: ClickLogOptions, parquet: bool, skipped: int, parts: list[_Part]
) -> RawDataError:
    """The error for a log with no click: no data row, or none matching the filter."""
    if skipped == 0:
        if parquet:
            return RawDataError(path, None, "", "no rows")
        return RawDataError(path, 2, "", "no clicks after the header")
    found = sorted(set().union(*(part.filter_values for part in parts)))[:_FOUND_VALUES_SHOWN]
    return RawDataError(
        path, None, "",
        f"no row has {options.filter_column} = {options.filter_value!r} (of {skipped:,} rows; "
        f"values found include {', '.join(repr(value) for value in found)})",
    )


def _missing_columns_error(
    path: str, found: list[str], options: ClickLogOptions, line: int | None
) -> RawDataError | None:
    """The error for columns the options name but the file lacks, else None."""
    missing = [name for name in options.columns if name not in found]
    if not missing:
        return None
    reason = (f"missing column(s) {', '.join(repr(name) for name in missing)}; columns found: "
              f"{', '.join(repr(name) for name in found)}")
    return RawDataError(path, line, None, reason)


# === Text (CSV, TSV, gzip) ===


def text_delimiter(path: str, options: ClickLogOptions) -> str:
    """The field separator: the option, else from the name (.csv ',', .tsv tab, maybe .gz).

    Raises:
        PreprocessingError: Neither says it.
    """
    if options.delimiter is not None:
        return options.delimiter
    name = path.lower().removesuffix(".gz")
    for suffix, delimiter in _DELIMITERS.items():
        if name.endswith(suffix):
            return delimiter
    raise PreprocessingError(
        f"cannot tell the field separator of {path!r} from its name (.csv, .tsv, maybe .gz): "
        "pass --delimiter"
    )


def _open_text(path: str) -> io.TextIOBase:
    """The file as text (gunzipped when its name ends in .gz), undecodable bytes kept."""
    if path.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", errors="surrogateescape", newline="")
    return open(path, encoding="utf-8", errors="surrogateescape", newline="")


def _text_parts(path: str, options: ClickLogOptions, timezone: str) -> Iterator[_Part]:
    """Reads a text log chunk by chunk; yields each chunk's kept rows."""
    delimiter = text_delimiter(path, options)
    reader = _csv_reader(path, delimiter)
    try:
        first, offset = True, 0
        for chunk in reader:  # a header without rows gives one empty chunk
            if first:
                error = _missing_columns_error(path, list(chunk.columns), options, 1)
                if error is not None:
                    raise error
                first = False
            yield _text_part(chunk, offset, path, delimiter, options, timezone)
            offset += len(chunk)
    except pd.errors.ParserError as error:
        raise _parser_error(path, error) from error
    except (OSError, EOFError) as error:  # e.g. a truncated or invalid gzip file
        raise RawDataError(path, None, "", f"cannot read: {error}") from error
    finally:
        reader.close()


def _csv_reader(path: str, delimiter: str) -> pd.io.parsers.TextFileReader:
    """pandas' chunked reader: every field as text, nothing read as missing."""
    try:
        return pd.read_csv(
            path,
            sep=delimiter,
            header=0,
            dtype=str,
            na_filter=False,
            index_col=False,  # a row with one field too many is an error, not an index
            chunksize=_CHUNK_ROWS,
            encoding="utf-8",
            encoding_errors="surrogateescape",  # undecodable ids stay distinct, never crash
            compression="gzip" if path.lower().endswith(".gz") else None,
            engine="c",
        )
    except pd.errors.EmptyDataError as error:
        raise RawDataError(path, 1, "", "empty file") from error
    except (OSError, EOFError) as error:
        raise RawDataError(path, None, "", f"cannot read: {error}") from error


def _text_part(
    chunk: pd.DataFrame,
    offset: int,
    path: str,
    delimiter: str,
    options: ClickLogOptions,
    timezone: str,
) -> _Part:
    """Checks and converts one chunk of a text log (rows `offset`.. of the file's data rows)."""
    columns = {name: chunk[name].reset_index(drop=True) for name in options.columns}
    time, ok = parse_times(columns[options.time_column], options.time_unit, timezone)

    def fail(row: int, reason: str, text: str | None) -> RawDataError:
        return RawDataError(path, line_of_row(path, delimiter, offset + row), text, reason)

    return _check_part(columns, time, ok, options, fail)


def line_of_row(path: str, delimiter: str, row: int) -> int | None:
    """1-based line on which data row `row` (0-based, blank lines not counted) ends.

    By hand because pandas does not say where in the file a row came from; `csv.reader` splits
    records as pandas' parser does and counts physical lines (a quoted field may span lines).
    Runs only when there is an error to report.
    """
    with _open_text(path) as f:
        reader = csv.reader(f, delimiter=delimiter)
        index = -1  # the header
        for record in reader:
            if not record:  # pandas skips blank lines
                continue
            if index == row:
                return reader.line_num
            index += 1
    return None


def _parser_error(path: str, error: pd.errors.ParserError) -> RawDataError:
    """pandas' tokenizer error ('Expected 3 fields in line 5, saw 4') as a RawDataError."""
    message = str(error)
    match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", message)
    if match is None:
        return RawDataError(path, None, "", message)
    line = int(match.group(2))
    reason = f"expected {match.group(1)} fields as in the header, found {match.group(3)}"
    return RawDataError(path, line, _physical_line(path, line), reason)


def _physical_line(path: str, number: int) -> str | None:
    """The text of 1-based line `number`, without its line break."""
    with _open_text(path) as f:
        for index, line in enumerate(f, start=1):
            if index == number:
                return line.rstrip("\r\n")
    return None


# === Parquet ===


def _parquet_parts(path: str, options: ClickLogOptions, timezone: str) -> Iterator[_Part]:
    """Reads a Parquet log row group by row group; yields each group's kept rows."""
    try:
        file = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as error:
        raise RawDataError(path, None, "", f"not a readable Parquet file: {error}") from error
    error = _missing_columns_error(path, file.schema_arrow.names, options, None)
    if error is not None:
        raise error
    for group in range(file.num_row_groups):
        yield _parquet_part(file.read_row_group(group, columns=options.columns), group, path,
                            options, timezone)


def _parquet_part(
    table: pa.Table, group: int, path: str, options: ClickLogOptions, timezone: str
) -> _Part:
    """Checks and converts one row group."""
    # Every column as text too: ids are text, and a bad time is shown as it was written.
    columns = {name: pc.cast(table.column(name), pa.string()).fill_null("").to_pandas()
               for name in options.columns}
    time, ok, typed = _arrow_times(table.column(options.time_column), options.time_unit, timezone)
    if not typed:
        time, ok = parse_times(columns[options.time_column], options.time_unit, timezone)

    def fail(row: int, reason: str, text: str | None) -> RawDataError:
        return RawDataError(path, row, text, reason, row_group=group)

    return _check_part(columns, time, ok, options, fail)
