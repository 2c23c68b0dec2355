"""Shared test helpers: where the real data and the parity fixtures are, and tiny data."""

from __future__ import annotations

import os
from typing import NoReturn

import numpy as np
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session", autouse=True)
def xdist_groups_applied(request: pytest.FixtureRequest) -> None:
    """Fails every test of a run whose xdist groups would be ignored.

    Modules whose tests share an expensive fixture (a trained run) carry an ``xdist_group``
    mark so that one worker builds it once. pytest-xdist applies the mark by appending
    ``@<group>`` to each test id; under pytest 9.2 that has no effect (the id no longer follows
    the attribute xdist sets), so every worker would build every such fixture again: minutes
    lost, and nothing would say so. setup.py pins pytest below 9.2; this names the problem if a
    newer pytest comes in anyway.
    """
    session = request.session
    if not os.environ.get("PYTEST_XDIST_WORKER") or not session.config.getvalue("loadgroup"):
        return
    ignored = [item.nodeid for item in session.items
               if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]
    if ignored:
        pytest.fail(
            f"pytest-xdist ignored the xdist_group mark of {len(ignored)} tests (e.g. "
            f"{ignored[0]}) under pytest {pytest.__version__}; install the pytest version "
            "setup.py asks for (pip install -e '.[test]')", pytrace=False)


def missing_fixture(reason: str) -> NoReturn:
    """Skips the calling test for a missing data or parity fixture, with the reason.

    With ``ADER_REQUIRE_FIXTURES=1`` (CI sets it) the test fails instead, with the same reason,
    so fixtures cannot silently vanish from a run that is meant to have them.
    """
    if os.environ.get("ADER_REQUIRE_FIXTURES") == "1":
        pytest.fail(f"{reason} (ADER_REQUIRE_FIXTURES=1: missing fixtures fail)", pytrace=False)
    pytest.skip(reason)


def _shared_dir(variable: str, name: str) -> str:
    """``$<variable>``, or ``<repo>/../shared/<name>`` where CI keeps it beside the checkout."""
    return os.environ.get(variable) or os.path.join(REPO_ROOT, "..", "shared", name)


def real_data_path() -> str:
    """Where the real period files are expected (``$ADER_DATA_DIR`` or ``../shared/data``)."""
    return _shared_dir("ADER_DATA_DIR", "data")


def parity_path() -> str:
    """Where the parity fixtures are expected (``$ADER_PARITY_DIR`` or ``../shared/parity``)."""
    return _shared_dir("ADER_PARITY_DIR", "parity")


def real_data_dir(dataset: str) -> str:
    """The period files of ``dataset`` under ``real_data_path()``, or a missing fixture."""
    path = os.path.join(real_data_path(), dataset)
    if not os.path.isdir(path):
        missing_fixture(f"real data not found at {path} (set ADER_DATA_DIR to a folder with "
                        "DIGINETICA/, YOOCHOOSE/)")
    return path


def parity_dir(*parts: str) -> str:
    """``parity_path()/<parts>`` if it exists, or a missing fixture."""
    path = os.path.join(parity_path(), *parts)
    if not os.path.exists(path):
        missing_fixture(f"parity fixture not found at {path} (set ADER_PARITY_DIR)")
    return path


def write_period_files(folder: str, periods: list[list[tuple[int, int]]]) -> str:
    """Writes ``period_<i>.txt`` files from lists of (session, item) clicks."""
    os.makedirs(folder, exist_ok=True)
    for i, clicks in enumerate(periods):
        with open(os.path.join(folder, f"period_{i}.txt"), "w") as f:
            f.writelines(f"{s} {it}\n" for s, it in clicks)
    return folder


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> str:
    """A folder holding the tiny sample dataset (`sample/`), written once per session."""
    from ader_tf.data.sample import write_sample_dataset
    from tests.helpers import TINY_SAMPLE

    folder = tmp_path_factory.mktemp("data")
    write_sample_dataset(str(folder / "sample"), TINY_SAMPLE)
    return str(folder)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def finished(tiny_data_dir, tmp_path_factory):
    """``finished(name)``: the runner of a complete tiny run of ``METHOD_FLAGS[name]`` on the
    sample, run once per session (tests only read it)."""
    from ader_tf.continual.runner import ContinualRunner
    from tests.helpers import METHOD_FLAGS, tiny_config

    runners = {}

    def get(name: str) -> ContinualRunner:
        if name not in runners:
            flags = METHOD_FLAGS[name]
            export = not flags  # one method exports its SavedModels; the export has its tests
            config = tiny_config(tiny_data_dir, tmp_path_factory.mktemp(name),
                                 export_saved_models=export, **flags)
            runners[name] = ContinualRunner(config)
            runners[name].run()
            runners[name].writer.flush()
        return runners[name]

    return get
