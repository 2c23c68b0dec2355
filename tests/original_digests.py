"""Regenerates `ORIGINAL_DIGESTS` of `tests/test_preprocessing.py` with the original's code.

Usage, from the repository root, with a checkout of https://github.com/doublemul/ADER::

    python -m tests.original_digests /path/to/ADER

For each case it writes the test's synthetic raw log (`yoochoose_text()` or `diginetica_text()`),
runs the original's `data/preprocessing.py` on it with the case's flags and time zone (TZ), and
prints the number of files written and the digest the test computes. The original runs
unchanged except for what a current Python stack needs: `numpy` and `defaultdict` imported in
its `data/util.py`, and `np.percentile(..., interpolation=...)` renamed to `method=` (NumPy 2
removed the old name; same meaning).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from tests.test_preprocessing import _digest, _outputs, diginetica_text, yoochoose_text

# Case: (original's flags, TZ). The flags are the original's for the settings of SETTINGS.
ORIGINAL_RUNS = {
    "yoo_day": (["--test_fraction=day"], "UTC"),
    "yoo_day_new_york": (["--test_fraction=day"], "America/New_York"),
    "yoo_select": (["--test_fraction=day", "--yoochoose_select=0.5"], "UTC"),
    "yoo_week": (["--test_fraction=week"], "UTC"),
    "yoo_joint": (["--test_fraction=day", "--is_time_fraction=false"], "UTC"),
    "digi_week": ([], "UTC"),
    "digi_week_new_york": ([], "America/New_York"),
    "digi_day_thresholds": (["--test_fraction=day", "--threshold_item=2",
                             "--threshold_sess=2"], "UTC"),
    "digi_joint": (["--is_time_fraction=false"], "UTC"),
}


def _original_code(checkout: str, folder: str) -> str:
    """Copies the original's preprocessing into `folder`, patched to run; returns the script."""
    with open(os.path.join(checkout, "data", "util.py"), encoding="utf-8") as f:
        util = f.read()
    with open(os.path.join(checkout, "data", "preprocessing.py"), encoding="utf-8") as f:
        script = f.read()
    util = "import numpy as np\nfrom collections import defaultdict\n" + util
    script = script.replace("interpolation='lower'", "method='lower'")
    with open(os.path.join(folder, "util.py"), "w", encoding="utf-8") as f:
        f.write(util)
    with open(os.path.join(folder, "preprocessing.py"), "w", encoding="utf-8") as f:
        f.write(script)
    return os.path.join(folder, "preprocessing.py")


def original_digest(checkout: str, case: str) -> tuple[int, str]:
    """(files written, digest) of the original's output for one case."""
    flags, zone = ORIGINAL_RUNS[case]
    yoochoose = case.startswith("yoo")
    raw_name = "yoochoose-clicks.dat" if yoochoose else "train-item-views.csv"
    with tempfile.TemporaryDirectory() as work:
        os.makedirs(os.path.join(work, "code"))
        os.makedirs(os.path.join(work, "dataset"))
        with open(os.path.join(work, "dataset", raw_name), "w", encoding="utf-8") as f:
            f.write(yoochoose_text() if yoochoose else diginetica_text())
        script = _original_code(checkout, os.path.join(work, "code"))
        env = dict(os.environ, TZ=zone)
        subprocess.run([sys.executable, script, f"--dataset={raw_name}", *flags], cwd=work,
                       env=env, check=True, capture_output=True)
        name = "YOOCHOOSE" if yoochoose else "DIGINETICA"
        if "--is_time_fraction=false" in flags:
            name += "_joint"
        out = os.path.join(work, name)
        names = _outputs(out)
        return len(names), _digest(out, names)


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit(f"usage: python -m tests.original_digests /path/to/ADER, got {argv[1:]}")
    print("ORIGINAL_DIGESTS = {")
    for case in ORIGINAL_RUNS:
        count, digest = original_digest(argv[1], case)
        print(f'    "{case}": ({count}, "{digest}"),')
    print("}")


if __name__ == "__main__":
    main(sys.argv)
