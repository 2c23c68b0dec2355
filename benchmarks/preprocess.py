"""Times `preprocessing.preprocess` on a synthetic YOOCHOOSE-format click log.

Usage:
    python benchmarks/preprocess.py                      # 33M clicks, the real file's size
    python benchmarks/preprocess.py --clicks=1000000 --raw_path=/tmp/yoochoose-clicks.dat

The generated file imitates `yoochoose-clicks.dat`: sessions numbered in time order with gaps,
~3.7 clicks per session (so ~9M sessions for 33M clicks), ~50k items with a Zipf-like popularity,
six months of `2014-04-07T10:51:09.277Z` timestamps and a category field. It is written by a child
process, so that the peak resident memory reported is the preprocessing run's alone.

The last printed line is a JSON object: wall and CPU seconds and peak RSS of `preprocess`, and the
click counts. Target: <= 2 minutes and <= 8 GB for 33M clicks on 2 cores.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time

import numpy as np
from absl import app, flags
from numpy.dtypes import StringDType

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from preprocessing.pipeline import PreprocessConfig, preprocess  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("clicks", 33_000_000, "Number of clicks to generate.")
flags.DEFINE_integer("items", 50_000, "Number of distinct items.")
flags.DEFINE_integer("seed", 0, "Seed of the generator.")
flags.DEFINE_string("raw_path", None, "Reuse this raw file (created if absent), not a temp one.")
flags.DEFINE_string("test_fraction", "day", "Period length passed to preprocessing.")

_START = np.datetime64("2014-04-01T00:00:00.000", "ms")
_SPAN_MS = 183 * 86_400_000  # six months
_MEAN_SESSION_LENGTH = 3.67  # 33M clicks / 9M sessions in the real file
_CHUNK = 2_000_000


def _session_lengths(rng: np.random.Generator, clicks: int) -> np.ndarray:
    """Draws session lengths (>= 1, geometric tail) that sum exactly to `clicks`."""
    p = 1.0 / _MEAN_SESSION_LENGTH
    lengths = rng.geometric(p, size=int(clicks * p * 1.1) + 10)
    ends = np.cumsum(lengths)
    count = int(np.searchsorted(ends, clicks)) + 1
    lengths = lengths[:count]
    lengths[-1] -= int(ends[count - 1]) - clicks
    return lengths


def _click_times(rng: np.random.Generator, lengths: np.ndarray) -> np.ndarray:
    """Session starts uniform over six months (in session order); clicks ~1 minute apart."""
    starts = np.sort(rng.integers(0, _SPAN_MS, size=len(lengths)))
    gaps = rng.exponential(60_000.0, size=int(lengths.sum())).astype(np.int64)
    first = np.zeros(len(gaps), dtype=bool)
    first[np.cumsum(lengths) - lengths] = True
    gaps[first] = 0
    offsets = np.cumsum(gaps)
    offsets -= np.repeat(offsets[first], lengths)
    return _START + np.minimum(np.repeat(starts, lengths) + offsets, _SPAN_MS - 1)


def _item_ids(rng: np.random.Generator, clicks: int, items: int) -> np.ndarray:
    """Nine-digit item ids drawn with a skewed (Zipf-like, exponent 1.1) popularity."""
    names = 214_000_000 + rng.choice(2_000_000, size=items, replace=False)
    weights = (np.arange(items) + 10.0) ** -1.1
    return names[rng.choice(items, size=clicks, p=weights / weights.sum())]


def _categories(rng: np.random.Generator, clicks: int) -> np.ndarray:
    """Mostly '0', some 'S' (special offer) and numbered categories, as in the real file."""
    labels = np.array(["0", "S"] + [str(c) for c in range(1, 13)], dtype=StringDType())
    p = np.array([0.7, 0.05] + [0.25 / 12] * 12)
    return labels[rng.choice(len(labels), size=clicks, p=p)]


def generate(path: str, clicks: int, items: int, seed: int) -> None:
    """Writes a seeded YOOCHOOSE-format click log of `clicks` lines to `path`."""
    rng = np.random.default_rng(seed)
    lengths = _session_lengths(rng, clicks)
    sessions = np.sort(rng.choice(int(len(lengths) * 1.3), size=len(lengths), replace=False)) + 1
    sessions = np.repeat(sessions, lengths)
    times = _click_times(rng, lengths)
    item_ids = _item_ids(rng, clicks, items)
    categories = _categories(rng, clicks)
    with open(path, "w", encoding="ascii") as f:
        for lo in range(0, clicks, _CHUNK):
            part = slice(lo, lo + _CHUNK)
            stamp = np.datetime_as_string(times[part], unit="ms").astype(StringDType())
            line = np.strings.add(sessions[part].astype(StringDType()), ",")
            for piece in (stamp, "Z,", item_ids[part].astype(StringDType()), ",", categories[part]):
                line = np.strings.add(line, piece)
            f.write("\n".join(line.tolist()))
            f.write("\n")


def _generate_in_child(path: str, clicks: int, items: int, seed: int) -> None:
    """Runs `generate` in a child process, so its memory does not count in our peak RSS."""
    context = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
    child = context.Process(target=generate, args=(path, clicks, items, seed))
    child.start()
    child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"generating {path} failed (exit code {child.exitcode})")


def main(argv: list[str]) -> None:
    """Generates the raw file if needed, then times one `preprocess` run on it."""
    del argv
    with tempfile.TemporaryDirectory() as tmp:
        raw_path = FLAGS.raw_path or os.path.join(tmp, "yoochoose-clicks.dat")
        if not os.path.exists(raw_path):
            start = time.perf_counter()
            _generate_in_child(raw_path, FLAGS.clicks, FLAGS.items, FLAGS.seed)
            print(f"generated {FLAGS.clicks:,} clicks in {time.perf_counter() - start:.1f} s")
        config = PreprocessConfig(test_fraction=FLAGS.test_fraction)
        start, cpu_start = time.perf_counter(), time.process_time()
        stats = preprocess(raw_path, os.path.join(tmp, "out"), config)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
        print(json.dumps({
            "raw_clicks": stats["raw"]["clicks"],
            "raw_sessions": stats["raw"]["sessions"],
            "raw_items": stats["raw"]["items"],
            "written_clicks": sum(record["clicks"] for record in stats["files"]),
            "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1),
            "peak_rss_gb": round(peak / 1e9, 2),
        }))


if __name__ == "__main__":
    app.run(main)
