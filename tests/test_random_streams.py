"""Named random streams: one stream per (seed, cycle, purpose[, index]), none shared."""

from __future__ import annotations

import collections
import json
import pathlib
import re

import numpy as np
import pytest

from ader_tf.continual.artifacts import RunState, RunStateError
from ader_tf.random_streams import STREAMS_VERSION, RandomStreams
from tests.helpers import tiny_sasrec_model

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "ader_tf"


def _draws(streams: RandomStreams, purpose: str, cycle: int, *index: int) -> list[int]:
    return streams.generator(purpose, cycle, *index).integers(2**62, size=4).tolist()


def test_a_key_draws_the_same_numbers_every_time():
    streams = RandomStreams(7)
    assert _draws(streams, "shuffle", 2, 3) == _draws(RandomStreams(7), "shuffle", 2, 3)
    # A seed sequence does not advance: every generator made from it starts alike.
    sequence = streams.sequence("shuffle", 2, 3)
    assert (np.random.default_rng(sequence).random(3).tolist()
            == np.random.default_rng(sequence).random(3).tolist())


def test_keys_that_integer_salts_confused_draw_different_numbers():
    streams = RandomStreams(0)
    keys = [
        ("shuffle", 1, 3), ("exemplar_selection", 1), ("shuffle", 1, 4), ("importance_sample", 1),
        ("validation_split", 1), ("validation_sessions", 1), ("dropout", 1, 0), ("dropout", 1, 1),
        ("dropout", 2, 0), ("shuffle", 2, 1), ("shuffle", 1, 2), ("sacaisr_masks", 1),
        ("probe_sessions", 1), ("knn_ties", 1), ("knn_ties", 1, 1),
    ]
    draws = [tuple(_draws(streams, *key)) for key in keys]
    assert len(set(draws)) == len(keys)
    assert _draws(RandomStreams(1), "shuffle", 1, 3) != _draws(streams, "shuffle", 1, 3)


def test_the_numbers_of_a_key_are_pinned():
    # Runs resume only with the draws they started with: a change here must bump
    # STREAMS_VERSION (so older run folders are refused) and update these numbers.
    assert STREAMS_VERSION == 1
    streams = RandomStreams(0)
    assert streams.tf_seed("shuffle", 1, 1) == 1874146988
    assert streams.tf_seed_pair("dropout", 3, 2) == (1966873706, 1803222622)
    assert streams.generator("exemplar_selection", 2).integers(1000, size=5).tolist() == [
        940, 429, 764, 94, 597]


def test_tf_seeds_fit_in_int32():
    streams = RandomStreams(123456789)
    for cycle in range(1, 30):
        assert 0 <= streams.tf_seed("encoder_init", cycle) < 2**31
        assert all(0 <= w < 2**31 for w in streams.tf_seed_pair("dropout", cycle, 0))


def test_a_purpose_needs_a_name():
    with pytest.raises(ValueError, match="purpose name"):
        RandomStreams(0).generator("", 1)


def test_dropout_generators_start_in_distinct_streams():
    model = tiny_sasrec_model(dropout_rate=0.3, tied_dropout=False)
    streams = RandomStreams(0)
    model.reseed_dropout(lambda layer: streams.tf_seed_pair("dropout", 1, layer))
    generators = [layer.seed_generator for layer in model._flatten_layers(include_self=False)
                  if hasattr(layer, "seed_generator")]
    assert len(generators) >= 5  # embedding, per block: attention, inner and outer FFN
    firsts = [int(g.state.numpy()[0]) for g in generators]
    assert len(set(firsts)) == len(firsts)
    # Draws advance the second word only: generators never meet whatever the step.
    for _ in range(3):
        for generator in generators:
            generator.next()
    assert [int(g.state.numpy()[0]) for g in generators] == firsts


def test_states_that_would_repeat_another_layers_masks_are_refused():
    # The former seeding, [S, k] for generator k, met itself after one draw.
    model = tiny_sasrec_model(dropout_rate=0.3, tied_dropout=False)
    with pytest.raises(ValueError, match="distinct streams"):
        model.reseed_dropout(lambda layer: (5, layer))


def _purpose_call_sites() -> dict[str, list[str]]:
    """Each purpose name written in the package, with where it is drawn."""
    call = re.compile(r"\.(?:seed|generator|sequence|tf_seed|tf_seed_pair)\(\s*"
                      r"(?:[\w.]+\s*(?:or\s+\w+\s*)?,\s*)?\"(\w+)\"")
    sites = collections.defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            for name in call.findall(line):
                sites[name].append(f"{path.relative_to(PACKAGE)}:{number}")
    return sites


def test_each_purpose_is_drawn_in_one_place():
    sites = _purpose_call_sites()
    expected = {"keras_global", "encoder_init", "dropout", "shuffle", "gru4rec_negatives",
                "knn_ties", "exemplar_selection", "importance_sample", "sacaisr_masks",
                "validation_split", "validation_sessions", "probe_sessions"}
    assert expected <= set(sites), sorted(sites)
    shared = {name: where for name, where in sites.items() if len(where) > 1}
    assert not shared, shared


def test_no_integer_salted_seeds_are_left():
    salted = re.compile(r"default_rng\(\s*\[|random_seed,\s*cycle")
    found = [f"{path.relative_to(PACKAGE)}:{n}" for path in PACKAGE.rglob("*.py")
             for n, line in enumerate(path.read_text().splitlines(), start=1)
             if salted.search(line)]
    assert not found, found


def test_a_folder_from_before_named_streams_is_refused(tmp_path):
    path = tmp_path / "state.json"
    cycle = {"cycle": 1, "best_epoch": 1, "max_item": 5, "mrr20": 0.1, "recall20": 0.2,
             "mrr10": 0.1, "recall10": 0.2, "train_seconds": 1, "selection_seconds": 0,
             "test_seconds": 0}
    path.write_text(json.dumps({"fingerprint": "abc", "cycles": [cycle]}))
    with pytest.raises(RunStateError) as raised:
        RunState.load_or_new(str(path), "abc")
    assert raised.value.exit_code == 2
    assert "before named random streams" in str(raised.value)
    assert "\n" not in str(raised.value)
    # A folder with no finished cycle has drawn nothing yet: it is simply continued.
    path.write_text(json.dumps({"fingerprint": "abc", "cycles": []}))
    assert RunState.load_or_new(str(path), "abc").cycles == []
    # What this version saves, it resumes.
    RunState("abc", [cycle]).save(str(path))
    assert json.loads(path.read_text())["random_streams"] == STREAMS_VERSION
    assert RunState.load_or_new(str(path), "abc").cycles == [cycle]
