"""Tests of ader_tf.quiet: TensorFlow's start-up noise stays off stderr, real lines stay on."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap

import pytest

from ader_tf import quiet

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Lines TensorFlow 2.21 wrote on a CPU-only machine, copied as they came.
STARTUP = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796611996.506342   11595 port.cc:153] oneDNN custom operations are on. You may "
    "see slightly different numerical results due to floating-point round-off errors from "
    "different computation orders. To turn them off, set the environment variable "
    "`TF_ENABLE_ONEDNN_OPTS=0`.",
    "I0000 00:00:1796611996.506644   11595 cudart_stub.cc:31] Could not find cuda drivers on your "
    "machine, GPU will not be used.",
    "I0000 00:00:1796611996.635445   11595 cpu_feature_guard.cc:227] This TensorFlow binary is "
    "optimized to use available CPU instructions in performance-critical operations.",
    "To enable the following instructions: AVX2 AVX512F AVX512_VNNI AVX512_BF16 FMA, in other "
    "operations, rebuild TensorFlow with the appropriate compiler flags.",
]
CUINIT = ("E0000 00:00:1796612163.218708   12236 cuda_platform.cc:52] failed call to cuInit: "
          "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)")
REAL = ["W0000 00:00:1796612163.218708   12236 env.cc:12] Cannot read /etc/x: permission denied",
        "UserWarning: a Python warning written during the import"]


def test_filter_noise_drops_startup_lines_and_keeps_the_rest():
    assert quiet.filter_noise([*STARTUP, REAL[0], *STARTUP, CUINIT, REAL[1]]) == REAL


def test_a_failed_cuinit_is_kept_when_the_machine_has_a_driver():
    assert quiet.filter_noise([STARTUP[0], CUINIT]) == [CUINIT]


def test_verbose_from_the_environment_or_absl_verbosity(monkeypatch):
    monkeypatch.delenv(quiet.VERBOSE_ENV, raising=False)
    assert not quiet.is_verbose([])
    assert not quiet.is_verbose(["--verbosity=0", "-v", "0"])
    for argv in (["--verbosity=1"], ["--verbosity", "2"], ["-v=1"], ["-v", "1", "--k=3"]):
        assert quiet.is_verbose(argv), argv
    assert not quiet.is_verbose(["-v=1", "--verbosity=0"])  # the last one counts, as in absl
    assert not quiet.is_verbose(["--", "-v=1"])  # not a flag
    monkeypatch.setenv(quiet.VERBOSE_ENV, "1")
    assert quiet.is_verbose([])
    monkeypatch.setenv(quiet.VERBOSE_ENV, "0")
    assert not quiet.is_verbose([])


def test_tensorflow_info_records_are_dropped(tmp_path):
    record_filter = quiet.TensorFlowInfoFilter(str(tmp_path / "tensorflow"))

    def passes(path: str, level: int) -> bool:
        record = logging.LogRecord("absl", level, path, 1, "message", None, None)
        return record_filter.filter(record)

    inside = str(tmp_path / "tensorflow" / "python" / "checkpoint" / "functional_saver.py")
    assert not passes(inside, logging.INFO)
    assert passes(inside, logging.WARNING)
    assert passes(str(tmp_path / "ader_tf" / "runner.py"), logging.INFO)
    assert passes(str(tmp_path / "tensorflow_extra.py"), logging.INFO)


# A stand-in for TensorFlow: writes start-up lines to file descriptor 2 as the C++ does, a real
# warning and a Python line, fails its first GPU probe with the cuInit line, and logs INFO
# through absl's logger at a checkpoint save.
_FAKE_TENSORFLOW = '''
import os
import sys
from absl import logging

os.write(2, ({startup!r} + "\\n" + {real!r} + "\\n").encode())
print({python_line!r}, file=sys.stderr)


class config:
    probed = False

    @staticmethod
    def list_physical_devices(kind):
        if not config.probed:  # CUDA is initialised once
            os.write(2, ({cuinit!r} + "\\n").encode())
            config.probed = True
        return []


def save():
    logging.info("Sharding callback duration: 111 microseconds")
'''
_SCRIPT = '''
import sys
from absl import flags, logging
from ader_tf.quiet import quiet_tensorflow

quiet_tensorflow()
flags.FLAGS(sys.argv)
if flags.FLAGS.verbosity < 0:
    logging.set_verbosity(logging.INFO)
logging.use_absl_handler()
import tensorflow
tensorflow.config.list_physical_devices("GPU")
tensorflow.save()
logging.info("our own line")
print("loader restored:", type(tensorflow.__loader__).__name__ != "_QuietLoader")
'''


def _run_with_fake_tensorflow(tmp_path, *args: str, verbose: bool = False):
    (tmp_path / "tensorflow").mkdir()
    (tmp_path / "tensorflow" / "__init__.py").write_text(_FAKE_TENSORFLOW.format(
        startup="\n".join(STARTUP), real=REAL[0], python_line=REAL[1], cuinit=CUINIT))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), REPO_ROOT]))
    env.pop(quiet.VERBOSE_ENV, None)
    if verbose:
        env[quiet.VERBOSE_ENV] = "1"
    return subprocess.run([sys.executable, "-c", textwrap.dedent(_SCRIPT), *args],
                          capture_output=True, text=True, env=env, timeout=60, check=True)


def test_import_keeps_real_lines_and_drops_noise(tmp_path):
    result = _run_with_fake_tensorflow(tmp_path)
    assert result.stdout == "loader restored: True\n"
    lines = result.stderr.splitlines()
    assert lines[:2] == REAL  # in the order written
    assert len(lines) == 3 and lines[2].endswith("] our own line")
    assert "Sharding" not in result.stderr


@pytest.mark.parametrize("how", ["env", "flag"])
def test_verbose_shows_everything(tmp_path, how):
    if how == "env":
        result = _run_with_fake_tensorflow(tmp_path, verbose=True)
    else:
        result = _run_with_fake_tensorflow(tmp_path, "--verbosity=1")
    for line in [*STARTUP, *REAL, CUINIT]:
        assert line in result.stderr
    assert "Sharding callback duration: 111 microseconds" in result.stderr


@pytest.mark.slow
def test_recommend_with_real_tensorflow(tmp_path):
    """The real start-up noise is gone from an entry point, and shows with --verbosity=1."""
    command = [sys.executable, "-m", "ader_tf.recommend", f"--model_dir={tmp_path / 'none'}",
               "--session=1"]
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    env.pop(quiet.VERBOSE_ENV, None)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    # Both at once: each spends its time importing TensorFlow.
    runs = [subprocess.Popen(command + extra, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for extra in ([], ["-v", "1"])]
    (_, quiet_err), (_, verbose_err) = (run.communicate(timeout=300) for run in runs)
    assert [run.returncode for run in runs] == [2, 2]
    missing = tmp_path / "none"
    assert quiet_err == (f"error: {missing}: not a SavedModel (SavedModel file does not exist "
                         f"at: {missing}/{{saved_model.pbtxt|saved_model.pb}})\n")
    # What this TensorFlow build prints at start-up; every build with absl logging prints the
    # first line.
    assert STARTUP[0] in verbose_err
    assert len(verbose_err.splitlines()) > len(quiet.filter_noise(verbose_err.splitlines()))
