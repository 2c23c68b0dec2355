"""Tunes a method's search space on validation Recall@20 with Optuna, over one study that
several processes (and machines) share.

Each trial draws values from the method's ``search_space`` (TPE, seeded per trial number from
the tuning seed, so that processes sharing a study never draw alike), then, for each seed,
runs the method over the first ``max(tune_cycles)`` cycles and scores it by the validation
Recall@20 of its best epoch in each tuning cycle: the objective is their mean over cycles and
seeds. No test set enters it (test metrics are written by the runs, and never read here).
After each tuning cycle the running mean is reported to a median pruner.

Cycle 1 is the same for every trial of a seed: it is trained once, in a run of its own
(`ader_tf.continual.warm_start.shared_first_cycle`, under a file lock, so one process trains
it and the others wait), and each trial starts from its checkpoint (``--warm_start``) and
does its own method's end of cycle 1 (exemplars, importance) from there. A method that
measures something while cycle 1 trains (SI) trains it in every trial.

Storage: ``journal:PATH`` (Optuna's journal file, which needs no server; a file on a shared
file system serves several machines) or an RDB URL (``sqlite:///...``, ``postgresql://...``).
Optuna fails a trial whose process died when its heartbeat stops, for RDB storages; its
journal storage has no heartbeat, so `HeartbeatJournalStorage` adds one (a trial attribute
refreshed every ``heartbeat_interval`` seconds). A trial failed so is queued again with its
values and resumes its run folders at their first unfinished cycle. Trials stop when
``trials`` of them have finished (completed or pruned), counted over every process.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import math
import os
import re
import socket
import subprocess
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.storages import JournalStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from ader_tf.config import Config
from ader_tf.continual.methods import METHODS
from ader_tf.continual.warm_start import free_models, shared_first_cycle
from ader_tf.errors import AderError
from ader_tf.plugins import make_config
from ader_tf.random_streams import RandomStreams
from ader_tf.search_space import suggest
from ader_tf.tuned import read_tuned, record_tuned

log = logging.getLogger(__name__)

JOURNAL = "journal:"
#: A trial attribute: the number of the trial whose run folders it uses (its own, or that of
#: the trial it retries).
RUNS_OF = "runs_of_trial"
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class TuningError(AderError, ValueError):
    """A study or a trial's runs that do not fit the tuning asked for."""


@dataclasses.dataclass(frozen=True)
class TuneSettings:
    """How to tune (everything else is the runs' config).

    Attributes:
        method: The method whose ``search_space`` is tuned.
        trials: Trials to finish (completed or pruned), over every process of the study.
        storage: ``journal:PATH`` or an RDB URL.
        study_name: The study's name in the storage.
        tune_cycles: The cycles whose validation Recall@20 the objective averages.
        seeds: The runs' seeds; each trial runs every one.
        sampler_seed: Seeds the TPE sampler (with each trial's number).
        startup_trials: Trials drawn at random before TPE models the results.
        prune: Stop a trial whose running mean falls below the median of earlier trials'.
        heartbeat_interval: Seconds between a running trial's heartbeats.
        grace_period: Seconds without a heartbeat after which a trial counts as dead.
        max_retry: How often a dead trial is queued again.
    """

    method: str
    trials: int
    storage: str
    study_name: str
    tune_cycles: tuple[int, ...] = (2, 3)
    seeds: tuple[int, ...] = (0,)
    sampler_seed: int = 0
    startup_trials: int = 10
    prune: bool = True
    heartbeat_interval: int = 60
    grace_period: int = 180
    max_retry: int = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "tune_cycles", tuple(sorted({int(c) for c in self.tune_cycles})))
        object.__setattr__(self, "seeds", tuple(dict.fromkeys(int(s) for s in self.seeds)))
        if self.method not in METHODS:
            raise ValueError(f"--method must be one of {tuple(METHODS)}, got {self.method!r}")
        if not METHODS[self.method].search_space:
            raise ValueError(f"--method={self.method} has nothing to tune (its search space is "
                             "empty): run it with python main.py")
        if self.trials <= 0:
            raise ValueError(f"--trials must be positive, got {self.trials}")
        if not self.tune_cycles or self.tune_cycles[0] < 1:
            raise ValueError(f"--tune_cycles must be cycles >= 1, got {self.tune_cycles}")
        if not self.seeds:
            raise ValueError("--tune_seeds must name at least one seed")
        if not self.storage or not self.study_name:
            raise ValueError("a study needs a --storage and a --study_name")
        if self.heartbeat_interval <= 0 or self.grace_period <= self.heartbeat_interval:
            raise ValueError(f"--grace_period ({self.grace_period}) must exceed "
                             f"--heartbeat_interval ({self.heartbeat_interval}) > 0")
        if self.startup_trials < 0 or self.max_retry < 0:
            raise ValueError(f"--startup_trials and --max_retry must be >= 0, got "
                             f"{self.startup_trials} and {self.max_retry}")

    @property
    def steps(self) -> int:
        """The values a trial reports: one per (seed, tuning cycle)."""
        return len(self.seeds) * len(self.tune_cycles)

    def objective_name(self) -> str:
        return (f"validation Recall@20 of the best epoch, mean over cycles "
                f"{','.join(map(str, self.tune_cycles))} and seeds "
                f"{','.join(map(str, self.seeds))}")


