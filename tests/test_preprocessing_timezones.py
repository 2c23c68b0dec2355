"""`wall_to_epoch` against CPython's naive `datetime.timestamp()` in the same local zone."""

from __future__ import annotations

import datetime
import os
import time

import numpy as np
import pytest

from preprocessing.timezones import check_timezone, same_timezone, wall_to_epoch

EPOCH = datetime.datetime(1970, 1, 1)
# Zones with a 1 h DST, a 30 min DST, a "negative" DST (Dublin in tzdata), a whole skipped day
# (Apia, 2011-12-30) and none at all.
ZONES = ["America/New_York", "Australia/Lord_Howe", "Europe/Dublin", "Pacific/Apia",
         "Asia/Kolkata"]


@pytest.fixture
def local_zone(monkeypatch):
    """Sets the process's local zone (TZ) for the original's naive timestamps; restores it."""

    def set_zone(name: str) -> None:
        if not os.path.exists(os.path.join("/usr/share/zoneinfo", name)):
            pytest.skip(f"no system time zone data for {name}")
        monkeypatch.setenv("TZ", name)
        time.tzset()

    yield set_zone
    monkeypatch.undo()
    time.tzset()


def _wall_times(zone: str) -> np.ndarray:
    """Every 15 minutes around each offset change of 2011 and 2014, plus random instants."""
    walls = []
    for year in (2011, 2014):
        hours = np.arange(0, 366 * 24) * 3600 + int((datetime.datetime(year, 1, 1) - EPOCH)
                                                    .total_seconds())
        utc = [datetime.datetime.fromtimestamp(int(h), datetime.timezone.utc) for h in hours]
        offsets = [moment.astimezone(_zoneinfo(zone)).utcoffset() for moment in utc]
        for hour, before, after in zip(hours, offsets, offsets[1:]):
            if before != after:
                walls.append(hour + np.arange(-36 * 4, 36 * 4) * 900)
    walls.append(np.random.default_rng(0).integers(-2_000_000_000, 4_000_000_000, 300))
    return np.concatenate(walls)


def _zoneinfo(name: str):
    import zoneinfo

    return zoneinfo.ZoneInfo(name)


@pytest.mark.parametrize("zone", ZONES)
def test_matches_naive_datetime_timestamp(local_zone, zone):
    local_zone(zone)
    walls = _wall_times(zone)
    expected = [int((EPOCH + datetime.timedelta(seconds=int(w))).timestamp()) for w in walls]
    assert wall_to_epoch(walls, zone).tolist() == expected


def test_utc_is_the_identity():
    walls = np.array([-86_400, 0, 1_396_310_648])
    assert wall_to_epoch(walls, "UTC").tolist() == walls.tolist()


def test_unknown_zone():
    with pytest.raises(ValueError, match="unknown time zone 'Atlantis/Capital'"):
        check_timezone("Atlantis/Capital")


@pytest.mark.parametrize("a, b, same", [
    ("Europe/Berlin", "Europe/Berlin", True),
    ("UTC", "GMT", True),  # different zone data (the abbreviation), both read as UTC
    ("US/Eastern", "America/New_York", True),  # a link and its target
    ("Europe/Berlin", "Europe/Paris", False),  # the same rules today, not in the past
    ("UTC", "Europe/London", False),
    ("Atlantis/Capital", "Atlantis/Capital", True),
    ("Atlantis/Capital", "Atlantis/Other", False),
    ("../zoneinfo/UTC", "UTC", False),
])
def test_same_timezone(a, b, same):
    if not os.path.exists("/usr/share/zoneinfo/US/Eastern"):
        pytest.skip("no system time zone data")
    assert same_timezone(a, b) is same
    assert same_timezone(b, a) is same
    if same and a != b:  # what the test claims: they convert wall times alike
        walls = _wall_times("America/New_York")
        assert wall_to_epoch(walls, a).tolist() == wall_to_epoch(walls, b).tolist()
