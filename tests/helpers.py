"""Tiny models and data shared by the test modules (imported as `tests.helpers`)."""

from __future__ import annotations

import collections
import csv
import os
import re
from collections.abc import Iterable
from typing import Any

import numpy as np
import pytest

from ader_tf.config import Config
from ader_tf.data.periods import Sessions
from ader_tf.data.sample import SampleConfig
from ader_tf.models.gru4rec import GRU4RecEncoder
from ader_tf.models.recommender import SessionRecommender
from ader_tf.models.sasrec import SASRecEncoder
from ader_tf.plugins import make_config

# Vocabulary of the tiny GRU4Rec encoder and of the patterned sessions.
NUM_ITEMS = 20


def left_padded(
    rng: np.random.Generator, lengths: list[int], width: int, num_items: int
) -> np.ndarray:
    """Random ids [len(lengths), width] in 1..num_items, row i holding lengths[i] of them."""
    ids = np.zeros((len(lengths), width), np.int32)
    for row, length in enumerate(lengths):
        if length:
            ids[row, width - length :] = rng.integers(1, num_items + 1, length)
    return ids


def pad_sessions(sessions: list[list[int]], width: int) -> np.ndarray:
    """The sessions as rows of ids [len(sessions), width], left-padded with 0."""
    ids = np.zeros((len(sessions), width), np.int32)
    for row, session in enumerate(sessions):
        if session:
            ids[row, width - len(session) :] = session
    return ids


def randomize(model: Any, seed: int = 0, scale: float = 0.3) -> None:
    """Sets every trainable variable of a model or layer to N(0, scale^2) values.

    Far from the (often tiny) initialisation, so that every term of a model matters. Layer
    norm gammas get 1 + noise, and their betas are non-zero too, which exercises the SASRec
    reference's query-mask quirk.
    """
    rng = np.random.default_rng(seed)
    for v in model.trainable_variables:
        value = rng.standard_normal(v.shape) * scale
        if v.path.endswith("gamma"):
            value += 1.0
        v.assign(value.astype(np.float32))


def tiny_sasrec_model(
    num_items: int = 30,
    hidden_units: int = 8,
    maxlen: int = 6,
    num_blocks: int = 2,
    num_heads: int = 2,
    dropout_rate: float = 0.0,
    seed: int = 1,
    **kwargs: Any,
) -> SessionRecommender:
    """A `SessionRecommender` around a small seeded `SASRecEncoder`."""
    encoder = SASRecEncoder(
        num_items,
        hidden_units=hidden_units,
        maxlen=maxlen,
        num_blocks=num_blocks,
        num_heads=num_heads,
        dropout_rate=dropout_rate,
        seed=seed,
        **kwargs,
    )
    return SessionRecommender(encoder)


def tiny_gru4rec_encoder(**kwargs: Any) -> GRU4RecEncoder:
    """A seeded two-layer `GRU4RecEncoder` over `NUM_ITEMS` items (d = 8, maxlen = 6)."""
    args = {"hidden_units": 8, "num_layers": 2, "maxlen": 6, "seed": 1}
    return GRU4RecEncoder(NUM_ITEMS, **(args | kwargs))


def patterned_sessions(num_sessions: int, seed: int = 0, num_items: int = NUM_ITEMS) -> Sessions:
    """Sessions that walk 1 -> 2 -> ... (mod num_items) from a random start: learnable."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 7, num_sessions)
    starts = rng.integers(0, num_items, num_sessions)
    items = np.concatenate([(s + np.arange(n)) % num_items + 1 for s, n in zip(starts, lengths)])
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return Sessions(items.astype(np.int32), offsets)


def sessions_of(lists: list[list[int]]) -> Sessions:
    """Sessions holding ``lists`` in order."""
    lengths = [len(s) for s in lists]
    items = np.array([i for s in lists for i in s], np.int32)
    return Sessions(items, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))


# === The tiny continual run (end-to-end tests) ===

# Three periods (two cycles) of a few hundred clicks.
TINY_SAMPLE = SampleConfig(num_periods=3, num_topics=6, always_on_topics=2, items_per_topic=8,
                           sessions_per_period=80)
# A model and training small enough for a whole run in seconds. SASRec's length groups are 1:
# each group costs the blocks another trace, which is most of a tiny run's time, and
# tests/test_sasrec.py shows groups change no score (test_runner.py makes one run with 3).
TINY = dict(hidden_units=8, num_epochs=2, stop=1, batch_size=64, test_batch=64, maxlen=6,
            exemplar_size=60, ewc_sample_num=20, export_k=5, export_saved_models=False,
            progress=False, length_groups=1)
# The flags of each method's tiny run (the `finished` fixture runs each once per session).
METHOD_FLAGS: dict[str, dict[str, Any]] = {
    "ader": {},
    "er": {"disable_distillation": True},
    "ewc": {"ewc": True},
    "finetune": {"finetune": True},
    "dropout": {"dropout": True},
    "joint": {"joint": True},
    "lwf": {"method": "lwf"},
    "agem": {"method": "agem"},
    "mas": {"method": "mas"},
    "derpp": {"method": "derpp", "derpp_top_k": 5},
    "reservoir": {"method": "er", "selection": "reservoir"},
    "sacaisr": {"method": "sacaisr"},
}
# Metric columns that a resumed run must reproduce exactly (all but the timings).
RESULT_COLUMNS = ("cycle", "epochs_run", "best_epoch", "mrr20", "recall20", "mrr10", "recall10",
                  "test_examples", "lambda", "exemplars_kept")


def tiny_config(data_dir: str, results_dir: Any, **kwargs: Any) -> Config:
    """The tiny run's Config on the sample under `data_dir`, with `kwargs` on top."""
    settings = {**TINY, **kwargs}
    if settings.get("model", "sasrec") != "sasrec" and "length_groups" not in kwargs:
        del settings["length_groups"]  # a SASRec setting: other backbones refuse it
    return make_config(data_dir=data_dir, results_dir=str(results_dir), **settings)


