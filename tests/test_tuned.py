"""Tuned files: written per method, read by ``main.py --tuned`` (explicit flags win) and
passed on by ``benchmarks/reproduce.py --tuned``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from absl import flags

from ader_tf import cli
from ader_tf.tuned import FORMAT, record_tuned, tuned_values
from benchmarks.reproduce_options import ReproduceOptions
from benchmarks.reproduce_runs import command, run_name
from tests.conftest import REPO_ROOT


@pytest.fixture
def tuned_file(tmp_path) -> str:
    path = str(tmp_path / "tuned" / "sample.json")
    record_tuned(path, "sample", "ewc", {"values": {"lambda_": 123.0}, "objective": 0.4})
    record_tuned(path, "sample", "derpp", {"values": {"derpp_alpha": 0.2, "derpp_beta": 2.5}})
    return path


def _config(*args: str):
    flag_values = flags.FlagValues()
    cli.define_run_flags(flag_values)
    flag_values(["main.py", *args])
    return cli.config_from_flags(flag_values)


def test_record_keeps_the_other_methods(tuned_file):
    with open(tuned_file) as f:
        data = json.load(f)
    assert data["format"] == FORMAT and data["dataset"] == "sample"
    assert list(data["methods"]) == ["derpp", "ewc"]
    record_tuned(tuned_file, "sample", "ewc", {"values": {"lambda_": 7.0}})
    assert tuned_values(tuned_file, "sample", "ewc") == {"lambda_": 7.0}
    assert tuned_values(tuned_file, "sample", "derpp") == {"derpp_alpha": 0.2, "derpp_beta": 2.5}
    assert tuned_values(tuned_file, "sample", "finetune") == {}
    with pytest.raises(ValueError, match="holds values tuned on sample, not SHOP"):
        record_tuned(tuned_file, "SHOP", "ewc", {"values": {"lambda_": 1.0}})


def test_tuned_values_apply_unless_the_flag_is_given(tuned_file):
    config, applied = _config("--ewc", f"--tuned={tuned_file}")
    assert config.lambda_ == 123.0 and applied == {"lambda_": 123.0}
    assert "lambda_" not in config.dataset_defaults
    config, applied = _config("--method=ewc", f"--tuned={tuned_file}", "--lambda_=0.5")
    assert config.lambda_ == 0.5 and applied == {}  # the command line wins
    config, _ = _config("--method=derpp", "--derpp_beta=1.0", f"--tuned={tuned_file}")
    assert (config.derpp_alpha, config.derpp_beta) == (0.2, 1.0)
    # No entry for the method, or no --tuned: the paper's defaults.
    assert _config("--finetune", f"--tuned={tuned_file}")[0].lambda_ == 0.8
    assert _config("--ewc")[0].lambda_ == 0.8


def test_tuned_file_of_another_dataset_is_refused(tuned_file, tmp_path):
    with pytest.raises(ValueError, match="tuned on sample, not SHOP"):
        _config("--ewc", "--dataset=SHOP", f"--tuned={tuned_file}")
    with pytest.raises(ValueError, match="no such tuned file"):
        _config("--ewc", f"--tuned={tmp_path / 'missing.json'}")


def test_main_py_applies_the_tuned_file(tuned_file):
    code = (f"import main; main.FLAGS(['main.py', '--ewc', '--tuned={tuned_file}']); "
            "c = main.config_from_flags(); print(c.method, c.lambda_)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120, check=True)
    assert result.stdout.split() == ["ewc", "123.0"]
    result = subprocess.run([sys.executable, "main.py", "--dataset=SHOP", "--ewc",
                             f"--tuned={tuned_file}"], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0 and "tuned on sample, not SHOP" in result.stderr


def test_reproduce_passes_the_tuned_file_to_main_py(tuned_file, tmp_path):
    plain = ReproduceOptions(dataset="sample", results_dir=str(tmp_path))
    tuned = ReproduceOptions(dataset="sample", results_dir=str(tmp_path), tuned=tuned_file)
    assert run_name(tuned, "ewc", "0") == "ewc-tuned-seed0" != run_name(plain, "ewc", "0")
    assert f"--tuned={tuned_file}" in command(tuned, "ewc", "0")
    assert not any(a.startswith("--tuned") for a in command(plain, "ewc", "0"))


def test_reproduce_leaves_tuned_dataset_settings_to_the_file(tmp_path):
    path = str(tmp_path / "YOOCHOOSE.json")
    record_tuned(path, "YOOCHOOSE", "ader", {"values": {"lambda_": 2.0}})
    ader = command(ReproduceOptions(dataset="YOOCHOOSE", tuned=path), "ader", "0")
    assert "--lambda_=1.0" not in ader and "--batch_size=512" in ader
    # A method the file does not tune keeps the paper's YOOCHOOSE setting on its command.
    assert "--lambda_=1.0" in command(ReproduceOptions(dataset="YOOCHOOSE", tuned=path),
                                      "ewc", "0")
