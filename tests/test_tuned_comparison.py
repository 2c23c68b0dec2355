"""benchmarks/tuned_comparison.py: every method with a search space tuned on one budget, then
every registered method compared at the tuned values, with what resumes it kept in the records."""

from __future__ import annotations

import os

from absl import flags

from ader_tf.continual.methods import METHODS
from benchmarks import registry, reproduce, tuned_comparison


def _flag(command: list[str], name: str) -> str:
    """The value of ``--name=`` in ``command``."""
    (value,) = [arg.split("=", 1)[1] for arg in command if arg.startswith(f"--{name}=")]
    return value


def _tune_commands(records_dir: str, reverse: bool = False) -> list[list[str]]:
    return tuned_comparison.tune_commands("DIGINETICA", "data", "runs", records_dir, trials=8,
                                          startup_trials=4, tune_seed=0, reverse=reverse)


def test_every_method_with_a_search_space_is_tuned_once_on_the_same_budget(tmp_path):
    commands = _tune_commands(str(tmp_path))
    studied = [_flag(command, "method") for command in commands]
    assert sorted(studied) == sorted(name for name, m in METHODS.items() if m.search_space)
    budgets = {tuple(_flag(command, name) for name in ("trials", "startup_trials", "random_seed"))
               for command in commands}
    assert budgets == {("8", "4", "0")}
    # Each study has its own journal among the records (committed: a study continues on a
    # machine without the run folders), and all write their best values to one tuned file.
    journals = {_flag(command, "storage") for command in commands}
    assert journals == {f"journal:{tmp_path / 'tuned' / f'DIGINETICA-{m}.journal'}"
                        for m in studied}
    assert {_flag(command, "tuned_out") for command in commands} == {
        tuned_comparison.tuned_file(str(tmp_path), "DIGINETICA")}
    # A second process starts at the other end.
    assert [_flag(c, "method") for c in _tune_commands(str(tmp_path), True)] == studied[::-1]


def test_the_table_runs_every_registered_method_at_the_tuned_values(tmp_path):
    command = tuned_comparison.table_command("DIGINETICA", "data", "runs", str(tmp_path),
                                             cycles=4, seeds=["0", "1", "2"])
    assert os.path.basename(command[1]) == "reproduce.py"
    flag_values = flags.FlagValues()
    reproduce.define_flags(flag_values)
    flag_values(["reproduce.py", *command[2:]])
    options = reproduce.options_from_flags(flag_values)

    assert len(set(options.methods)) == len(options.methods)
    assert {registry.RUN_METHODS[m][0] for m in options.methods} == set(METHODS)
    assert [m for m in options.methods if registry.RUN_METHODS[m][0] == "er"] == [
        "er_herding", "er_reservoir"]
    assert options.tuned == tuned_comparison.tuned_file(str(tmp_path), "DIGINETICA")
    assert options.records_dir == str(tmp_path)
    assert options.share_first_cycle and options.seeds == ("0", "1", "2")
    assert options.cycles == 4 and options.section == "diginetica-tuned"
    # Every tunable method the table runs has its study.
    tuned = {registry.RUN_METHODS[m][0] for m in options.methods if registry.is_tunable(m)}
    assert tuned == {_flag(c, "method") for c in _tune_commands(str(tmp_path))}
