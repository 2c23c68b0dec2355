"""Wall-clock times to POSIX seconds, the way the original's naive `datetime.timestamp()` does it.

The original parses timestamps into naive datetimes and calls `.timestamp()`, which reads them in
the machine's local time zone. We take the zone as an explicit IANA name (default UTC, the zone the
parity fixtures were made in) and reproduce CPython's rule for wall times that occur twice (the
first one, `fold=0`) or never (the gap of a spring-forward change: the wall time is read with the
offset in force before the change).
"""

from __future__ import annotations

import importlib.resources
import os
import zoneinfo

import numpy as np
import pandas as pd

_UTC_NAMES = frozenset(
    {"UTC", "Etc/UTC", "UCT", "Etc/UCT", "Universal", "Etc/Universal", "Zulu", "Etc/Zulu",
     "GMT", "Etc/GMT", "Etc/GMT0", "Etc/GMT+0", "Etc/GMT-0", "GMT0", "GMT+0", "GMT-0",
     "Greenwich", "Etc/Greenwich"}
)
_DAY = 86_400


def check_timezone(name: str) -> None:
    """Raises ValueError unless `name` is an IANA time zone known to this machine."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone {name!r}") from error


def same_timezone(a: str, b: str) -> bool:
    """Whether two zone names read wall-clock times the same way.

    True for equal names, for two names of UTC, and for two names whose zone data are the same
    bytes (a link and its target, such as US/Eastern and America/New_York).
    """
    if a == b or (a in _UTC_NAMES and b in _UTC_NAMES):
        return True
    data_a, data_b = _zone_data(a), _zone_data(b)
    return data_a is not None and data_a == data_b


def _zone_data(name: str) -> bytes | None:
    """The TZif bytes `zoneinfo` would load for `name` (system data first), or None."""
    if not name or os.path.isabs(name) or ".." in name.split("/"):
        return None
    for root in zoneinfo.TZPATH:
        path = os.path.join(root, name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                return f.read()
    package, _, resource = f"tzdata.zoneinfo.{name.replace('/', '.')}".rpartition(".")
    try:
        return importlib.resources.files(package).joinpath(resource).read_bytes()
    except (ModuleNotFoundError, OSError, ValueError):
        return None


def _wall_clock(utc_seconds: np.ndarray, timezone: str) -> np.ndarray:
    """Wall-clock seconds (a naive time read as if UTC) that `timezone` shows at each instant."""
    instants = pd.DatetimeIndex(utc_seconds.astype("datetime64[s]")).tz_localize("UTC")
    wall = instants.tz_convert(timezone).tz_localize(None)
    return wall.as_unit("s").asi8


def wall_to_epoch(wall_seconds: np.ndarray, timezone: str) -> np.ndarray:
    """Converts naive wall-clock times to POSIX seconds as CPython's `datetime.timestamp()`.

    Args:
        wall_seconds: int64 seconds since 1970-01-01 of the naive wall-clock times.
        timezone: IANA zone name in which the wall-clock times are read.

    Returns:
        int64 POSIX seconds (whole seconds: callers add any fraction themselves).
    """
    wall_seconds = np.asarray(wall_seconds, dtype=np.int64)
    if timezone in _UTC_NAMES or len(wall_seconds) == 0:
        return wall_seconds.copy()
    # Solve wall_clock(u) == t for u, as `datetime._mktime` does, for all elements at once.
    t = wall_seconds
    a = _wall_clock(t, timezone) - t
    u1 = t - a
    t1 = _wall_clock(u1, timezone)
    u1_solves = t1 == t
    # fold=0 wants the earlier of two solutions: look one day back for another offset.
    earlier = u1 - _DAY
    b = np.where(u1_solves, _wall_clock(earlier, timezone) - earlier, t1 - u1)
    u2 = t - b
    t2 = _wall_clock(u2, timezone)
    in_gap = np.maximum(u1, u2)  # fold=0 in a gap: the offset before the change
    fallback = np.where(u1_solves, u1, in_gap)
    return np.where(u1_solves & (a == b), u1, np.where(t2 == t, u2, fallback))
