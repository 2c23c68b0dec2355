"""Random malformed lines: every bad file gets one line naming the file and the bad line.

Property-based (hypothesis): a bad line, built so that it breaks the documented format, is put
between well-formed lines of the period-file format and of both raw formats (YOOCHOOSE clicks,
DIGINETICA views). The reader must raise its error type with a one-line message that names the
file and that line's number, and preprocessing must write nothing.
"""

from __future__ import annotations

import datetime
import os
import re
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ader_tf.data.periods import PeriodFileError, read_period_sessions
from preprocessing import PreprocessConfig, RawDataError, preprocess

# Each test tries this many files; all three together take a few seconds.
EXAMPLES = 150
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

# Text without line breaks (a bad *line*), with some bytes that often confuse parsers.
_CHARS = st.sampled_from(list("0123456789 +-.eE_x,;:\t\x0b\x00\"'TZtz") + ["١", "é", "\u2028"])
_TEXT = st.one_of(st.text(_CHARS, max_size=30),
                  st.text(st.characters(blacklist_characters="\n\r"), max_size=30))


def _text_without(forbidden: str) -> st.SearchStrategy[str]:
    return _TEXT.map(lambda text: "".join(c for c in text if c not in forbidden))


# === Period files: `<session_id> <item_id>` ===

_PERIOD_LINE = re.compile(r"([0-9]+) ([0-9]+)\r?")


def _is_period_line(line: str) -> bool:
    match = _PERIOD_LINE.fullmatch(line)
    return bool(match) and 0 < int(match.group(1)) < 2**63 and 0 < int(match.group(2)) < 2**31


_BAD_PERIOD_LINE = st.one_of(
    _TEXT,
    st.tuples(st.integers(-5, 2**70), st.integers(-5, 2**40)).map(lambda p: f"{p[0]} {p[1]}"),
    st.tuples(st.sampled_from(["+", "-", " ", "0", "", "\t"]), st.integers(1, 99),
              st.sampled_from([" ", "  ", "\t", ","]), st.integers(1, 99),
              st.sampled_from(["", " ", ".0", "\x0b", "\r\r", "e1"])
              ).map(lambda p: f"{p[0]}{p[1]}{p[2]}{p[3]}{p[4]}"),
).filter(lambda line: not _is_period_line(line))

_GOOD_PERIOD_LINES = st.lists(
    st.tuples(st.integers(1, 10**12), st.integers(1, 2**31 - 1)).map(lambda p: f"{p[0]} {p[1]}"),
    max_size=5,
)


@SETTINGS
@given(before=_GOOD_PERIOD_LINES, bad=_BAD_PERIOD_LINE, after=_GOOD_PERIOD_LINES)
def test_period_reader_names_file_and_line(before, bad, after):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "period_0.txt")
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write("".join(line + "\n" for line in [*before, bad, *after]))
        try:
            read_period_sessions(path)
        except PeriodFileError as error:
            message = str(error)
            assert "\n" not in message and f"{path}:{len(before) + 1}: " in message, message
        else:
            raise AssertionError(f"{bad!r} was accepted")


# === Raw YOOCHOOSE clicks: `session,YYYY-MM-DDTHH:MM:SS.fZ,item,category` ===

_DIGITS = st.text(st.sampled_from("0123456789"), min_size=1, max_size=17)
_MOMENT = st.datetimes(datetime.datetime(1990, 1, 1), datetime.datetime(2030, 1, 1))
_STAMP = st.tuples(_MOMENT, st.integers(1, 6)).map(
    lambda p: f"{p[0]:%Y-%m-%dT%H:%M:%S}.{p[0].microsecond:06d}"[: 20 + p[1]] + "Z")
_STAMP_FORMAT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}"
                           r"\.[0-9]{1,6}[Zz]")
_IMPOSSIBLE_STAMPS = st.sampled_from([
    "2014-02-29T10:00:00.000Z", "2014-13-01T10:00:00.000Z", "2014-00-10T10:00:00.000Z",
    "2014-04-31T10:00:00.000Z", "2014-04-01T24:00:00.000Z", "2014-04-01T10:60:00.000Z",
    "2014-04-01T10:00:60.000Z", "0000-01-01T00:00:00.0Z"])


def _not_a_stamp(text: str) -> bool:
    return not _STAMP_FORMAT.fullmatch(text)


def _yoochoose_line(fields: tuple[str, str, str, str]) -> str:
    return ",".join(fields)