# === Storage, sampler, study ===


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """Optuna's journal storage with the heartbeat its RDB storage has.

    A running trial's process writes the time into the trial's system attribute
    ``heartbeat`` every ``interval`` seconds (Optuna's heartbeat thread calls
    `record_heartbeat`); before each new trial, Optuna fails the running trials whose last
    heartbeat (or start) is more than ``grace_period`` seconds old and hands each to
    ``callback``. The clocks of machines sharing the file must agree to well within the grace
    period.
    """

    def __init__(self, backend: JournalFileBackend, interval: int, grace_period: int,
                 callback: Callable[[optuna.Study, FrozenTrial], None] | None) -> None:
        super().__init__(backend)
        self._interval = interval
        self._grace_period = grace_period
        self._callback = callback

    def record_heartbeat(self, trial_id: int) -> None:
        self.set_trial_system_attr(trial_id, "heartbeat", time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            started = trial.datetime_start.timestamp() if trial.datetime_start else now
            # A retried trial inherits its predecessor's last heartbeat: its start counts too.
            last = max(float(trial.system_attrs.get("heartbeat", started)), started)
            if now - last > self._grace_period:
                stale.append(trial._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int | None:
        return self._interval

    def get_heartbeat_stale_trial_callback(
            self) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return self._callback


def open_storage(url: str, heartbeat_interval: int, grace_period: int,
                 max_retry: int) -> optuna.storages.BaseStorage:
    """The storage ``url`` names, with heartbeats: a dead trial is failed and queued again."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
        if url.startswith(JOURNAL):
            path = url[len(JOURNAL):]
            if not path:
                raise ValueError(f"--storage={url} names no file (journal:PATH)")
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            return HeartbeatJournalStorage(JournalFileBackend(path), heartbeat_interval,
                                           grace_period, retry)
        return optuna.storages.RDBStorage(
            url, heartbeat_interval=heartbeat_interval, grace_period=grace_period,
            heartbeat_stale_trial_callback=retry)


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """TPE whose random numbers come from (seed, trial number).

    A fixed seed shared by several processes would make them draw the same values for their
    first trials; a seed per trial number keeps a study reproducible from one process and
    gives every trial its own draws. Each trial gets a TPE sampler seeded by the named stream
    ``tune_sampler`` of the tuning seed (`ader_tf.random_streams`); what TPE learns is in the
    study, so nothing is lost between trials.
    """

    def __init__(self, seed: int, startup_trials: int) -> None:
        self._seed = seed
        self._startup_trials = startup_trials
        self._current: tuple[int, optuna.samplers.TPESampler] | None = None

    def _tpe(self, trial: FrozenTrial) -> optuna.samplers.TPESampler:
        if self._current is None or self._current[0] != trial.number:
            seed = RandomStreams(self._seed).tf_seed("tune_sampler", 0, trial.number)
            self._current = (trial.number, optuna.samplers.TPESampler(
                seed=seed, n_startup_trials=self._startup_trials, constant_liar=True))
        return self._current[1]

    def infer_relative_search_space(self, study: optuna.Study,
                                    trial: FrozenTrial) -> dict[str, Any]:
        return self._tpe(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, Any]) -> dict[str, Any]:
        return self._tpe(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: Any) -> Any:
        return self._tpe(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._tpe(trial).before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._tpe(trial).after_trial(study, trial, state, values)


def study_key(base: dict[str, Any], settings: TuneSettings) -> dict[str, Any]:
    """What every process of a study must agree on (stored as the study's attribute)."""
    config = make_config(**{**base, "method": settings.method, "save_dir": "tune"})
    return {"method": settings.method, "dataset": config.dataset,
            "tune_cycles": list(settings.tune_cycles), "seeds": list(settings.seeds),
            "runs_fingerprint": config.fingerprint()}


def open_study(base: dict[str, Any], settings: TuneSettings) -> optuna.Study:
    """The study of ``settings`` (created by the first process, loaded by the others).

    Raises:
        TuningError: the study exists with another method, dataset, cycles, seeds or run
            settings (another command under the same name).
    """
    storage = open_storage(settings.storage, settings.heartbeat_interval,
                           settings.grace_period, settings.max_retry)
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=5) if settings.prune
              else optuna.pruners.NopPruner())
    study = optuna.create_study(
        storage=storage, study_name=settings.study_name, direction="maximize",
        sampler=TrialSeededSampler(settings.sampler_seed, settings.startup_trials),
        pruner=pruner, load_if_exists=True)
    key = study_key(base, settings)
    stored = study.user_attrs.get("ader_tf")
    if stored is None:
        study.set_user_attr("ader_tf", key)
    elif stored != key:
        differ = sorted(k for k in key if stored.get(k) != key[k])
        raise TuningError(f"study {settings.study_name!r} in {redact(settings.storage)} was "
                          f"started by another command (it differs in {differ}); give "
                          "another --study_name, or the study's own flags")
    return study


# === One trial ===


def _run(config: Config, on_phase: Callable[[Any, int, str], None] | None = None) -> Any:
    """Runs (or resumes) ``config``; ``on_phase(runner, cycle, phase)``; returns the runner."""
    from ader_tf.continual.runner import ContinualRunner

    holder: list[Any] = []
    runner = ContinualRunner(
        config, on_phase=None if on_phase is None
        else lambda cycle, phase: on_phase(holder[0], cycle, phase))
    holder.append(runner)
    try:
        runner.run()
    finally:
        runner.writer.close()
    return runner


def _slug(name: str) -> str:
    """``name`` as one folder-name part."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "study"


class _SurplusTrialError(Exception):
    """A trial started after enough others (a race between processes): it is not run."""


class Objective:
    """Runs one trial: its runs, their validation Recall@20, reported for pruning.

    Args:
        base: The runs' config values (flags' names); the trial's values, seed, cycles,
            save_dir and warm start are set on top.
        settings: How to tune.
    """

    def __init__(self, base: dict[str, Any], settings: TuneSettings) -> None:
        self.base = {**base, "method": settings.method}
        self.settings = settings
        self.method = METHODS[settings.method]
        self.last_number: int | None = None  # the number of the trial this process ran last

    def config(self, params: dict[str, Any], seed: int, number: int) -> Config:
        """The config of the trial's run with ``seed`` (folder ``tune-<study>-t<n>-seed<s>``)."""
        values = {**self.base, **params, "random_seed": seed,
                  "cycles": self.settings.tune_cycles[-1], "warm_start": "",
                  "save_dir": f"tune-{_slug(self.settings.study_name)}-t{number}-seed{seed}"}
        config = make_config(**values)
        if self.method.shares_first_cycle:
            config = make_config(**{**values, "warm_start": shared_first_cycle(config)})
        return config

    def __call__(self, trial: optuna.Trial) -> float:
        self.last_number = trial.number
        if self._surplus(trial):
            trial.set_user_attr("surplus", True)
            raise _SurplusTrialError(f"trial {trial.number}: enough trials were running or done")
        number = int(trial.user_attrs.get(RUNS_OF, trial.number))
        trial.set_user_attr(RUNS_OF, number)
        trial.set_user_attr("process", f"{socket.gethostname()}:{os.getpid()}")
        params = suggest(self.method.search_space, trial)
        values: list[float] = []
        folders = []
        for seed in self.settings.seeds:
            config = self.config(params, seed, number)
            folders.append(os.path.join(config.results_dir, config.run_name))
            trial.set_user_attr("runs", folders)
            values += self._run_seed(trial, config, values)
        trial.set_user_attr("valid_recall20", values)
        return float(sum(values) / len(values))

    def _surplus(self, trial: optuna.Trial) -> bool:
        """Whether trials numbered before this one already make up the budget."""
        ahead = [t for t in trial.study.get_trials(deepcopy=False, states=(
                     *_FINISHED, TrialState.RUNNING))
                 if t.number < trial.number]
        return len(ahead) >= self.settings.trials

    def _run_seed(self, trial: optuna.Trial, config: Config, before: list[float]) -> list[float]:
        """Runs the trial's run of one seed; returns its tuning cycles' validation Recall@20."""
        from ader_tf.continual.learners import TrainingDivergedError

        cycles = self.settings.tune_cycles
        found: dict[int, float] = {}

        def take(row: dict[str, Any]) -> None:
            cycle = int(row["cycle"])
            if cycle not in cycles or cycle in found:
                return
            value = row.get("valid_recall20")
            if value is None or not math.isfinite(value):
                raise TuningError(f"{os.path.join(config.results_dir, config.run_name)}: "
                                  f"cycle {cycle} recorded no validation Recall@20 (a run "
                                  "from before it was recorded, or a model that validates "
                                  "nothing); delete the folder to run it again")
            found[cycle] = float(value)
            seen = [*before, *(found[c] for c in sorted(found))]
            trial.report(sum(seen) / len(seen), step=len(seen) - 1)
            # Never at the last step: a finished trial is complete, not pruned.
            if len(seen) < self.settings.steps and trial.should_prune():
                raise optuna.TrialPruned(f"pruned after cycle {cycle} of seed "
                                         f"{config.random_seed}")

        def on_phase(runner: Any, cycle: int, phase: str) -> None:
            if phase == "finished":
                take(runner.state.last)

        try:
            runner = _run(config, on_phase)
        except TrainingDivergedError as e:
            # A value that makes training diverge is a bad value, not a broken trial.
            trial.set_user_attr("diverged", e.one_line())
            raise optuna.TrialPruned(f"diverged: {e.one_line()}") from e
        finally:
            free_models()
        for row in runner.state.cycles:  # cycles a resumed run had finished before
            take(row)
        missing = [c for c in cycles if c not in found]
        if missing:
            raise TuningError(f"--tune_cycles: the dataset has {runner.num_cycles} cycles, "
                              f"not cycle {missing[0]}")
        return [found[c] for c in cycles]


