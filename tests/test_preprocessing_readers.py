"""Tests of the raw-file readers: values as the original computes them, and bad input."""

from __future__ import annotations

import datetime

import numpy as np
import pytest

from preprocessing import PreprocessConfig, RawDataError, preprocess, readers

HEADER = "sessionId;userId;itemId;timeframe;eventdate\n"
GOOD_YOOCHOOSE = "1,2014-04-01T10:00:00.500Z,214,0\n1,2014-04-01T10:00:09.000Z,215,S\n"


def _write(tmp_path, name: str, text: str | bytes) -> str:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return str(path)


def _read_yoochoose(tmp_path, text: str | bytes) -> readers.Clicks:
    return readers.read_clicks(_write(tmp_path, "yoochoose-clicks.dat", text), readers.YOOCHOOSE)


def _read_diginetica(tmp_path, text: str, timezone: str = "UTC") -> readers.Clicks:
    path = _write(tmp_path, "train-item-views.csv", text)
    return readers.read_clicks(path, readers.DIGINETICA, timezone)


# === Values ===


def test_yoochoose_ids_follow_first_appearance_of_the_text(tmp_path):
    clicks = _read_yoochoose(tmp_path, (
        "9,2014-04-01T10:00:00.000Z,30,0\n"
        "01,2014-04-01T10:00:01.000Z,7,0\n"
        "1,2014-04-01T10:00:02.000Z,007,0\n"
        "9,2014-04-01T10:00:03.000Z,7,0\n"
        "01,2014-04-01T10:00:04.000Z,30,0\n"))
    assert clicks.session.tolist() == [1, 2, 3, 1, 2]  # '01' and '1' are different sessions
    assert clicks.item.tolist() == [1, 2, 3, 2, 1]  # '007' and '7' are different items


@pytest.mark.parametrize("stamp", [
    "2014-04-07T10:51:09.277Z", "2014-04-07t10:51:09.2z", "2016-02-29T23:59:59.999999Z",
    "1969-12-31T23:59:59.500Z", "1969-12-31T23:59:59.000Z", "1950-06-01T00:00:00.000001Z",
    "2000-01-01T00:00:00.0Z", "2100-03-01T12:00:00.123456Z",
])
def test_yoochoose_time_is_the_originals_truncated_timestamp(tmp_path, stamp):
    clicks = _read_yoochoose(tmp_path, f"1,{stamp},5,0\n")
    naive = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")
    expected = int(naive.replace(tzinfo=datetime.timezone.utc).timestamp())
    assert clicks.time.tolist() == [expected]


def test_diginetica_time_uses_the_max_timeframe_of_all_rows(tmp_path):
    clicks = _read_diginetica(tmp_path, HEADER + (
        "1;;10;100;2016-05-02\n"
        "\n"  # blank lines are skipped, as csv.DictReader does
        "2;u;11;12345;2016-05-03\n"
        "3;;12;999999;\n"  # skipped for its empty date, but its timeframe scales the others
        "2;;10;-7;2016-05-03\n"))
    converter = 86400.00 / 999999
    midnight = {d: int(datetime.datetime(2016, 5, d, tzinfo=datetime.timezone.utc).timestamp())
                for d in (2, 3)}
    expected = [midnight[2] + 100 * converter, midnight[3] + 12345 * converter,
                midnight[3] + -7 * converter]
    assert clicks.time.tolist() == expected  # exact float64 equality
    assert clicks.session.tolist() == [1, 2, 2]
    assert clicks.item.tolist() == [1, 2, 1]
    assert clicks.skipped_rows == 1


def test_diginetica_reads_the_header_order_and_crlf(tmp_path):
    text = ("eventdate;timeframe;itemId;userId;sessionId\r\n"
            "2016-05-02;10;a;;s1\r\n2016-05-02;20;b;;s1\r\n")
    clicks = _read_diginetica(tmp_path, text)
    assert clicks.session.tolist() == [1, 1]
    assert clicks.item.tolist() == [1, 2]
    assert clicks.time[1] - clicks.time[0] == pytest.approx(43200.0)


