"""A tuning's result file: each method's best values on one dataset, with their provenance.

``python -m ader_tf.tune`` writes a method's entry (`record_tuned`); ``main.py --tuned=FILE``
reads the values of its run's method (`tuned_values`) and uses them where the flag is not
given. The file is JSON::

    {"format": "ader_tf.tuned/1", "dataset": "DIGINETICA",
     "methods": {"ewc": {"values": {"lambda_": 120.5}, "objective": 0.4521, ...}}}

An entry also holds what the objective was, how many trials, the study and its storage,
the date, the command and the git revision. Importing this module imports no TensorFlow.
"""

from __future__ import annotations

import os
from typing import Any

from ader_tf.io_utils import file_lock, read_json, write_json_atomic

FORMAT = "ader_tf.tuned/1"


def read_tuned(path: str) -> dict[str, Any]:
    """The tuned file at ``path``.

    Raises:
        ValueError: naming the file, if it is missing or not a tuned file.
    """
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such tuned file (python -m ader_tf.tune writes one)")
    data = read_json(path)
    if not (isinstance(data, dict) and data.get("format") == FORMAT
            and isinstance(data.get("methods"), dict) and isinstance(data.get("dataset"), str)):
        raise ValueError(f"{path}: not a tuned file (format {FORMAT!r} with a dataset and "
                         "methods)")
    for method, entry in data["methods"].items():
        if not (isinstance(entry, dict) and isinstance(entry.get("values"), dict)):
            raise ValueError(f"{path}: method {method!r} has no values")
    return data


def tuned_values(path: str, dataset: str, method: str) -> dict[str, Any]:
    """The values tuned for ``method`` on ``dataset``; empty when the file has none for it
    (e.g. a method with nothing to tune).

    Raises:
        ValueError: naming the file, if it is not a tuned file or was tuned on another dataset.
    """
    data = read_tuned(path)
    if data["dataset"] != dataset:
        raise ValueError(f"{path}: tuned on {data['dataset']}, not {dataset}; tune on "
                         f"{dataset} or leave out --tuned")
    return dict(data["methods"].get(method, {}).get("values", {}))


def record_tuned(path: str, dataset: str, method: str, entry: dict[str, Any]) -> None:
    """Writes ``entry`` (with its ``values``) as ``method``'s, keeping the other methods'.

    Raises:
        ValueError: naming the file, if it holds another dataset's values or is no tuned file.
    """
    if not isinstance(entry.get("values"), dict):
        raise ValueError(f"`entry` must hold a dict of values, got {entry.get('values')!r}")
    with file_lock(path + ".lock"):  # several tuners may end at once
        data = read_tuned(path) if os.path.exists(path) else {
            "format": FORMAT, "dataset": dataset, "methods": {}}
        if data["dataset"] != dataset:
            raise ValueError(f"{path}: holds values tuned on {data['dataset']}, not {dataset}; "
                             "give another --tuned_out")
        data["methods"] = dict(sorted({**data["methods"], method: entry}.items()))
        write_json_atomic(path, data)
