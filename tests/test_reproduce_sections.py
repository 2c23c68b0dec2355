"""benchmarks/reproduce.py: RESULTS.md's sections come out of the committed records unchanged."""

from __future__ import annotations

import os
import re
import shlex

import pytest
from absl import app, flags

from benchmarks import reproduce
from benchmarks.reproduce_tables import update_results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _section(text: str, name: str) -> str:
    return re.search(rf"<!-- BEGIN {re.escape(name)} -->\n(.*?)<!-- END", text, re.S).group(1)


def _parse(args: list[str]) -> flags.FlagValues:
    """The entry point's flags, parsed from ``args`` apart from the process's own flags."""
    flag_values = flags.FlagValues()
    reproduce.define_flags(flag_values)
    flag_values(["reproduce.py", *args])
    return flag_values


def _regenerate(name: str, tmp_path) -> tuple[str, str]:
    """(RESULTS.md's section, the same section rebuilt from benchmarks/records by its command)."""
    with open(os.path.join(REPO, "RESULTS.md"), encoding="utf-8") as f:
        published = _section(f.read(), name)
    command = re.search(r"Command: `python benchmarks/reproduce.py ([^`]*)`", published).group(1)
    args = shlex.split(command)
    results_md = tmp_path / "RESULTS.md"
    local = ["--norun", f"--results_md={results_md}", f"--results_dir={tmp_path / 'runs'}"]
    options = reproduce.options_from_flags(_parse(args + local))
    update_results(options, reproduce.published_command(args + local))
    return published, _section(results_md.read_text(encoding="utf-8"), name)


def _without_machine_line(section: str) -> list[str]:
    return [line for line in section.splitlines() if not line.startswith("Machine: ")]


def test_a_side_by_side_section_is_rebuilt_from_the_records(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # its command names the original's logs relative to the repository
    published, rebuilt = _regenerate("diginetica-dropout-original", tmp_path)
    assert _without_machine_line(rebuilt) == _without_machine_line(published)


def test_a_methods_section_is_rebuilt_from_the_records(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    published, rebuilt = _regenerate("diginetica-16cycles-baselines", tmp_path)
    # What a run kept for the next cycle is measured in its run folder, which records lack.
    kept = re.compile(r"\| (- \(read from its record[^|]*|[\d.]+ MB of files[^|]*) \|$")
    assert [kept.sub("|", line) for line in _without_machine_line(rebuilt)] == [
        kept.sub("|", line) for line in _without_machine_line(published)]
    assert (tmp_path / "figures" / "diginetica-16cycles-baselines.png").is_file()


def test_unknown_methods_are_a_usage_error_naming_the_choices():
    with pytest.raises(app.UsageError, match=r"unknown methods \['bogus'\]; choose from .*'ader'"):
        reproduce.options_from_flags(_parse(["--methods=ader,bogus"]))