def test_diginetica_midnight_follows_the_time_zone(tmp_path):
    utc = _read_diginetica(tmp_path, HEADER + "1;;1;0;2016-07-01\n1;;1;1;2016-07-01\n")
    new_york = _read_diginetica(tmp_path, HEADER + "1;;1;0;2016-07-01\n1;;1;1;2016-07-01\n",
                                "America/New_York")
    assert new_york.time[0] - utc.time[0] == 4 * 3600  # EDT is UTC-4


# === Bad input ===

YOOCHOOSE_BAD_LINES = [
    ("1,2014-04-01T10:00:00.000Z,214", "expected 4 fields separated by ',', found 3"),
    ("1,2014-04-01T10:00:00.000Z,214,0,9", "expected 4 fields separated by ',', found 5"),
    ("", "expected 4 fields separated by ',', found 1"),
    ("abc,2014-04-01T10:00:00.000Z,214,0", "session id is not an integer"),
    ("5.0,2014-04-01T10:00:00.000Z,214,0", "session id is not an integer"),
    ("-5,2014-04-01T10:00:00.000Z,214,0", "session id is not an integer"),
    (",2014-04-01T10:00:00.000Z,214,0", "session id is not an integer"),
    ("123456789012345678,2014-04-01T10:00:00.000Z,214,0", "session id is not an integer"),
    ("1,2014-04-01T10:00:00.000Z,1e3,0", "item id is not an integer"),
    ("1,2014-04-01T10:00:00.000Z, 214,0", "item id is not an integer"),
    ("1,2014-04-01 10:00:00.000Z,214,0", "timestamp is not a valid"),
    ("1,2014-02-29T10:00:00.000Z,214,0", "timestamp is not a valid"),
    ("1,2014-04-01T24:00:00.000Z,214,0", "timestamp is not a valid"),
    ("1,2014-04-01T10:00:60.000Z,214,0", "timestamp is not a valid"),
    ("1,2014-04-01T10:00:00Z,214,0", "timestamp is not a valid"),
    ("1,2014-04-01T10:00:00.1234567Z,214,0", "timestamp is not a valid"),
    ("1,2014-04-01T10:00:00.000,214,0", "timestamp is not a valid"),
    ("1,2014-4-01T10:00:00.000Z,214,0", "timestamp is not a valid"),
    ("1,2014-04-01T10:00:00.0a0Z,214,0", "timestamp is not a valid"),
    ("1,2014-04-01T10:00:00.000Z\r,214,0", "carriage return inside a line"),
]


@pytest.mark.parametrize("line,reason", YOOCHOOSE_BAD_LINES)
def test_yoochoose_bad_line_names_file_line_and_text(tmp_path, line, reason):
    with pytest.raises(RawDataError) as raised:
        _read_yoochoose(tmp_path, GOOD_YOOCHOOSE + line + "\n" + GOOD_YOOCHOOSE)
    error = raised.value
    assert error.line_number == 3
    assert error.text == line
    assert reason in error.reason
    assert str(error).startswith(f"{tmp_path / 'yoochoose-clicks.dat'}:3: ")
    assert repr(line) in str(error)


def test_yoochoose_reports_the_first_bad_line_across_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "_BLOCK_BYTES", 100)
    lines = [f"{i},2014-04-01T10:00:{i:02d}.000Z,{i},0" for i in range(40)]
    lines[25] = "25,2014-04-01T10:00:25.000Z,x,0"  # a bad value ...
    lines[31] = "31,2014-04-01T10:00:31.000Z"  # ... before a bad field count
    with pytest.raises(RawDataError, match=":26: item id") as raised:
        _read_yoochoose(tmp_path, "\n".join(lines) + "\n")
    assert raised.value.text == lines[25]
    lines[25] = "25,2014-04-01T10:00:25.000Z,25,0"
    with pytest.raises(RawDataError, match=":32: expected 4 fields"):
        _read_yoochoose(tmp_path, "\n".join(lines) + "\n")


