"""The plug-in registry: options declared once, validated, refused where they do not apply,
and fingerprints that keep every earlier run resumable."""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import subprocess
import sys

import pytest

from ader_tf.config import FIELD_GROUPS, Config
from ader_tf.plugins import (
    config_from_stored,
    make_config,
    option_groups,
    plugin_options,
    plugins,
)
from tests.conftest import REPO_ROOT

_RECORDS = sorted(glob.glob(os.path.join(REPO_ROOT, "benchmarks", "records", "*", "config.json")))
with open(os.path.join(REPO_ROOT, "tests", "data", "fingerprints.json")) as f:
    _PINNED = json.load(f)["cases"]


@pytest.mark.parametrize("path", _RECORDS, ids=lambda p: os.path.basename(os.path.dirname(p)))
def test_every_committed_record_keeps_its_fingerprint(path):
    """A refactor that changed a fingerprint would orphan the record (and run folders)."""
    with open(path) as f:
        stored = json.load(f)
    assert config_from_stored(stored).fingerprint() == stored["fingerprint"]


@pytest.mark.parametrize("case", _PINNED, ids=lambda c: json.dumps(c["config"]))
def test_configs_of_earlier_versions_keep_their_fingerprint(case):
    assert make_config(**case["config"]).fingerprint() == case["fingerprint"]


def test_the_pinned_configs_give_plugin_options_of_every_kind():
    """The pins exercise the rule for plug-in options (each kind), not only base fields."""
    given = {name for case in _PINNED for name in case["config"]}
    for kind in ("method", "model", "learner"):
        options = {o.name for p in plugins() if p.kind == kind for o in p.options}
        assert given & options, kind


def test_a_new_option_at_its_default_changes_no_fingerprint():
    base = make_config(method="lwf", lwf_temperature=3.0)
    extra = Config(option_defaults={**base.option_defaults, "lwf_new": 1}, method="lwf",
                   lwf_temperature=3.0)
    assert extra.fingerprint() == base.fingerprint()
    assert Config(option_defaults=extra.option_defaults, method="lwf", lwf_temperature=3.0,
                  lwf_new=2).fingerprint() != base.fingerprint()


def test_options_are_declared_once_and_are_not_config_fields():
    fields = {f.name for f in dataclasses.fields(Config)}
    options = plugin_options()  # raises on a name declared differently twice
    assert not set(options) & fields
    for option in options.values():
        option.validate(option.default)  # every default is valid


def _other_plugin_config(option_name):
    """A config that uses none of the plug-ins owning ``option_name``."""
    owners = [p for p in plugins() if any(o.name == option_name for o in p.options)]
    for candidate in ({}, {"model": "gru4rec"}, {"model": "sknn", "finetune": True}):
        config = make_config(**candidate)
        if not any(p.chosen(config) for p in owners):
            return candidate
    raise AssertionError(option_name)


@pytest.mark.parametrize("name", sorted(plugin_options()))
def test_an_option_of_a_plugin_not_used_is_refused(name):
    option = plugin_options()[name]
    if option.choices:
        changed = next(c for c in option.choices if c != option.default)
    elif option.kind is bool:
        changed = not option.default
    else:  # a valid other value: half a float (ranges start at 0), one more for an int
        changed = option.default / 2 if option.kind is float else option.default + 1
    option.validate(changed)
    with pytest.raises(ValueError, match=f"--{name} only applies to "):
        make_config(**_other_plugin_config(name), **{name: changed})


def test_an_unknown_option_is_refused():
    with pytest.raises(ValueError, match="--no_such_option is not an option of any plug-in"):
        make_config(no_such_option=1)


def test_every_flag_field_has_a_help_group():
    grouped = [name for names in FIELD_GROUPS.values() for name in names]
    flags = [f.name for f in dataclasses.fields(Config) if f.metadata.get("flag", True)]
    assert sorted(grouped) == sorted(flags)


def test_help_lists_every_option_under_its_plugin():
    result = subprocess.run([sys.executable, "main.py", "--help"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120, check=True)
    sections = {}
    for block in result.stdout.split("\n\n"):
        heading, _, body = block.partition(":\n")
        sections[heading.strip()] = body
    for group, options in option_groups().items():
        for option in options:
            assert f"--{option.name}:" in sections[group], group
    assert "model stamp/stmp" in sections
    assert "--lr:" in sections["training"] and "--method:" in sections["method"]


_HELP_WITHOUT_TENSORFLOW = """
import runpy, sys
sys.argv = ["main.py", "{flag}"]
try:
    runpy.run_path("main.py", run_name="__main__")
except SystemExit as e:
    code = e.code
else:
    code = None
print("exit", code, file=sys.stderr)
print("imported", "tensorflow" in sys.modules, "keras" in sys.modules, file=sys.stderr)
"""


@pytest.mark.parametrize("flag", ["--help", "--helpfull"])
def test_help_imports_no_tensorflow(flag):
    """--help lists every group from the plug-ins' declarations alone: no TensorFlow or Keras
    is imported (a plug-in's file imports them inside the functions that use them)."""
    result = subprocess.run([sys.executable, "-c", _HELP_WITHOUT_TENSORFLOW.format(flag=flag)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                            check=True)
    status = result.stderr.strip().splitlines()
    # absl's --helpfull exits with 1, as it always has; our --help with 0.
    assert status[-2] == f"exit {1 if flag == '--helpfull' else 0}", result.stderr
    assert status[-1] == "imported False False", result.stderr
    headings = {block.partition(":\n")[0].strip() for block in result.stdout.split("\n\n")}
    for group in (*FIELD_GROUPS, *option_groups()):
        assert group in headings, group
    assert {"run", "model", "distribution", "method lwf", "learner knn"} <= headings