def metrics_rows(path: Any) -> list[dict[str, str]]:
    """The rows of a run's metrics.csv."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def results(path: Any) -> list[list[str]]:
    """The RESULT_COLUMNS of each row of a metrics.csv (or of the metrics.csv in a run folder)."""
    if os.path.isdir(path):
        path = os.path.join(path, "metrics.csv")
    return [[row[k] for k in RESULT_COLUMNS] for row in metrics_rows(path)]


def assert_same_exemplars_up_to_ties(folder_a: str, folder_b: str, cycles: Iterable[int]) -> None:
    """Two runs whose weights differ only in float32 summation order (e.g. one device and
    several replicas) keep the same exemplars but where herding met a near-tie: session
    vectors that differ in their last bits can change a pick, and with it when herding's step
    budget (1.1 x quota) ends, so a few rows may differ or be missing. At least 95% of the rows
    (inputs and target) of either run must be in the other."""
    for cycle in cycles:
        name = os.path.join("exemplars", f"cycle_{cycle}.npz")
        with np.load(os.path.join(folder_a, name)) as a, np.load(os.path.join(folder_b, name)) as b:
            assert sorted(a.files) == sorted(b.files) == ["inputs", "targets"]
            rows = [collections.Counter(map(tuple, np.column_stack([f["inputs"], f["targets"]])))
                    for f in (a, b)]
            common = sum((rows[0] & rows[1]).values())
            largest = max(len(a["targets"]), len(b["targets"]))
            assert common >= 0.95 * largest, (cycle, common, len(a["targets"]),
                                              len(b["targets"]))


# The runner's log line of a cycle's first epoch: its rows trained on and first-step loss.
_FIRST_EPOCH_LINE = re.compile(r"cycle (\d+) epoch 1: .*examples (\d+), first_step_loss (\S+),")


def first_epochs(log_text: str) -> dict[int, tuple[int, float]]:
    """(examples, first-step loss) of each cycle's first epoch in a run's log (last run wins)."""
    return {int(c): (int(n), float(loss))
            for c, n, loss in _FIRST_EPOCH_LINE.findall(log_text)}


def assert_runs_agree_up_to_float_order(folder_a: str, folder_b: str,
                                        cycles: Iterable[int]) -> None:
    """Two runs of one config whose weights differ only in float32 summation order (one device
    and several replicas or workers) end their cycles alike: the same counts and epochs, the
    same metrics but where a rank crosses a cut-off, and the same exemplars up to herding's
    near-ties."""
    cycles = list(cycles)
    one = metrics_rows(os.path.join(folder_a, "metrics.csv"))
    two = metrics_rows(os.path.join(folder_b, "metrics.csv"))
    assert [r["cycle"] for r in two] == [str(c) for c in cycles]
    for a, b in zip(one, two, strict=True):
        for key in ("test_examples", "exemplars_kept", "best_epoch", "epochs_run"):
            assert a[key] == b[key], key
        for key in ("mrr20", "recall20", "mrr10", "recall10"):
            # Ranks move only where two scores tie within float32 rounding: allow one of the
            # tiny run's 145 or 210 test examples to cross a cut-off (1/145 < 0.01).
            assert float(b[key]) == pytest.approx(float(a[key]), abs=0.01), key
    assert_same_exemplars_up_to_ties(folder_a, folder_b, cycles)