DIGINETICA_BAD_LINES = [
    ("1;;2;5", "expected 5 fields separated by ';', found 4"),
    ("1;;2;5;2016-01-01;x", "expected 5 fields separated by ';', found 6"),
    ("1;;2;five;2016-01-01", "timeframe is not an integer"),
    ("1;;2;5.0;2016-01-01", "timeframe is not an integer"),
    ("1;;2;;", "timeframe is not an integer"),  # the original parses it on skipped rows too
    ("1;;2;5;2016-13-01", "eventdate is not a YYYY-MM-DD date"),
    ("1;;2;5;01/02/2016", "eventdate is not a YYYY-MM-DD date"),
    ('"1";;2;5;2016-01-01', "quoted fields are not supported"),
]


@pytest.mark.parametrize("line,reason", DIGINETICA_BAD_LINES)
def test_diginetica_bad_line_names_file_line_and_text(tmp_path, line, reason):
    good = "1;;2;5;2016-01-01\n"
    with pytest.raises(RawDataError) as raised:
        _read_diginetica(tmp_path, HEADER + good + line + "\n" + good)
    assert (raised.value.line_number, raised.value.text) == (3, line)
    assert reason in raised.value.reason
    assert f"train-item-views.csv:3: {reason}" in str(raised.value)


def test_diginetica_header_must_name_the_columns(tmp_path):
    with pytest.raises(RawDataError, match=":1: header lacks column.s. timeframe"):
        _read_diginetica(tmp_path, "sessionId;userId;itemId;time;eventdate\n1;;2;5;2016-01-01\n")


def test_diginetica_header_only(tmp_path):
    with pytest.raises(RawDataError, match=":2: no clicks after the header"):
        _read_diginetica(tmp_path, HEADER)


@pytest.mark.parametrize("name", ["yoochoose-clicks.dat", "train-item-views.csv"])
def test_empty_file(tmp_path, name):
    path = _write(tmp_path, name, "")
    with pytest.raises(RawDataError, match=":1: empty file") as raised:
        preprocess(path, str(tmp_path / "out"), PreprocessConfig(), log=None)
    assert raised.value.path == path


def test_missing_file(tmp_path):
    path = str(tmp_path / "yoochoose-clicks.dat")
    with pytest.raises(RawDataError, match="No such file or directory") as raised:
        preprocess(path, str(tmp_path / "out"), PreprocessConfig(), log=None)
    assert (raised.value.path, raised.value.line_number) == (path, None)
    assert not (tmp_path / "out").exists()


def test_yoochoose_invalid_utf8_is_shown_not_raised(tmp_path):
    with pytest.raises(RawDataError, match=":1: session id") as raised:
        _read_yoochoose(tmp_path, b"\xff1,2014-04-01T10:00:00.000Z,214,0\n")
    assert raised.value.text == "\ufffd1,2014-04-01T10:00:00.000Z,214,0"


def test_yoochoose_many_lines_parse_like_the_slow_way(tmp_path):
    rng = np.random.default_rng(3)
    seconds = rng.integers(0, 200 * 86400, 500) + 1_396_000_000
    fractions = rng.integers(0, 1000, 500)
    utc = datetime.timezone.utc
    stamps = [datetime.datetime.fromtimestamp(int(t), utc) for t in seconds]
    text = "".join(f"{i % 37},{stamp:%Y-%m-%dT%H:%M:%S}.{f:03d}Z,{i},0\n"
                   for i, (stamp, f) in enumerate(zip(stamps, fractions)))
    assert _read_yoochoose(tmp_path, text).time.tolist() == seconds.tolist()