# === The loop ===


def tune(base: dict[str, Any], settings: TuneSettings) -> optuna.Study:
    """Runs trials of the study until ``settings.trials`` are finished over all processes.

    While the trials still missing are running in other processes this one waits for them
    (checking every ``heartbeat_interval`` seconds), so that it can take over one whose
    process died.
    """
    from ader_tf.continual.artifacts import RunInUseError

    study = open_study(base, settings)
    objective = Objective(base, settings)
    while True:
        trials = study.get_trials(deepcopy=False)
        finished = sum(t.state in _FINISHED for t in trials)
        if finished >= settings.trials:
            return study
        running = sum(t.state == TrialState.RUNNING for t in trials)
        waiting = sum(t.state == TrialState.WAITING for t in trials)
        if waiting or finished + running < settings.trials:
            try:
                # A trial whose run folder another process is running (a trial failed as
                # stale while its process lived on, then retried here) fails; this process
                # goes on.
                study.optimize(objective, n_trials=1,
                               catch=(_SurplusTrialError, RunInUseError))
            except ValueError:
                if not failed_elsewhere(study, objective.last_number):
                    raise
                # This process was paused past the grace period and another process failed
                # its trial as stale (Optuna then refuses to record its result): its run
                # folders keep what it finished, for the retry; the study goes on.
                log.warning("trial %d was failed as stale by another process while this one "
                            "ran it (paused past --grace_period?); its result is not "
                            "recorded, its run folders are kept", objective.last_number)
            continue
        log.info("%d of %d trials finished, %d running elsewhere: waiting", finished,
                 settings.trials, running)
        time.sleep(settings.heartbeat_interval)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)


