"""Shared test helpers: where the real data and the parity fixtures are, and tiny data."""

from __future__ import annotations

import os

import numpy as np
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def real_data_dir(dataset: str) -> str:
    """``$ADER_DATA_DIR/<dataset>``, or skip the test with the reason."""
    root = os.environ.get("ADER_DATA_DIR")
    if not root:
        pytest.skip("ADER_DATA_DIR is not set (point it at a folder with DIGINETICA/, YOOCHOOSE/)")
    path = os.path.join(root, dataset)
    if not os.path.isdir(path):
        pytest.skip(f"{path} does not exist")
    return path


def parity_dir() -> str:
    """``$ADER_PARITY_DIR`` or ``<repo>/../shared/parity``, or skip with the reason."""
    path = os.environ.get("ADER_PARITY_DIR") or os.path.join(REPO_ROOT, "..", "shared", "parity")
    if not os.path.isdir(path):
        pytest.skip(f"parity fixtures not found at {path} (set ADER_PARITY_DIR)")
    return path


def write_period_files(folder: str, periods: list[list[tuple[int, int]]]) -> str:
    """Writes ``period_<i>.txt`` files from lists of (session, item) clicks."""
    os.makedirs(folder, exist_ok=True)
    for i, clicks in enumerate(periods):
        with open(os.path.join(folder, f"period_{i}.txt"), "w") as f:
            f.writelines(f"{s} {it}\n" for s, it in clicks)
    return folder


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