_GOOD_CLICK = st.tuples(_DIGITS, _STAMP, _DIGITS, _text_without(",\n\r")).map(_yoochoose_line)
_FIELD = _text_without(",\n\r")
_BAD_CLICK = st.one_of(
    # Not 4 fields.
    st.lists(_FIELD, min_size=1, max_size=7).filter(lambda f: len(f) != 4).map(",".join),
    # A bad session id, timestamp or item id.
    st.tuples(_FIELD.filter(lambda t: not re.fullmatch(r"[0-9]{1,17}", t)), _STAMP, _DIGITS,
              _FIELD).map(_yoochoose_line),
    st.tuples(_DIGITS, st.one_of(_FIELD.filter(_not_a_stamp), _IMPOSSIBLE_STAMPS), _DIGITS,
              _FIELD).map(_yoochoose_line),
    st.tuples(_DIGITS, _STAMP, _FIELD.filter(lambda t: not re.fullmatch(r"[0-9]{1,17}", t)),
              _FIELD).map(_yoochoose_line),
    # A carriage return inside the line (a lone one is no line break here).
    st.tuples(_GOOD_CLICK, st.integers(0, 60)).map(
        lambda p: p[0][: min(p[1], len(p[0]) - 1)] + "\r" + p[0][min(p[1], len(p[0]) - 1):]),
)


def _assert_rejected(file_name: str, lines: list[str], bad_index: int) -> None:
    """Preprocessing `lines` as a file `file_name` fails on line `bad_index + 1` and writes
    nothing."""
    bad, bad_line = lines[bad_index], bad_index + 1
    with tempfile.TemporaryDirectory() as folder:
        raw = os.path.join(folder, file_name)
        with open(raw, "w", encoding="utf-8", newline="") as f:
            f.write("".join(line + "\n" for line in lines))
        try:
            preprocess(raw, os.path.join(folder, "out"), PreprocessConfig(), log=None)
        except RawDataError as error:
            message = str(error)
            assert "\n" not in message, message
            assert (error.path, error.line_number) == (raw, bad_line), (message, bad)
            assert message.startswith(f"{raw}:{bad_line}: "), message
        else:
            raise AssertionError(f"{bad!r} was accepted")
        assert sorted(os.listdir(folder)) == [file_name]  # no output, no staging


@SETTINGS
@given(before=st.lists(_GOOD_CLICK, max_size=4), bad=_BAD_CLICK,
       after=st.lists(_GOOD_CLICK, max_size=3))
def test_yoochoose_reader_names_file_and_line(before, bad, after):
    _assert_rejected("yoochoose-clicks.dat", [*before, bad, *after], len(before))


# === Raw DIGINETICA views: `sessionId;userId;itemId;timeframe;eventdate` with a header ===

HEADER = "sessionId;userId;itemId;timeframe;eventdate"
_NAME = _text_without(';"\n\r')
_DATE = st.dates(datetime.date(1990, 1, 1), datetime.date(2030, 1, 1)).map(str)
_TIMEFRAME = st.integers(1, 10**12).map(str)


def _views_line(fields: tuple[str, str, str, str, str]) -> str:
    return ";".join(fields)


def _not_a_date(text: str) -> bool:
    return text != "" and not re.fullmatch(r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}", text.strip())


_GOOD_VIEW = st.tuples(_NAME, _NAME, _NAME, _TIMEFRAME, st.one_of(_DATE, st.just(""))).map(
    _views_line)
_BAD_VIEW = st.one_of(
    # Not 5 fields (and not blank, which is skipped as csv.DictReader skips it).
    st.lists(_NAME, min_size=1, max_size=8).filter(lambda f: len(f) != 5 and "".join(f))
    .map(";".join),
    # A double quote somewhere.
    st.tuples(_GOOD_VIEW, st.integers(0, 60)).map(lambda p: p[0][: p[1]] + '"' + p[0][p[1]:]),
    # A bad timeframe or eventdate.
    st.tuples(_NAME, _NAME, _NAME,
              _NAME.filter(lambda t: not re.fullmatch(r"[+-]?[0-9]{1,18}", t)), _DATE)
    .map(_views_line),
    st.tuples(_NAME, _NAME, _NAME, _TIMEFRAME,
              st.one_of(_NAME.filter(_not_a_date),
                        st.sampled_from(["2016-02-30", "2016-13-01", "2016-00-10"])))
    .map(_views_line),
)


@SETTINGS
@given(before=st.lists(_GOOD_VIEW, max_size=4), bad=_BAD_VIEW,
       after=st.lists(_GOOD_VIEW, max_size=3))
def test_diginetica_reader_names_file_and_line(before, bad, after):
    _assert_rejected("train-item-views.csv", [HEADER, *before, bad, *after], len(before) + 1)
