"""Keeps TensorFlow's start-up chatter off stderr, so a person reads only what they can act on.

An entry point calls `quiet_tensorflow()` before anything imports TensorFlow:

    from ader_tf.quiet import quiet_tensorflow
    quiet_tensorflow()

`TF_CPP_MIN_LOG_LEVEL` alone does not silence start-up: TensorFlow's shared libraries log through
absl from static initialisers while they load, before absl's logging is initialised and before
TensorFlow reads that variable, and each library carrying its own copy of absl repeats the lines
("All log messages before absl::InitializeLog() ...", the oneDNN notice, "Could not find cuda
drivers"). So the first `import tensorflow` (and the GPU probe that follows it, whose failed
`cuInit` is logged as an error on a machine without a driver) runs with file descriptor 2 sent to
a temporary file; afterwards the lines not on the known-noise list below are written to stderr as
they came. TensorFlow's own Python INFO records ("Sharding callback duration" at every checkpoint
save, logged through absl's logger from TensorFlow's files) are dropped by a logging filter.
Numerics are untouched: oneDNN stays on, only its notice goes.

Everything shows when absl's `--verbosity` (`-v`) is 1 or more, or `ADER_TF_VERBOSE=1`. A crash
inside `import tensorflow` itself loses the captured lines: rerun with `ADER_TF_VERBOSE=1`.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import re
import sys
import tempfile
import types
from collections.abc import Callable, Iterable, Sequence

VERBOSE_ENV = "ADER_TF_VERBOSE"
# A glog-style line: severity, date, time, thread, file:line] message.
_LOG_LINE = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ [\w.+-]+:\d+\] (?P<message>.*)$")
# Start-up lines that say nothing a user can act on (matched at the start of the message).
NOISE = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "oneDNN custom operations are on.",
    "Could not find cuda drivers on your machine, GPU will not be used.",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions:",  # the line after the one above
    # Earlier TensorFlow versions (2.15-2.17) on CPU-only machines:
    "Unable to register cuDNN factory",
    "Unable to register cuFFT factory",
    "Unable to register cuBLAS factory",
    "TF-TRT Warning: Could not find TensorRT",
)
_NO_DRIVER = "Could not find cuda drivers on your machine"
# Noise only when the machine has no CUDA driver; with a driver it is a real failure.
_NO_DRIVER_NOISE = ("failed call to cuInit",)
_ENABLED = frozenset({"1", "true", "yes", "on"})


def is_verbose(argv: Sequence[str] | None = None) -> bool:
    """Whether to show everything: `ADER_TF_VERBOSE=1`, or absl's verbosity at 1 or more.

    The verbosity is the last `--verbosity` / `-v` in `argv`; without `argv`, the parsed flag,
    or before flags are parsed, the one in `sys.argv`.
    """
    if os.environ.get(VERBOSE_ENV, "").strip().lower() in _ENABLED:
        return True
    if argv is None:
        from absl import flags

        if flags.FLAGS.is_parsed() and "verbosity" in flags.FLAGS:
            return flags.FLAGS.verbosity >= 1
        argv = sys.argv[1:]
    return _verbosity_in(argv) >= 1


def _verbosity_in(argv: Sequence[str]) -> int:
    """The last `--verbosity=N`, `--verbosity N`, `-v=N` or `-v N` in `argv`; else -1."""
    verbosity = -1
    for index, arg in enumerate(argv):
        if arg == "--":
            break
        name, equals, value = arg.partition("=")
        if name not in ("--verbosity", "-v"):
            continue
        if not equals:
            value = argv[index + 1] if index + 1 < len(argv) else ""
        try:
            verbosity = int(value)
        except ValueError:
            continue
    return verbosity


def filter_noise(lines: Iterable[str]) -> list[str]:
    """The lines of `lines` that are not known start-up noise, in order."""
    lines = list(lines)
    messages = [_message(line) for line in lines]
    no_driver = any(message.startswith(_NO_DRIVER) for message in messages)
    noise = NOISE + (_NO_DRIVER_NOISE if no_driver else ())
    return [line for line, message in zip(lines, messages) if not message.startswith(noise)]


def _message(line: str) -> str:
    """A log line's message without its glog-style prefix."""
    match = _LOG_LINE.match(line)
    return match.group("message") if match else line


class TensorFlowInfoFilter(logging.Filter):
    """Drops records below WARNING logged from files under `folder` (TensorFlow's package)."""

    def __init__(self, folder: str) -> None:
        super().__init__()
        self.folder = os.path.join(os.path.realpath(folder), "")

    def filter(self, record: logging.LogRecord) -> bool:
        return (record.levelno >= logging.WARNING
                or not os.path.realpath(record.pathname).startswith(self.folder))


def run_with_filtered_stderr(action: Callable[[], object]) -> object:
    """Runs `action` with file descriptor 2 captured; then writes the lines that are not noise.

    Returns:
        What `action` returns (its exception, if any, propagates after the lines are written).
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        return action()  # no usable stderr to capture
    try:
        with tempfile.TemporaryFile() as capture:
            os.dup2(capture.fileno(), 2)
            try:
                return action()
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                capture.seek(0)
                kept = filter_noise(capture.read().decode("utf-8", errors="replace").splitlines())
                if kept:
                    sys.stderr.write("\n".join(kept) + "\n")
                    sys.stderr.flush()
    finally:
        os.close(saved)


class _QuietLoader(importlib.abc.Loader):
    """Runs the wrapped loader's `exec_module` (and a GPU probe) with stderr filtered."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        # Put the real loader back, so that nothing later sees this wrapper.
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        if is_verbose():
            self.loader.exec_module(module)
            return
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

        def load() -> None:
            self.loader.exec_module(module)
            _probe_gpus(module)

        run_with_filtered_stderr(load)
        _filter_python_records(os.path.dirname(module.__file__ or ""))


def _probe_gpus(tf: types.ModuleType) -> None:
    """Lists the GPUs now, inside the capture: the CUDA probe logs when it fails.

    Listing physical devices leaves the runtime unconfigured, so visible and logical devices
    can still be set afterwards.
    """
    config = getattr(tf, "config", None)
    if config is not None and hasattr(config, "list_physical_devices"):
        config.list_physical_devices("GPU")


def _filter_python_records(folder: str) -> None:
    """Drops TensorFlow's Python INFO records, logged through absl's or its own logger."""
    from absl import logging as absl_logging

    for logger in (absl_logging.get_absl_logger(), logging.getLogger("tensorflow")):
        if not any(isinstance(f, TensorFlowInfoFilter) for f in logger.filters):
            logger.addFilter(TensorFlowInfoFilter(folder))


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` once, as the other finders do, and wraps its loader."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow() -> None:
    """Keeps TensorFlow's start-up noise off stderr in this process (see the module docstring).

    Call before anything imports TensorFlow; the work happens at the first `import tensorflow`,
    so a process that never imports it pays nothing. Once TensorFlow is imported, only its
    Python INFO records can still be filtered.
    """
    if "tensorflow" in sys.modules:
        if not is_verbose():
            _filter_python_records(os.path.dirname(sys.modules["tensorflow"].__file__ or ""))
        return
    if not any(isinstance(finder, _QuietFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietFinder())