def failed_elsewhere(study: optuna.Study, number: int | None) -> bool:
    """Whether trial ``number`` has ended as failed (another process can fail a trial as
    stale while the process running it is alive but paused)."""
    if number is None:
        return False
    return any(t.number == number and t.state == TrialState.FAIL
               for t in study.get_trials(deepcopy=False))


# === The result ===


def redact(text: str) -> str:
    """``text`` with the password of any URL in it replaced by ``***``."""
    return re.sub(r"(//[^/:@\s]+:)[^@\s]+@", r"\1***@", text)


def git_revision() -> str | None:
    """The package's git commit (``+dirty`` with uncommitted changes), or None."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        rev = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True,
                             text=True, check=True, timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               check=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("+dirty" if dirty else "")


# What a tuned file's settings leave out: where and how runs go, and what tuning sets itself.
_NOT_SETTINGS = frozenset({
    "data_dir", "results_dir", "progress", "save_dir", "dataset_defaults", "cycles",
    "random_seed", "warm_start", "export_saved_models", "export_k", "test_batch",
    "table_growth", "distribution_strategy", "collective_timeout"})


def changed_settings(base: dict[str, Any], method: str) -> dict[str, Any]:
    """The run settings of ``base`` that differ from a default run of ``method`` on its
    dataset (e.g. ``num_epochs``), which the tuned values hold for."""
    config = make_config(**{**base, "method": method})
    default = make_config(method=method, dataset=config.dataset).to_dict()
    return {k: v for k, v in config.to_dict().items()
            if k not in _NOT_SETTINGS and default.get(k) != v}


def best_entry(study: optuna.Study, base: dict[str, Any], settings: TuneSettings,
               command: str) -> dict[str, Any] | None:
    """The tuned file's entry for the study's best trial, or None without a completed one."""
    trials = study.get_trials(deepcopy=False)
    counts = {state.name.lower(): sum(t.state == state for t in trials)
              for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    if not counts["complete"]:
        return None
    best = study.best_trial
    return {
        "values": dict(best.params),
        "objective": best.value,
        "objective_name": settings.objective_name(),
        "best_trial": best.number,
        "trials": counts,
        "tuning": {"tune_cycles": list(settings.tune_cycles), "seeds": list(settings.seeds),
                   "sampler_seed": settings.sampler_seed,
                   "startup_trials": settings.startup_trials, "prune": settings.prune},
        "study_name": settings.study_name,
        "storage": redact(settings.storage),
        "settings": changed_settings(base, settings.method),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": redact(command),
        "git_revision": git_revision(),
    }


# What makes a kept entry of the tuned file the record of the same finished study.
_SAME_RESULT = ("study_name", "storage", "best_trial", "trials", "values", "objective")


def write_best(study: optuna.Study, base: dict[str, Any], settings: TuneSettings, path: str,
               command: str) -> dict[str, Any] | None:
    """Records the best trial's values in the tuned file ``path``; returns the entry (None
    when no trial completed).

    An entry the file already holds for the same study, best trial and trial counts is
    kept as it is: the command run again on a finished study (or by each process that shared
    it) does not replace its date, command and git revision with those of a later run.
    """
    entry = best_entry(study, base, settings, command)
    if entry is None:
        return None
    kept = read_tuned(path)["methods"].get(settings.method) if os.path.exists(path) else None
    if kept and all(kept.get(key) == entry[key] for key in _SAME_RESULT):
        return kept
    dataset = make_config(**{**base, "method": settings.method}).dataset
    record_tuned(path, dataset, settings.method, entry)
    return entry
